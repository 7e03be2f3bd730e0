// Test harness that runs a real, throwaway Docker engine (with
// --userns-remap=default) so authorization behaviour can be checked end to end
// instead of against a mocked engine. Everything the engine writes lives in one
// temp dir, which stop() (or the process-exit safety net) tears down.
//
// Engines: the system's (Debian bookworm's dockerd 20.10) and the newer builds
// .ci/fetch-engines unpacks from Debian's archive (trixie's 26.1, sid's 28.5),
// each with its own docker CLI. engineBuilds() lists them; a test that names
// no engine runs on every one, with engineTitle() in its title.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync, chmodSync, closeSync, copyFileSync, existsSync, mkdirSync,
  mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

const DOCKERD = '/usr/sbin/dockerd';
// /usr/local/bin/docker on this machine is a newer client; pin the one that
// matches the 20.10 engine so API version negotiation is never a variable.
const DOCKER = '/usr/bin/docker';
// Where .ci/fetch-engines unpacks the newer engines and the CLI plugins.
export const ENGINE_CACHE = process.env.USERNS_GUARD_ENGINE_CACHE ?? '/var/cache/userns-guard-ci';
// Every test run covers these; under CI=true a missing one is a failure.
export const EXPECTED_ENGINES = ['20.10.24', '26.1.5', '28.5.2'] as const;
const BUSYBOX = '/bin/busybox';
const PLUGIN_SPEC_DIR = '/etc/docker/plugins';
const TEST_SPEC_PREFIX = 'userns-guard-test-';
// Where every engine puts its managed plugins' runtime files, whatever its
// --exec-root (moby's getPluginExecRoot).
const PLUGIN_EXEC_ROOT = '/run/docker/plugins';
const IMAGE = 'ugbox:latest';
const APPLETS = [
  'sh', 'cat', 'ls', 'id', 'echo', 'sleep', 'true', 'false', 'env', 'touch',
  'mkdir', 'rm', 'wc', 'grep', 'head', 'tail', 'readlink', 'stat',
];
// A fixed PATH keeps dockerd from picking up stray containerd/runc builds.
const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

export interface EngineBuild {
  readonly version: string; // e.g. '28.5.2'
  readonly dockerd: string; // the daemon binary
  readonly docker: string;  // a docker CLI that works with it (its own version)
  readonly path: string;    // PATH for dockerd: its own containerd, shim, docker-init, docker-proxy first
}

export interface AuthzPlugin {
  socket: string; // unix socket the plugin listens on
  name?: string;  // defaults to a unique name, so concurrent engines never share a spec file
}

export interface EngineOptions {
  build?: EngineBuild; // default: the system's dockerd (bookworm's 20.10)
  authzPlugins?: AuthzPlugin[];
  // Where the engine serves its API; by default in its temp dir. A plugin
  // that looks things up on the engine is told this path before the engine
  // starts, since the engine needs the plugin up first.
  apiSocket?: string;
  extraArgs?: string[];
}

export interface CommandResult { code: number; stdout: string; stderr: string }

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: string | Buffer;
  chunked?: boolean; // send the body with Transfer-Encoding: chunked and no Content-Length
  // Send Expect: 100-continue and the body only once the engine asks for
  // it. By default for bodies over 1 MiB, as curl does: those are the ones
  // an engine may refuse unread (see httpRequest).
  expectContinue?: boolean;
  timeoutMs?: number;
}

export interface Engine {
  dir: string;           // temp dir (0755 so the remapped root can traverse it)
  socket: string;        // engine API socket path
  host: string;          // 'unix://' + socket, for DOCKER_HOST
  image: string;         // imported busybox image
  pid: number;           // dockerd pid
  pluginNames: string[]; // names passed to --authorization-plugin, in order
  logFile: string;       // dockerd (and its containerd) output
  readonly build: EngineBuild;
  apiVersion: string;    // the engine's own (maximum) API version, from GET /version
  minApiVersion: string; // the oldest API version the engine accepts
  /** Runs the build's docker CLI (with the compose and buildx plugins) against this engine. Rejects on timeout (default 60 s). */
  docker(args: string[], opts?: { input?: string; timeoutMs?: number; cwd?: string; env?: Record<string, string> }): Promise<CommandResult>;
  /** HTTP over the engine socket via node:http. */
  request(method: string, path: string, opts?: RequestOptions): Promise<HttpResult>;
  /** Writes raw bytes on a fresh connection and returns all that is read until close or timeout (default 5 s). */
  raw(bytes: string | Buffer, timeoutMs?: number): Promise<string>;
  /** `docker inspect` of every container, running or not. */
  inspectAll(): Promise<any[]>;
  /** Names (without the leading '/') of containers with HostConfig.UsernsMode === 'host'. */
  hostUsernsContainers(): Promise<string[]>;
  /**
   * Stops dockerd (SIGTERM) and starts it again on the same data root and
   * socket, with these authorization plugins instead: containers stay, and
   * the engine restarts those with a restart policy by itself, as at boot.
   */
  restart(opts?: { authzPlugins?: AuthzPlugin[] }): Promise<void>;
  /** Idempotent full teardown; see stopEngine(). */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Builds

let systemBuildCache: EngineBuild | null | undefined;

/** The system's engine (bookworm's docker.io), or null when it is not installed. */
export function systemBuild(): EngineBuild | null {
  if (systemBuildCache !== undefined) return systemBuildCache;
  systemBuildCache = null;
  if (existsSync(DOCKERD) && existsSync(DOCKER)) {
    const r = spawnSync(DOCKERD, ['--version'], { encoding: 'utf8' });
    const version = /version (\d+\.\d+\.\d+)/.exec(r.stdout ?? '')?.[1];
    if (version !== undefined) systemBuildCache = { version, dockerd: DOCKERD, docker: DOCKER, path: SYSTEM_PATH };
  }
  return systemBuildCache;
}

function cachedBuilds(): EngineBuild[] {
  let names: string[];
  try {
    names = readdirSync(ENGINE_CACHE).filter((n) => n.startsWith('dockerd-'));
  } catch {
    return [];
  }
  const builds: EngineBuild[] = [];
  for (const n of names) {
    const dir = join(ENGINE_CACHE, n);
    if (!existsSync(join(dir, '.complete'))) continue;
    const m = JSON.parse(readFileSync(join(dir, 'engine.json'), 'utf8')) as EngineBuild;
    if (existsSync(m.dockerd) && existsSync(m.docker)) {
      builds.push({ version: m.version, dockerd: m.dockerd, docker: m.docker, path: m.path });
    }
  }
  return builds;
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Every engine this machine can run, oldest first: the system's and those
 * .ci/fetch-engines unpacked. Under CI=true, throws if one of
 * EXPECTED_ENGINES is missing, so a run never covers fewer engines silently.
 */
export function engineBuilds(): EngineBuild[] {
  const byVersion = new Map<string, EngineBuild>();
  const sys = systemBuild();
  if (sys !== null) byVersion.set(sys.version, sys);
  for (const b of cachedBuilds()) if (!byVersion.has(b.version)) byVersion.set(b.version, b);
  const builds = [...byVersion.values()].sort((a, b) => compareVersions(a.version, b.version));
  if (process.env.CI === 'true') {
    const missing = EXPECTED_ENGINES.filter((v) => !byVersion.has(v));
    if (missing.length > 0) {
      throw new Error(`CI=true but dockerd ${missing.join(', ')} missing (found: ${builds.map((b) => b.version).join(', ') || 'none'}); run .ci/fetch-engines`);
    }
  }
  return builds;
}

/** '[dockerd 28.5.2]': goes into the title of every test that runs on an engine. */
export function engineTitle(b: EngineBuild): string {
  return `[dockerd ${b.version}]`;
}

/** The newest engine this machine has. */
export function newestBuild(): EngineBuild | undefined {
  return engineBuilds().at(-1);
}

/**
 * The builds a test loops over: engineBuilds() (so under CI=true a missing
 * engine fails the file), or, when this machine has none, the system's paths
 * so the test still shows up and skips with engineSkipReason()'s reason.
 */
export function buildsForTests(): EngineBuild[] {
  const builds = engineBuilds();
  return builds.length > 0 ? builds : [{ version: 'none', dockerd: DOCKERD, docker: DOCKER, path: SYSTEM_PATH }];
}

/** The directory of compose and buildx CLI plugins, or null when not fetched. */
export function cliPluginsDir(): string | null {
  const dir = join(ENGINE_CACHE, 'cli-plugins');
  return existsSync(join(dir, '.complete')) ? dir : null;
}

// ---------------------------------------------------------------------------
// Skipping

/** null when this machine can run an engine (of that build), otherwise why not. */
export function engineSkipReason(build?: EngineBuild): string | null {
  if (process.platform !== 'linux') return 'real engine tests need Linux';
  if (process.getuid?.() !== 0) return 'real engine tests need root';
  const b = build ?? systemBuild();
  for (const bin of [b?.dockerd ?? DOCKERD, b?.docker ?? DOCKER, BUSYBOX]) {
    if (!existsSync(bin)) return `real engine tests need ${bin}`;
  }
  return null;
}

/**
 * Returns true when the test may go on. Otherwise skips it, except under CI,
 * where a silently skipped engine test would hide a broken runner: then it throws.
 */
export function requireEngineOrSkip(t: TestContext, build?: EngineBuild): boolean {
  const reason = engineSkipReason(build);
  if (reason === null) return true;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${reason}`);
  t.skip(reason);
  return false;
}

// ---------------------------------------------------------------------------
// Start

interface Tracked {
  dir: string;
  pid: number;
  specFiles: string[];
  // Resolves once node has reaped dockerd; until then its zombie keeps /proc/<pid>.
  exited: Promise<void>;
}

// Engines not yet stopped, so a crashing test process still reaps them.
const live = new Map<string, Tracked>();

export async function startEngine(opts: EngineOptions = {}): Promise<Engine> {
  const reason = engineSkipReason(opts.build);
  if (reason !== null) throw new Error(reason);
  const build = opts.build ?? systemBuild()!;
  ensureDockremap();
  installExitNet();

  const dir = mkdtempSync(join(tmpdir(), 'ug-'));
  chmodSync(dir, 0o755);
  const socket = opts.apiSocket ?? join(dir, 'docker.sock');
  const logFile = join(dir, 'dockerd.log');
  const plugins = (opts.authzPlugins ?? []).map((p) => ({
    socket: p.socket,
    name: p.name ?? `${TEST_SPEC_PREFIX}${randomBytes(6).toString('hex')}`,
  }));
  await removeStaleTestSpecs();
  const tracked: Tracked = { dir, pid: 0, specFiles: plugins.map((p) => specPath(p.name)), exited: Promise.resolve() };
  live.set(dir, tracked);

  try {
    writePluginSpecs(plugins);
    writeFileSync(join(dir, 'daemon.json'), '{}\n');
    const child = spawnDockerd(build, dir, socket, logFile, plugins.map((p) => p.name), opts.extraArgs ?? []);
    tracked.pid = child.pid!;
    tracked.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    const engine = makeEngine({ dir, socket, logFile, pid: tracked.pid, pluginNames: plugins.map((p) => p.name), build, extraArgs: opts.extraArgs ?? [] });
    await waitForPing(engine);
    const version = await engine.request('GET', '/version');
    if (version.status !== 200) throw new Error(`GET /version: ${version.status} ${version.body}`);
    const v = JSON.parse(version.body) as { ApiVersion: string; MinAPIVersion: string };
    engine.apiVersion = v.ApiVersion;
    engine.minApiVersion = v.MinAPIVersion;
    await importBusybox(engine);
    return engine;
  } catch (err) {
    await stopEngine(tracked, null);
    throw err;
  }
}

// dockerd would create dockremap itself, but two engines starting at once on a
// fresh machine would race on useradd and /etc/subuid.
function ensureDockremap(): void {
  if (spawnSync('id', ['dockremap'], { stdio: 'ignore' }).status !== 0) {
    const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'dockremap'], { encoding: 'utf8' });
    if (r.status !== 0 && spawnSync('id', ['dockremap'], { stdio: 'ignore' }).status !== 0) {
      throw new Error(`useradd dockremap failed: ${r.stderr}`);
    }
  }
  for (const file of ['/etc/subuid', '/etc/subgid']) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (!/^dockremap:/m.test(text)) {
      appendFileSync(file, `${text === '' || text.endsWith('\n') ? '' : '\n'}dockremap:100000:65536\n`);
    }
  }
}

// Every engine probes every plugin it can discover when asked for a volume
// name it does not know, and waits about 15 s on one whose socket is dead. A
// spec left by an aborted run of this suite would make all later engines slow
// at that, and the guard's volume lookups time out: remove those, and only
// those (ours by name, not held by this process, nobody listening).
async function removeStaleTestSpecs(): Promise<void> {
  if (!existsSync(PLUGIN_SPEC_DIR)) return;
  const ours = new Set([...live.values()].flatMap((t) => t.specFiles));
  for (const name of readdirSync(PLUGIN_SPEC_DIR)) {
    const file = join(PLUGIN_SPEC_DIR, name);
    if (!name.startsWith(TEST_SPEC_PREFIX) || !name.endsWith('.spec') || ours.has(file)) continue;
    const addr = readFileSync(file, 'utf8').trim().replace(/^unix:\/\//, '');
    if (!(await listening(addr))) rmSync(file, { force: true });
  }
}

function listening(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.createConnection(socketPath);
    const done = (up: boolean) => { clearTimeout(timer); conn.destroy(); resolve(up); };
    const timer = setTimeout(() => done(true), 1_000); // slow is not dead
    conn.on('connect', () => done(true));
    conn.on('error', () => done(false));
  });
}

function specPath(name: string): string {
  return join(PLUGIN_SPEC_DIR, `${name}.spec`);
}

// Spec files (rather than /run/docker/plugins/NAME.sock) let the plugin socket
// live in the test's own temp dir.
function writePluginSpecs(plugins: { name: string; socket: string }[]): void {
  if (plugins.length === 0) return;
  mkdirSync(PLUGIN_SPEC_DIR, { recursive: true });
  for (const p of plugins) writeFileSync(specPath(p.name), `unix://${p.socket}\n`);
}

function spawnDockerd(build: EngineBuild, dir: string, socket: string, logFile: string, pluginNames: string[], extraArgs: string[]): ChildProcess {
  const args = [
    '--config-file', join(dir, 'daemon.json'), // ignore the host's /etc/docker/daemon.json
    '--data-root', join(dir, 'data'),
    '--exec-root', join(dir, 'exec'),
    '--pidfile', join(dir, 'docker.pid'),
    '-H', `unix://${socket}`,
    '--userns-remap=default',
    '--storage-driver=vfs', // works on any backing fs, and images here are tiny
    '--iptables=false', '--ip-forward=false', '--bridge=none', // leave host networking alone
    ...pluginNames.map((n) => `--authorization-plugin=${n}`),
    ...extraArgs,
  ];
  const log = openSync(logFile, 'a');
  try {
    const child = spawn(build.dockerd, args, {
      stdio: ['ignore', log, log],
      env: { ...process.env, PATH: build.path },
    });
    if (child.pid === undefined) throw new Error(`could not spawn ${build.dockerd}`);
    // A test that forgets stop() must not hang the runner; the exit net reaps it.
    child.unref();
    return child;
  } finally {
    closeSync(log);
  }
}

async function waitForPing(engine: Engine, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(engine.pid)) throw new Error(`dockerd exited during startup:\n${logTail(engine.logFile)}`);
    try {
      const r = await engine.request('GET', '/_ping', { timeoutMs: 2_000 });
      if (r.status === 200) return;
    } catch {
      // socket not there yet
    }
    await sleep(100);
  }
  throw new Error(`dockerd not ready after ${timeoutMs} ms:\n${logTail(engine.logFile)}`);
}

// No registry is reachable, so the only image is one built from busybox-static.
async function importBusybox(engine: Engine): Promise<void> {
  const rootfs = join(engine.dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  mkdirSync(join(rootfs, 'tmp'));
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  for (const applet of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', applet));
  const tarball = join(engine.dir, 'rootfs.tar');
  const tar = spawnSync('tar', ['-C', rootfs, '-cf', tarball, '.'], { encoding: 'utf8' });
  if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr}`);
  const r = await engine.docker(['import', '--change', 'ENV PATH=/bin', tarball, engine.image]);
  if (r.code !== 0) throw new Error(`docker import failed: ${r.stderr}`);
}

// ---------------------------------------------------------------------------
// Engine handle

function makeEngine(base: { dir: string; socket: string; logFile: string; pid: number; pluginNames: string[]; build: EngineBuild; extraArgs: string[] }): Engine {
  let stopping: Promise<void> | undefined;
  const clientConfig = makeClientConfig(base.dir);
  const engine: Engine = {
    ...base,
    host: `unix://${base.socket}`,
    image: IMAGE,
    apiVersion: '',
    minApiVersion: '',
    docker: (args, opts) => runDocker(base.build.docker, clientConfig, `unix://${base.socket}`, args, opts),
    request: (method, path, opts) => httpRequest(base.socket, method, path, opts),
    raw: (bytes, timeoutMs) => rawExchange(base.socket, bytes, timeoutMs),
    inspectAll: () => inspectAll(engine),
    hostUsernsContainers: async () =>
      (await inspectAll(engine))
        .filter((c) => c.HostConfig?.UsernsMode === 'host')
        .map((c) => String(c.Name).replace(/^\//, '')),
    restart: (opts = {}) => restartEngine(engine, base.extraArgs, opts.authzPlugins ?? []),
    stop: () => {
      const tracked = live.get(base.dir);
      stopping ??= tracked ? stopEngine(tracked, engine) : Promise.resolve();
      return stopping;
    },
  };
  return engine;
}

async function restartEngine(engine: Engine, extraArgs: string[], authzPlugins: AuthzPlugin[]): Promise<void> {
  const tracked = live.get(engine.dir);
  if (tracked === undefined) throw new Error('the engine was stopped');
  await terminate(tracked.pid, 10_000);
  await waitReaped(tracked, 5_000);
  // 20.10's containerd can outlive dockerd for a while and keep its socket;
  // a new dockerd then times out starting its own. Containers stop with the
  // engine anyway, and it restarts those with a restart policy.
  const deadline = Date.now() + 5_000;
  while (ownedPids(engine.dir).length > 0 && Date.now() < deadline) await sleep(100);
  killLeftovers(engine.dir);
  // SIGKILL is not death yet: an old containerd still holding its metadata
  // database makes the new one hang until dockerd gives up on it.
  const killed = Date.now() + 5_000;
  while (ownedPids(engine.dir).length > 0 && Date.now() < killed) await sleep(50);
  const plugins = authzPlugins.map((p) => ({ socket: p.socket, name: p.name ?? `${TEST_SPEC_PREFIX}${randomBytes(6).toString('hex')}` }));
  writePluginSpecs(plugins);
  tracked.specFiles.push(...plugins.map((p) => specPath(p.name)));
  const spawn = () => {
    const child = spawnDockerd(engine.build, engine.dir, engine.socket, engine.logFile, plugins.map((p) => p.name), extraArgs);
    tracked.pid = child.pid!;
    tracked.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    engine.pid = tracked.pid;
    engine.pluginNames = plugins.map((p) => p.name);
  };
  spawn();
  try {
    await waitForPing(engine);
  } catch {
    // 20.10 now and then times out starting its containerd on a restart
    // under load: clear what is left and start it once more.
    killLeftovers(engine.dir);
    await sleep(2_000);
    spawn();
    await waitForPing(engine);
  }
}

// Own DOCKER_CONFIG so the user's contexts/credential helpers never apply;
// its cli-plugins/ holds compose and buildx when .ci/fetch-engines got them.
function makeClientConfig(dir: string): string {
  const config = join(dir, 'client-config');
  mkdirSync(config, { recursive: true });
  const plugins = cliPluginsDir();
  if (plugins !== null) {
    mkdirSync(join(config, 'cli-plugins'));
    for (const p of ['docker-compose', 'docker-buildx']) symlinkSync(join(plugins, p), join(config, 'cli-plugins', p));
  }
  return config;
}

function runDocker(docker: string, config: string, host: string, args: string[], opts: { input?: string; timeoutMs?: number; cwd?: string; env?: Record<string, string> } = {}): Promise<CommandResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: config, ...opts.env };
  delete env.DOCKER_CONTEXT;
  return new Promise((resolve, reject) => {
    const child = spawn(docker, args, { env, stdio: ['pipe', 'pipe', 'pipe'], ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`docker ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => { /* client may exit before reading stdin */ });
    child.stdin.end(opts.input ?? '');
  });
}

function httpRequest(socketPath: string, method: string, path: string, opts: RequestOptions = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...opts.headers };
  const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
  if (body !== undefined && opts.chunked) headers['Transfer-Encoding'] = 'chunked';
  else if (body !== undefined) headers['Content-Length'] = String(body.length);
  // An engine that refuses a body unread answers and closes at once; a
  // client still writing then gets EPIPE, and node destroys the socket
  // before reading the answer waiting in it. Unasked, no body is written.
  const expectContinue = body !== undefined && (opts.expectContinue ?? body.length > 1 << 20);
  if (expectContinue) headers['Expect'] = '100-continue';
  return new Promise((resolve, reject) => {
    let answer: http.IncomingMessage | null = null;
    // agent:false: a fresh connection per call, so no keep-alive socket outlives a test.
    const req = http.request({ socketPath, method, path, headers, agent: false, timeout: opts.timeoutMs ?? 30_000 }, (res) => {
      answer = res;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    // A write that fails after the whole answer arrived (the engine closed
    // without reading the rest) leaves that answer to 'end'.
    req.on('error', (err) => { if (!answer?.complete) reject(err); });
    const send = (): void => {
      if (body !== undefined && opts.chunked) {
        // Split in two so the engine sees a genuinely multi-chunk body.
        const mid = Math.floor(body.length / 2);
        req.write(body.subarray(0, mid));
        req.write(body.subarray(mid));
      } else if (body !== undefined) {
        req.write(body);
      }
      req.end();
    };
    if (expectContinue) req.on('continue', send);
    else send();
  });
}

// For requests node:http refuses to produce (absolute-form targets, odd encodings).
function rawExchange(socketPath: string, bytes: string | Buffer, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const conn = net.createConnection(socketPath);
    const done = () => { clearTimeout(timer); conn.destroy(); resolve(Buffer.concat(chunks).toString('utf8')); };
    // Go keeps HTTP/1.1 connections open, so a timeout is a normal way to finish.
    const timer = setTimeout(done, timeoutMs);
    conn.on('connect', () => conn.write(bytes));
    conn.on('data', (c: Buffer) => chunks.push(c));
    conn.on('close', done);
    conn.on('error', (err) => {
      // A reset after the response still counts as an answer.
      if (chunks.length > 0) done();
      else { clearTimeout(timer); reject(err); }
    });
  });
}

async function inspectAll(engine: Engine): Promise<any[]> {
  const ps = await engine.docker(['ps', '-aq', '--no-trunc']);
  if (ps.code !== 0) throw new Error(`docker ps failed: ${ps.stderr}`);
  const ids = ps.stdout.split('\n').filter(Boolean);
  if (ids.length === 0) return [];
  const r = await engine.docker(['inspect', ...ids]);
  // A container removed between ps and inspect makes inspect exit 1 but still print the rest.
  return JSON.parse(r.stdout || '[]');
}

// ---------------------------------------------------------------------------
// Stop

async function stopEngine(tracked: Tracked, engine: Engine | null): Promise<void> {
  if (engine !== null && isAlive(tracked.pid)) await removeContainers(engine);
  if (tracked.pid > 0) await terminate(tracked.pid, 10_000);
  reap(tracked);
  await waitReaped(tracked, 5_000);
  live.delete(tracked.dir);
}

// Removing containers through the engine is the clean path: shims and
// container processes go away and dockerd unmounts their rootfs itself.
async function removeContainers(engine: Engine): Promise<void> {
  try {
    const ps = await engine.docker(['ps', '-aq'], { timeoutMs: 15_000 });
    const ids = ps.stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await engine.docker(['rm', '-f', ...ids], { timeoutMs: 30_000 });
  } catch {
    // reap() below handles whatever is left
  }
}

async function terminate(pid: number, graceMs: number): Promise<void> {
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid)) {
    signal(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(20);
  }
}

// The child handle is unref'd, so a ref'd timer must keep the loop alive while
// node reaps the zombie; cleared afterwards so it does not delay process exit.
async function waitReaped(tracked: Tracked, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); });
  await Promise.race([tracked.exited, timeout]);
  clearTimeout(timer);
}

// Synchronous so the process-exit net can use it too.
function reap(tracked: Tracked): void {
  if (tracked.pid > 0) signal(tracked.pid, 'SIGKILL');
  killLeftovers(tracked.dir);
  unmountUnder(tracked.dir);
  for (const f of tracked.specFiles) rmSync(f, { force: true });
  for (const id of managedPluginIds(tracked.dir)) rmSync(join(PLUGIN_EXEC_ROOT, id), { recursive: true, force: true });
  try {
    rmSync(tracked.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  } catch {
    // best effort: a busy mount must not turn a passing test into a failure
  }
}

// Managed plugins live in the data root (the remapped one under
// --userns-remap), their runtime files outside the temp dir.
function managedPluginIds(dir: string): string[] {
  const data = join(dir, 'data');
  const roots = [join(data, 'plugins'), ...safeReaddir(data).filter((d) => /^\d+\.\d+$/.test(d)).map((d) => join(data, d, 'plugins'))];
  return roots.flatMap((r) => safeReaddir(r)).filter((id) => /^[0-9a-f]{64}$/.test(id));
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

// Processes (containerd, shims) naming the temp dir on their command line.
function ownedPids(dir: string): number[] {
  return listPids().filter((pid) => pid !== process.pid && readProc(pid, 'cmdline')?.includes(`${dir}/`));
}

// containerd and its shims name the temp dir on their command line; the
// container init processes are the shims' children and do not, so take those
// too. Killing a container's pid-namespace init kills the whole container.
function killLeftovers(dir: string): void {
  const marker = `${dir}/`;
  const owned = new Set<number>();
  const parents = new Map<number, number>();
  for (const pid of listPids()) {
    if (pid === process.pid) continue;
    const cmdline = readProc(pid, 'cmdline');
    if (cmdline?.includes(marker)) owned.add(pid);
    const ppid = parentPid(pid);
    if (ppid !== null) parents.set(pid, ppid);
  }
  const children = [...parents].filter(([pid, ppid]) => owned.has(ppid) && !owned.has(pid)).map(([pid]) => pid);
  for (const pid of children) signal(pid, 'SIGKILL');
  for (const pid of owned) signal(pid, 'SIGKILL');
}

function listPids(): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
}

function readProc(pid: number, file: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return null; // the process exited meanwhile
  }
}

function parentPid(pid: number): number | null {
  const stat = readProc(pid, 'stat');
  if (stat === null) return null;
  // comm (field 2) may contain spaces and parens; fields after the last ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[1]);
}

// dockerd leaves mounts behind when it is killed (container rootfs, netns, shm);
// rm -rf cannot remove a mount point, so detach them deepest first.
function unmountUnder(dir: string): void {
  const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((mp): mp is string => mp !== undefined)
    .map((mp) => mp.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((mp) => mp === dir || mp.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const mp of mountPoints) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
}

// ---------------------------------------------------------------------------
// Process-exit safety net

let exitNetInstalled = false;

function installExitNet(): void {
  if (exitNetInstalled) return;
  exitNetInstalled = true;
  // 'exit' handlers must be synchronous, hence reap() rather than stop().
  process.on('exit', () => {
    for (const tracked of live.values()) reap(tracked);
    live.clear();
  });
  // Without a listener these signals end node without firing 'exit'.
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(sig, () => process.exit(code));
  }
}

// ---------------------------------------------------------------------------
// Small helpers

function isAlive(pid: number): boolean {
  if (pid <= 0) return false;
  const stat = readProc(pid, 'stat');
  // A zombie still has a /proc entry but is already dead for our purposes.
  return stat !== null && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function logTail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no dockerd log)';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
