// Where the server listens: a socket systemd hands over (socket activation),
// or a unix socket of our own that only root may connect to.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export type ListenTarget =
  | { readonly kind: 'activated'; readonly fd: number }
  | { readonly kind: 'path'; readonly path: string };

// sd_listen_fds(3): the fds are meant for us only when LISTEN_PID is our pid.
export function listenTarget(socketPath: string, env: NodeJS.ProcessEnv, pid: number): ListenTarget {
  if (env.LISTEN_FDS === '1' && env.LISTEN_PID === String(pid)) return { kind: 'activated', fd: 3 };
  return { kind: 'path', path: socketPath };
}

export class ListenError extends Error {}

export interface Listening {
  // Removes the socket file if we created it; an inherited one is systemd's.
  release(): void;
}

export async function listen(server: net.Server, target: ListenTarget): Promise<Listening> {
  if (target.kind === 'activated') {
    // Name the fd in the error: --socket is not involved here, and an error
    // naming it would send the operator to the wrong place.
    const what = `fd ${target.fd} passed by socket activation (LISTEN_FDS=1)`;
    let isSocket = false;
    try {
      isSocket = fs.fstatSync(target.fd).isSocket();
    } catch (err) {
      throw new ListenError(`cannot serve ${what}: ${(err as Error).message}`);
    }
    if (!isSocket) throw new ListenError(`cannot serve ${what}: it is not a socket`);
    try {
      await listenOn(server, { fd: target.fd });
    } catch (err) {
      throw new ListenError(`cannot serve ${what}: ${(err as Error).message}`);
    }
    return { release() {} };
  }
  const socketPath = target.path;
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
  await removeStaleSocket(socketPath);
  // The umask makes the socket 0600 from the moment it exists, not only
  // after the chmod.
  const oldMask = process.umask(0o177);
  try {
    await listenOn(server, { path: socketPath });
  } finally {
    process.umask(oldMask);
  }
  fs.chmodSync(socketPath, 0o600);
  const ours = fs.statSync(socketPath).ino;
  return {
    release() {
      try {
        if (fs.statSync(socketPath).ino === ours) fs.unlinkSync(socketPath);
      } catch {
        // Already gone.
      }
    },
  };
}

// `{ fd }` takes node's handle overload, `{ path }` the options one.
function listenOn(server: net.Server, options: { fd: number } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(options, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

// A socket file left by a crashed run is replaced; one on which a live
// process answers is not, and neither is anything that is not a socket.
async function removeStaleSocket(socketPath: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new ListenError(`${socketPath} exists and is not a socket; refusing to replace it`);
  if (await answers(socketPath)) {
    throw new ListenError(`another process is already serving on ${socketPath}`);
  }
  fs.unlinkSync(socketPath);
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.connect(socketPath);
    const finish = (live: boolean) => {
      conn.destroy();
      resolve(live);
    };
    conn.once('connect', () => finish(true));
    conn.once('error', (err: NodeJS.ErrnoException) => finish(err.code !== 'ECONNREFUSED' && err.code !== 'ENOENT'));
    conn.setTimeout(2_000, () => finish(true));
  });
}
