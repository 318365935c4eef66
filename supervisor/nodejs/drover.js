// drover's preload for Node workers (drover run --node; README, "Node").
// drover loads it into each worker with NODE_OPTIONS=--require=<this file>
// so that an unmodified app:
//
//   - serves on drover's sockets: a listen() whose port (or unix path)
//     matches an inherited socket listens on that fd instead;
//   - can say it is ready with process.send('ready') (PM2's wait_ready),
//     over the IPC channel drover opened (NODE_CHANNEL_FD);
//   - drains on drover's stop signal as the drain contract asks;
//   - sends a heartbeat from its event loop for --worker-watchdog.
//
// Public Node APIs only, and syntax Node 18 parses. It is a no-op in any
// process but the worker itself: NODE_OPTIONS also reaches the node
// processes the app starts, and worker threads load preloads too.
'use strict';

(function drover() {
  const env = process.env;
  if (!require('worker_threads').isMainThread || env.LISTEN_PID !== String(process.pid)) {
    return;
  }
  const net = require('net');
  const http = require('http');
  const https = require('https');
  const os = require('os');

  // drover appended our --require to NODE_OPTIONS; the app's children get
  // back the NODE_OPTIONS the environment had (quoted as drover quotes it,
  // nodejs.go).
  const own = /[ \t\n\r\v\f"\\]/.test(__filename)
    ? '--require="' + __filename.replace(/[\\"]/g, '\\$&') + '"'
    : '--require=' + __filename;
  if (env.NODE_OPTIONS !== undefined && env.NODE_OPTIONS.endsWith(own)) {
    const rest = env.NODE_OPTIONS.slice(0, -own.length).trimEnd();
    if (rest === '') delete env.NODE_OPTIONS;
    else env.NODE_OPTIONS = rest;
  }

  function warn(what) {
    process.emitWarning(what, 'DroverWarning');
  }

  // process.send throws or emits 'error' on the process when drover's end
  // is gone; our own messages must never take the app down.
  function send(msg) {
    if (typeof process.send !== 'function' || !process.connected) return;
    try {
      process.send(msg, () => {});
    } catch (e) {
      // the channel closed under us: nothing to tell
    }
  }

  // The heartbeat: drover reads each as WATCHDOG=1. A blocked event loop
  // stops it, and drover's watchdog takes it for a hang. Unref'd: it must
  // not keep an app alive that is done.
  const watchdogUsec = Number(env.WATCHDOG_USEC);
  if (watchdogUsec > 0 && env.WATCHDOG_PID === String(process.pid)) {
    setInterval(send, Math.max(1, Math.floor(watchdogUsec / 3000)), { drover: 'watchdog' }).unref();
  }

  // [{fd, name, host, port}] or [{fd, name, path}], in fd order.
  let inherited = [];
  try {
    inherited = JSON.parse(env.DROVER_NODE_SOCKETS || '[]');
  } catch (e) {
    warn('drover: DROVER_NODE_SOCKETS is not JSON: ' + e.message);
  }
  if (!Array.isArray(inherited)) inherited = [];
  // A socket serves one listen per process: when a server on it closes,
  // Node closes the fd, so it cannot be handed out again.
  const used = new Set();

  function sameHost(a, b) {
    const norm = (h) => {
      h = String(h).toLowerCase().replace(/^\[|\]$/g, '');
      if (h === 'localhost' || h === '::1' || h.startsWith('127.')) return 'loopback';
      if (h === '::' || h === '0.0.0.0' || h === '') return 'any';
      return h.replace(/^::ffff:/, '');
    };
    return norm(a) === norm(b);
  }

  // inheritedFD is the fd a listen(...args) call should use, or undefined
  // to listen as without drover. The port decides: the socket's address is
  // the operator's choice (the .socket unit, --listen), as systemd's
  // ListenStream= overrides an app's own address. The host only picks
  // between several sockets on the same port.
  function inheritedFD(args) {
    const a0 = args[0];
    let port;
    let host;
    let path;
    if (a0 !== null && typeof a0 === 'object') {
      if (a0.fd !== undefined || a0.handle !== undefined || a0._handle !== undefined) return undefined;
      ({ port, host, path } = a0);
    } else if (typeof a0 === 'number' || typeof a0 === 'string') {
      // As net.Server.listen reads it: a string that is no number is a path.
      if (Number(a0) >= 0) {
        port = a0;
        if (typeof args[1] === 'string') host = args[1];
      } else {
        path = a0;
      }
    }
    const free = inherited.filter((s) => !used.has(s.fd));
    if (path !== undefined && port === undefined) {
      const s = free.find((c) => c.path !== undefined && c.path === path);
      return s && s.fd;
    }
    port = Number(port);
    if (!(port > 0)) return undefined; // 0: any free port, never ours
    const candidates = free.filter((c) => c.port === port);
    const s = (host !== undefined && candidates.find((c) => sameHost(c.host, host))) || candidates[0];
    return s && s.fd;
  }

  const origListen = net.Server.prototype.listen;
  net.Server.prototype.listen = function listen(...args) {
    track(this);
    const fd = inheritedFD(args);
    if (fd === undefined) return Reflect.apply(origListen, this, args);
    used.add(fd);
    const options = { fd };
    if (args[0] !== null && typeof args[0] === 'object' && args[0].signal) options.signal = args[0].signal;
    const last = args[args.length - 1];
    return typeof last === 'function' ? origListen.call(this, options, last) : origListen.call(this, options);
  };

  // The drain contract (README): on the stop signal, stop accepting,
  // answer each open connection once more with Connection: close, close
  // idle connections after a moment, and exit when every server is closed.
  const stopSignal = env.DROVER_STOP_SIGNAL || 'SIGTERM';
  const canDrain = Object.prototype.hasOwnProperty.call(os.constants.signals, stopSignal);
  let draining = false;
  let appHandles = false;
  const tracked = new WeakSet();
  const live = new Set(); // listening, or closed with connections still open
  const inflight = new Set(); // responses whose headers may still change

  function closeAfter(res) {
    if (!res.headersSent) res.setHeader('Connection', 'close');
  }

  function onRequest(req, res) {
    if (draining) {
      closeAfter(res);
      return;
    }
    inflight.add(res);
    res.once('close', () => inflight.delete(res));
  }

  function isHTTP(server) {
    return typeof server.closeIdleConnections === 'function';
  }

  function track(server) {
    if (tracked.has(server)) return;
    tracked.add(server);
    if (!canDrain) return;
    server.on('listening', () => live.add(server));
    server.on('close', () => {
      live.delete(server);
      if (draining) exitWhenDone();
    });
    if (isHTTP(server)) server.prependListener('request', onRequest);
    if (!Reflect.apply(origListeners, process, [stopSignal]).includes(onStop)) process.prependListener(stopSignal, onStop);
  }

  // http(s).Server.close closes idle keep-alive connections at once (Node
  // 19+), and a request already on its way on one of them fails. During
  // the drain, an app's server.close() (PM2's graceful shutdown) stops
  // accepting at once and leaves the idle connections to the drain.
  for (const Server of [http.Server, https.Server]) {
    const origClose = Server.prototype.close;
    Server.prototype.close = function close(...args) {
      if (!draining) return Reflect.apply(origClose, this, args);
      const had = Object.prototype.hasOwnProperty.call(this, 'closeIdleConnections');
      const saved = this.closeIdleConnections;
      this.closeIdleConnections = () => {};
      try {
        return Reflect.apply(origClose, this, args);
      } finally {
        if (had) this.closeIdleConnections = saved;
        else delete this.closeIdleConnections;
      }
    };
  }

  // The preload's listener is hidden from process.listeners() of the stop
  // signal: a library that re-raises the signal when it is the only
  // listener left (signal-exit, under write-file-atomic and many more)
  // then does so, as without drover, instead of leaving the worker to be
  // killed at --stop-timeout. Not from listenerCount(): Node itself asks
  // it whether to stop catching the signal.
  const origListeners = process.listeners;
  process.listeners = function listeners(name) {
    const all = Reflect.apply(origListeners, this, arguments);
    return name === stopSignal ? all.filter((l) => l !== onStop) : all;
  };

  // appListeners counts the app's listeners of the stop signal.
  function appListeners() {
    return process.listeners(stopSignal).length;
  }

  // onStop runs first of the signal's listeners (prepended) and only marks
  // the drain: the rest runs once the app's own listeners have run, so a
  // server the app closes itself is not closed twice. The signal again
  // during the drain, with no listener of the app's left, is the app's
  // (or its library's) way of dying by it: the drain ends in an exit.
  function onStop() {
    if (draining) {
      if (appHandles && appListeners() === 0) {
        appHandles = false;
        exitWhenDone();
      }
      return;
    }
    draining = true;
    appHandles = appListeners() > 0;
    setImmediate(drain);
  }

  function drain() {
    if (live.size === 0 && !appHandles) {
      // Nothing to drain: end as Node would without us.
      process.removeListener(stopSignal, onStop);
      process.kill(process.pid, stopSignal);
      return;
    }
    for (const res of inflight) closeAfter(res);
    inflight.clear();
    for (const server of live) {
      if (server.listening) net.Server.prototype.close.call(server);
    }
    // Requests already on their way on idle connections arrive within
    // the moment, and get their answer with Connection: close.
    setTimeout(closeIdle, 1000).unref();
    exitWhenDone();
  }

  function closeIdle() {
    for (const server of live) {
      if (isHTTP(server)) server.closeIdleConnections();
    }
    // A response whose headers went out before the drain leaves its
    // connection open and idle afterwards.
    if (live.size > 0) setTimeout(closeIdle, 1000).unref();
  }

  // An app whose own listener exits at once (process.exit() in its
  // handler, a common "graceful" shutdown) would cut the requests in
  // flight: during the drain its exit waits, with its code, until every
  // server has closed.
  const origExit = process.exit;
  let deferredExit = null; // [code] once the app asked to exit
  process.exit = function exit(code) {
    if (!draining || live.size === 0) return Reflect.apply(origExit, process, arguments);
    if (deferredExit === null) deferredExit = [code === undefined ? process.exitCode : code];
  };

  // An app with its own listener for the signal decides itself when to
  // exit, as it would without drover. No timer of our own bounds the
  // drain: drover's --stop-timeout does, and its SIGKILL is logged as
  // what it is, where an exit 0 of ours would pass for a clean drain.
  function exitWhenDone() {
    if (live.size > 0) return;
    if (deferredExit !== null) Reflect.apply(origExit, process, deferredExit);
    else if (!appHandles) Reflect.apply(origExit, process, [0]);
  }
})();
