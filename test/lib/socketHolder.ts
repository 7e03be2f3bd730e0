// Sockets in the states the plugin's start-up has to tell apart: a stale
// file left by a process that died, and one a live process answers on.

import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

export interface LiveSocket {
  close(): Promise<void>;
}

// An HTTP server on `socket` that answers every request with `body`.
export async function holdLiveSocket(socket: string, body: string): Promise<LiveSocket> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(body));
  });
  await listenOn(server, socket);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// A socket file at `socket` with nobody listening, as a crashed server
// leaves it. Bound under another name and linked into place, because node
// unlinks the bound path when it closes the listener. That second name stays
// (in the same directory), so the stale inode is not freed and reused when
// the plugin replaces the socket: callers can compare inode numbers.
export async function leaveStaleSocket(socket: string): Promise<void> {
  const bindPath = path.join(path.dirname(socket), `.${path.basename(socket)}.stale`);
  fs.rmSync(bindPath, { force: true });
  const server = net.createServer();
  await listenOn(server, bindPath);
  fs.linkSync(bindPath, socket);
  fs.linkSync(bindPath, `${bindPath}.keep`);
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function listenOn(server: net.Server, socket: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
