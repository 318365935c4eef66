// A plain Node http server with no signal handling and nothing for drover
// in it. GET /spin blocks its event loop forever (a synchronous loop in a
// handler); GET /slow keeps it busy for 200 ms.
'use strict';
const http = require('http');

function busy(ms) {
  const until = Date.now() + ms;
  while (Date.now() < until);
}

const server = http.createServer((req, res) => {
  if (req.url === '/spin') for (;;);
  if (req.url === '/slow') busy(200);
  res.end(`hello from plain pid=${process.pid}\n`);
});
server.listen(process.env.PORT || 3000);
