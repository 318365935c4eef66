// The Express hello world, unchanged but for a slow route: app.listen on
// PORT. GET /slow keeps the event loop busy for 200 ms.
'use strict';
const express = require('express');

const app = express();
app.get('/slow', (req, res) => {
  const until = Date.now() + 200;
  while (Date.now() < until);
  res.send(`slow from express pid=${process.pid}\n`);
});
app.all('/', (req, res) => res.send(`hello from express pid=${process.pid}\n`));
const port = process.env.PORT || 3000;
app.listen(port, () => console.log(`listening on ${port}`));
