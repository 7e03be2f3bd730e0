// Starts the plugins under test as their own processes, each on a socket in
// its own temp dir, and measures cold start: exec to the first answered
// /Plugin.Activate.

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const GUARD_BINARY = path.join(ROOT, 'dist', 'userns-guard');
const NULL_PLUGIN = path.join(ROOT, 'bench', 'null-plugin.mjs');

export interface PluginSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  // The file that ships: the binary, or for the null plugin its script.
  readonly shipped: string;
  // Whether it is expected to refuse hostile calls.
  readonly enforces: boolean;
  // Extra environment, e.g. NODE_OPTIONS for memory experiments.
  readonly env: Readonly<Record<string, string>>;
}

export function guardSpec(binary: string, extraArgs: readonly string[] = [], env: Record<string, string> = {}): PluginSpec {
  return { name: 'userns-guard', command: binary, args: extraArgs, shipped: binary, enforces: true, env };
}

export function nullSpec(nodeBinary: string, env: Record<string, string> = {}): PluginSpec {
  return { name: 'null', command: nodeBinary, args: [NULL_PLUGIN], shipped: NULL_PLUGIN, enforces: false, env };
}

export interface Executables {
  readonly guard: string;
  // The Node that runs the benchmark (Node 24 from node_modules under npm).
  readonly node: string;
  remove(): void;
}

// Both executables are copied into a temp dir and run from there, as an
// install copies them. RSS counts the pages of the executable a process has
// mapped, and how many a page fault maps depends on how the file's page
// cache was filled: for a binary the build has just written in one piece the
// kernel maps it in large chunks (~60 MiB resident instead of ~38 MiB here),
// which is an artefact of the build, not something a host would see.
export function copyExecutables(): Executables {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ug-bench-bin-'));
  chmodSync(dir, 0o755);
  const guard = path.join(dir, 'userns-guard');
  const node = path.join(dir, 'node');
  copyFileSync(GUARD_BINARY, guard);
  copyFileSync(process.execPath, node);
  chmodSync(guard, 0o755);
  chmodSync(node, 0o755);
  return { guard, node, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RunningPlugin {
  readonly spec: PluginSpec;
  readonly pid: number;
  readonly socket: string;
  logTail(): string;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

// stderr (the audit log) goes to a pipe this process drains, as journald
// would drain it; the last few KiB are kept for error reports.
function launch(spec: PluginSpec): { child: ChildProcess; dir: string; socket: string; stderrTail: () => string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ug-bench-'));
  // The engine's remapped root must be able to reach the socket.
  chmodSync(dir, 0o755);
  const socket = path.join(dir, 'plugin.sock');
  const child = spawn(spec.command, [...spec.args, '--socket', socket], {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...spec.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let tail = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    tail = (tail + d).slice(-4096);
  });
  return { child, dir, socket, stderrTail: () => tail };
}

async function stopChild(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(dir, { recursive: true, force: true });
}

export async function startPlugin(spec: PluginSpec): Promise<RunningPlugin> {
  const { child, dir, socket, stderrTail } = launch(spec);
  try {
    await waitForActivate(socket, child, 10_000);
  } catch (err) {
    await stopChild(child, dir);
    throw new Error(`${spec.name} did not start: ${(err as Error).message}\n${stderrTail()}`);
  }
  return { spec, pid: child.pid!, socket, logTail: stderrTail, stop: () => stopChild(child, dir) };
}

// Exec to the first answered /Plugin.Activate, in ms: what the engine waits
// for when it (re)starts with the plugin.
export async function coldStartMs(spec: PluginSpec): Promise<number> {
  const t0 = performance.now();
  const { child, dir, socket } = launch(spec);
  try {
    await waitForActivate(socket, child, 10_000);
    return performance.now() - t0;
  } finally {
    await stopChild(child, dir);
  }
}

const ACTIVATE_REQUEST = Buffer.from(
  'POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 0\r\n' +
    'Accept: application/vnd.docker.plugins.v1.2+json\r\n\r\n',
);

async function waitForActivate(socket: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited with ${child.exitCode ?? child.signalCode}`);
    const answer = await tryActivate(socket);
    if (answer !== null) {
      if (!answer.startsWith('HTTP/1.1 200') || !answer.includes('"Implements"')) throw new Error(`bad Activate answer: ${answer}`);
      return;
    }
    // Poll often: the figure is in milliseconds.
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`no answer to /Plugin.Activate within ${timeoutMs} ms`);
}

// The whole answer, or null while nothing listens yet.
function tryActivate(socket: string): Promise<string | null> {
  return new Promise((resolve) => {
    const conn = net.createConnection(socket);
    let data = '';
    conn.on('connect', () => conn.write(ACTIVATE_REQUEST));
    conn.setEncoding('latin1');
    conn.on('data', (d: string) => {
      data += d;
      if (data.includes('\r\n\r\n') && data.trimEnd().endsWith('}')) {
        conn.destroy();
        resolve(data);
      }
    });
    conn.on('error', () => resolve(null));
    conn.on('close', () => resolve(data === '' ? null : data));
  });
}
