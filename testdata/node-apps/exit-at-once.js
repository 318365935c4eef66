// A "graceful" shutdown seen in many apps: exit as soon as the signal
// comes, with whatever requests are in flight.
'use strict';
const http = require('http');

http.createServer((req, res) => {
  res.end(`hello from exit-at-once pid=${process.pid}\n`);
}).listen(process.env.PORT || 3000);

process.on('SIGTERM', () => process.exit(0));
