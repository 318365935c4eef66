// A Node.js worker for drover that follows the drain contract (README):
// on SIGTERM it stops accepting, answers open connections once more with
// "Connection: close", closes idle ones after a moment, then exits.
// It takes its socket from drover as fd 3, exactly as from systemd.
'use strict';
const http = require('http');
const net = require('net');

let draining = false;
const server = http.createServer((req, res) => {
  if (draining) res.setHeader('Connection', 'close');
  res.end(`hello from node-worker pid=${process.pid} worker=${process.env.DROVER_WORKER_ID} generation=${process.env.DROVER_GENERATION}\n`);
});
server.listen({ fd: 3 });

process.on('SIGTERM', () => {
  draining = true;
  // net.Server's close stops accepting. http.Server's own close() (Node 19+)
  // would also drop idle keep-alive connections at once, losing requests
  // already on their way.
  net.Server.prototype.close.call(server, () => process.exit(0));
  setTimeout(() => server.closeIdleConnections(), 1000);
  // Connections that stay busy get the stop timeout's SIGKILL; do not wait
  // for them past a bound of our own.
  setTimeout(() => process.exit(0), 10000).unref();
});
