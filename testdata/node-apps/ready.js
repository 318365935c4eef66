// PM2's wait_ready: the app listens, does its async setup, then says
// process.send('ready'). It never sends it without READY_AFTER_MS.
'use strict';
const http = require('http');

let setUp = false;
const server = http.createServer((req, res) => {
  res.end(`hello from ready pid=${process.pid} setup=${setUp}\n`);
});
server.listen(process.env.PORT || 3000, () => {
  if (process.env.READY_AFTER_MS === undefined) return;
  setTimeout(() => {
    setUp = true;
    if (process.send) process.send('ready');
  }, Number(process.env.READY_AFTER_MS));
});
