// Runs the built binary (dist/userns-guard) as tests need it: on a unix
// socket in a temp dir, with its stderr (the audit log) captured, and talks
// to it with node:http the way the engine does.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BINARY = path.join(ROOT, 'dist', 'userns-guard');

export interface PluginProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly dir: string;
  readonly socket: string;
  // The engine socket it looks things up on (--engine-socket).
  readonly engineSocket: string;
  // Everything the plugin wrote to stderr so far.
  stderr(): string;
  // Parsed JSON lines of stderr (the audit log).
  records(): Record<string, unknown>[];
  call(pluginPath: string, body: string | Buffer, agent?: http.Agent): Promise<HttpResult>;
  // Sends an AuthZReq envelope and returns the parsed answer.
  authz(envelope: object | string): Promise<{ Allow: boolean; Msg: string }>;
  // SIGTERM, then SIGKILL after a while; resolves with the exit code.
  stop(): Promise<number | null>;
}

export interface HttpResult {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export interface StartOptions {
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  // Defaults to <fresh temp dir>/plugin.sock.
  readonly socket?: string;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

// One directory for the engines' API sockets the plugins are told about,
// removed when the test process exits.
let apiDir: string | undefined;
function apiSocketDir(): string {
  if (apiDir === undefined) {
    const dir = makeTempDir('ug-api-');
    apiDir = dir;
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return apiDir;
}

export function makeTempDir(prefix = 'ug-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  // The engine's remapped root must be able to traverse it.
  fs.chmodSync(dir, 0o755);
  return dir;
}

export async function startPlugin(opts: StartOptions = {}): Promise<PluginProcess> {
  const dir = makeTempDir();
  const socket = opts.socket ?? path.join(dir, 'plugin.sock');
  // Where the plugin looks things up; pass it to startEngine as apiSocket.
  // Not in `dir`: the engine outlives a plugin that a test swaps.
  const engineSocket = path.join(apiSocketDir(), `engine-${path.basename(dir)}.sock`);
  const lookups = (opts.args ?? []).includes('--engine-socket') ? [] : ['--engine-socket', engineSocket];
  const child = spawn(BINARY, ['--socket', socket, ...lookups, ...(opts.args ?? [])], {
    env: opts.env ?? { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.add(child);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  exited.then(() => running.delete(child));

  await waitFor(() => fs.existsSync(socket) && err.includes('userns-guard started'), 10_000, () => `plugin did not start: ${err}`);

  const p: PluginProcess = {
    child,
    pid: child.pid!,
    dir,
    socket,
    engineSocket,
    stderr: () => err,
    records: () =>
      err
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    call: (pluginPath, body, agent) => post(socket, pluginPath, body, agent),
    async authz(envelope) {
      const r = await post(socket, '/AuthZPlugin.AuthZReq', typeof envelope === 'string' ? envelope : JSON.stringify(envelope));
      if (r.status !== 200) throw new Error(`AuthZReq answered ${r.status}: ${r.body}`);
      return JSON.parse(r.body) as { Allow: boolean; Msg: string };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
        const code = await exited;
        clearTimeout(timer);
        fs.rmSync(dir, { recursive: true, force: true });
        return code;
      }
      fs.rmSync(dir, { recursive: true, force: true });
      return child.exitCode;
    },
  };
  return p;
}

export function post(socket: string, pluginPath: string, body: string | Buffer, agent?: http.Agent): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: socket,
        path: pluginPath,
        method: 'POST',
        agent: agent ?? false,
        headers: { Accept: 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => readResponse(res).then(resolve, reject),
    );
    req.on('error', reject);
    req.end(body);
  });
}

export function readResponse(res: http.IncomingMessage): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    let data = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => (data += d));
    res.on('error', reject);
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
  });
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

// Runs the built binary to completion (a subcommand, --help, ...) with a
// minimal environment, killing it if it hangs.
export function runBinary(args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(BINARY, [...args], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// An AuthZReq envelope as the engine builds it; `body` is the raw request
// body (base64-encoded here) or null when the engine forwarded none.
export function envelope(
  method: string,
  uri: string,
  body: string | Buffer | null = null,
  headers: Record<string, string> = body === null ? {} : { 'Content-Type': 'application/json' },
  user = '',
): object {
  return {
    User: user,
    UserAuthNMethod: user === '' ? '' : 'TLS',
    RequestMethod: method,
    RequestUri: uri,
    RequestBody: body === null ? null : Buffer.from(body).toString('base64'),
    RequestHeaders: headers,
    RequestPeerCertificates: null,
  };
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(what());
    await new Promise((r) => setTimeout(r, 20));
  }
}
