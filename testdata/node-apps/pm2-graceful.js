// PM2's documented graceful shutdown (pm2.keymetrics.io, "Graceful
// Shutdown"): on SIGINT close the server, then exit. process.send('ready')
// when listening, for wait_ready.
'use strict';
const http = require('http');

const server = http.createServer((req, res) => {
  res.end(`hello from pm2-graceful pid=${process.pid}\n`);
});
server.listen(process.env.PORT || 3000, () => {
  if (process.send) process.send('ready');
});

process.on('SIGINT', () => {
  server.close((err) => {
    process.exit(err ? 1 : 0);
  });
});
