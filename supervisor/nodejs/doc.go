// Package nodejs is drover's support for Node workers (drover run --node):
// the preload script drover.js, embedded here and shipped by the packages
// at ShippedPath, the environment that loads it into each worker, and the
// IPC channel through which a worker's process.send reaches drover.
//
// What it owns:
//
//   - drover.js, loaded into every worker with --require through
//     NODE_OPTIONS. It wraps net.Server.prototype.listen so that a listen
//     on the port (or unix path) of an inherited socket listens on that fd,
//     drains the app's servers on drover's stop signal, and sends a
//     heartbeat from the event loop when WATCHDOG_USEC is set.
//   - the worker's environment for it (Env): NODE_OPTIONS, the sockets'
//     addresses (DROVER_NODE_SOCKETS), the stop signal, and
//     NODE_CHANNEL_FD, which makes Node open the channel itself, exactly as
//     in a child started with child_process.fork.
//   - the channel (NewChannel, Read): a unix stream socketpair whose
//     worker end is passed to the worker; drover reads Node's
//     newline-delimited JSON from its end and turns what it knows
//     ("ready", the heartbeat) into sd_notify fields for the supervisor.
//
// Node's documentation:
//
//   - --require and NODE_OPTIONS: https://nodejs.org/api/cli.html#-r---require-module
//     and https://nodejs.org/api/cli.html#node_optionsoptions
//   - net.Server.listen: https://nodejs.org/api/net.html#serverlisten
//     (listen({fd}) for a listening socket passed in)
//   - the IPC channel: https://nodejs.org/api/child_process.html#child_processforkmodulepath-args-options
//     and https://nodejs.org/api/process.html#processsendmessage-sendhandle-options-callback;
//     NODE_CHANNEL_FD and NODE_CHANNEL_SERIALIZATION_MODE are how fork
//     tells the child, read by Node at startup (lib/internal/process/pre_execution.js)
//   - http.Server.closeIdleConnections (Node 18.2+): https://nodejs.org/api/http.html#servercloseidleconnections
package nodejs
