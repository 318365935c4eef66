// An app that uses signal-exit (npm), as write-file-atomic and many other
// libraries do, and has a timer of its own (a periodic job) that keeps its
// event loop alive: signal-exit's exit handler runs on SIGTERM, then
// signal-exit re-raises the signal when it is the only listener, and the
// process dies by it.
'use strict';
const http = require('http');
const signalExit = require('signal-exit');

// Its version 3 is the function, 4 exports it.
const onExit = typeof signalExit === 'function' ? signalExit : signalExit.onExit;

onExit(() => {});
setInterval(() => {}, 1000);
http.createServer((req, res) => {
  res.end(`hello from signal-exit pid=${process.pid}\n`);
}).listen(process.env.PORT || 3000);
