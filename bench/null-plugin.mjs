// The null plugin: node:http on a unix socket, drains every body and allows
// every call without looking at it. What it costs is what the transport
// (Node's HTTP server on a unix socket) costs; userns-guard is measured
// against it.
//
//   node bench/null-plugin.mjs --socket /path/plugin.sock
//
// Plain JavaScript on purpose: a .ts file would make Node load its type
// stripper (~17 MiB more RSS, ~30 ms more start-up), and the floor would no
// longer be the transport alone.

import { rmSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

const HEADERS = { 'Content-Type': 'application/vnd.docker.plugins.v1.2+json' };
const ACTIVATE = Buffer.from(JSON.stringify({ Implements: ['authz'] }));
const ALLOW = Buffer.from(JSON.stringify({ Allow: true }));

const { values } = parseArgs({ options: { socket: { type: 'string' } }, strict: true });
if (values.socket === undefined) {
  process.stderr.write('usage: node bench/null-plugin.mjs --socket PATH\n');
  process.exit(2);
}

// The same idle keep-alive time as userns-guard, so the engine's connection
// is never dropped and re-made for one plugin and not the other.
const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  req.on('end', () => {
    const body = req.url === '/Plugin.Activate' ? ACTIVATE : ALLOW;
    res.writeHead(200, { ...HEADERS, 'Content-Length': body.length });
    res.end(body);
  });
  req.resume();
});
rmSync(values.socket, { force: true });
server.listen(values.socket);

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
