// What systemd does for userns-guard.socket + Restart=always, small enough
// for a test: bind the plugin's listening socket once, keep it open, and
// (re)start the plugin on it with LISTEN_FDS=1, LISTEN_PID=<its own pid> and
// the socket as fd 3, again and again after it dies.
//
// The socket is kept by a shell loop, not by node: a listening node server
// would accept the engine's connections itself. The shell never accepts, so
// while no plugin runs, connections wait in the kernel's backlog.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface SocketHolder {
  readonly socket: string;
  // The pid of the plugin started last (it may already be dead).
  current(): number | null;
  // How many plugin processes were started so far.
  starts(): number;
  // SIGKILLs the running plugin; false when none was running.
  kill(): boolean;
  // Changes the pause before the next restart (RestartSec=), e.g. to hold
  // the plugin down long enough for a test to call into the gap.
  setRestartDelay(ms: number): void;
  // Resolves when a plugin process newer than `pid` has started.
  nextStart(pid: number | null, timeoutMs?: number): Promise<number>;
  // All the plugins wrote to stderr (the audit log of every generation).
  stderr(): string;
  stop(): Promise<void>;
}

export interface HolderOptions {
  readonly socket: string;
  readonly binary: string;
  readonly args?: readonly string[];
  // Like RestartSec=: the pause between a plugin's death and its restart.
  readonly restartDelayMs?: number;
}

// $1 is a file holding the restart delay in seconds, the rest the plugin's
// command line. `$$` in the inner shell is the pid the plugin keeps across
// `exec`.
const LOOP = `
delayfile=$1; shift
while :; do
  LISTEN_FDS=1 sh -c 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"' "$@" >/dev/null &
  echo "start $!"
  wait $!
  sleep "$(cat "$delayfile")"
done
`;

export async function startSocketHolder(opts: HolderOptions): Promise<SocketHolder> {
  fs.rmSync(opts.socket, { force: true });
  const listener = await bindListener(opts.socket);

  const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
  const delayFile = `${opts.socket}.restart-delay`;
  const setRestartDelay = (ms: number) => fs.writeFileSync(delayFile, (ms / 1000).toFixed(3));
  setRestartDelay(opts.restartDelayMs ?? 100);
  const shell: ChildProcess = spawn('/bin/sh', ['-c', LOOP, 'socket-holder', delayFile, opts.binary, ...(opts.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe', fd],
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    // Its own process group, so stop() can end the loop and the plugin together.
    detached: true,
  });
  // Only the shell keeps the socket from here on.
  await new Promise<void>((resolve) => listener.close(() => resolve()));

  const exited = new Promise<void>((resolve) => shell.once('exit', () => resolve()));
  const pids: number[] = [];
  const waiters = new Set<() => void>();
  let out = '';
  let err = '';
  shell.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    const lines = out.split('\n');
    out = lines.pop()!;
    for (const line of lines) {
      const m = /^start (\d+)$/.exec(line);
      if (m) pids.push(Number(m[1]));
    }
    for (const wake of waiters) wake();
  });
  shell.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exitNet = () => killGroup(shell);
  process.once('exit', exitNet);

  const holder: SocketHolder = {
    socket: opts.socket,
    current: () => pids.at(-1) ?? null,
    starts: () => pids.length,
    kill() {
      const pid = pids.at(-1);
      if (pid === undefined) return false;
      try {
        process.kill(pid, 'SIGKILL');
        return true;
      } catch {
        return false;
      }
    },
    nextStart(pid, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const latest = pids.at(-1);
          if (latest !== undefined && latest !== pid) {
            finish();
            resolve(latest);
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`no plugin start after pid ${pid} within ${timeoutMs} ms:\n${err.slice(-2000)}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    setRestartDelay,
    stderr: () => err,
    async stop() {
      process.off('exit', exitNet);
      killGroup(shell);
      await exited;
      fs.rmSync(opts.socket, { force: true });
      fs.rmSync(delayFile, { force: true });
    },
  };
  return holder;
}

// Binds under a temporary name and links the socket to its real name: node
// (libuv) unlinks the bound path when it closes its copy of the listener,
// and the real name must outlive that.
async function bindListener(socket: string): Promise<net.Server> {
  const bindPath = path.join(path.dirname(socket), `.${path.basename(socket)}.bind`);
  fs.rmSync(bindPath, { force: true });
  const listener = net.createServer();
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ path: bindPath, backlog: 1024 }, () => resolve());
  });
  fs.chmodSync(bindPath, 0o600);
  fs.linkSync(bindPath, socket);
  return listener;
}

function killGroup(shell: ChildProcess): void {
  if (shell.pid === undefined || shell.exitCode !== null || shell.signalCode !== null) return;
  try {
    process.kill(-shell.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
