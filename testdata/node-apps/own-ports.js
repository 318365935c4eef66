// An app with three servers: the main one on PORT, an admin one on
// ADMIN_PORT and one on a port the system picks. It writes their
// addresses to the file REPORT once all three listen.
'use strict';
const fs = require('fs');
const http = require('http');

const servers = {
  main: http.createServer((req, res) => res.end(`main pid=${process.pid}\n`)),
  admin: http.createServer((req, res) => res.end(`admin pid=${process.pid}\n`)),
  any: http.createServer((req, res) => res.end(`any pid=${process.pid}\n`)),
};
const addresses = {};
let pending = 3;
function listening(name) {
  return () => {
    addresses[name] = servers[name].address();
    if (--pending === 0) fs.writeFileSync(process.env.REPORT, JSON.stringify(addresses));
  };
}
servers.main.listen(Number(process.env.PORT), listening('main'));
servers.admin.on('listening', listening('admin'));
servers.admin.listen({ port: Number(process.env.ADMIN_PORT), host: '127.0.0.1' });
servers.any.listen(0, '127.0.0.1', listening('any'));
