// A real host for the tests: a Debian bookworm root file system (systemd,
// docker.io, busybox) built with mmdebstrap, imported into a plain outer
// dockerd of the test's own and booted with systemd as PID 1. Inside it,
// docker.service and userns-guard run under systemd the way they run on an
// operator's machine.
//
// The outer engine lives in one temp dir; stop() removes its container,
// stops it by pid and removes the dir (a process-exit net does the same if a
// test forgets). The root file system tarball is cached between runs.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CommandResult } from './engine.ts';

const DOCKERD = '/usr/sbin/dockerd';
// The client that matches the 20.10 engine (/usr/local/bin/docker may be newer).
const DOCKER = '/usr/bin/docker';
const MMDEBSTRAP = '/usr/bin/mmdebstrap';
const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

export const CACHE_DIR = '/var/cache/userns-guard-ci/systemd-host';
const SUITE = 'bookworm';
const MIRROR = 'http://deb.debian.org/debian';
// What an operator's host has, plus jq for the README's audit queries.
const PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'docker.io', 'busybox-static', 'ca-certificates', 'procps', 'jq'];
const MMDEBSTRAP_ARGS = ['--variant=minbase', `--include=${PACKAGES.join(',')}`, SUITE];

// How the host container runs. Not --privileged: the machines CI runs on
// lack CAP_SYS_RESOURCE, which --privileged asks for, so every capability
// but that one. The inner engine mounts /proc in a new user namespace, which
// needs an unmasked /proc (systempaths=unconfined) and no seccomp filter;
// systemd needs the cgroup hierarchy writable and container=docker.
const HOST_RUN_ARGS = [
  '--cap-add', 'ALL', '--cap-drop', 'SYS_RESOURCE',
  '--security-opt', 'seccomp=unconfined',
  '--security-opt', 'apparmor=unconfined',
  '--security-opt', 'systempaths=unconfined',
  '--device-cgroup-rule', 'a *:* rwm',
  '--network', 'none',
  '-e', 'container=docker',
  '--tmpfs', '/run', '--tmpfs', '/run/lock',
  '-v', '/sys/fs/cgroup:/sys/fs/cgroup:rw',
  // systemd halts cleanly on SIGRTMIN+3 (SIGTERM would make it re-execute).
  '--stop-signal', 'SIGRTMIN+3',
];

export interface OuterEngine {
  readonly dir: string;
  readonly socket: string;
  readonly pid: number;
  docker(args: readonly string[], opts?: RunOptions): Promise<CommandResult>;
  stop(): Promise<void>;
}

export interface RunOptions {
  readonly input?: string;
  readonly timeoutMs?: number;
}

export interface ShOptions extends RunOptions {
  readonly env?: Record<string, string>;
  /** A terminal for the command (`systemctl edit` insists on one); stderr then comes on stdout. */
  readonly tty?: boolean;
}

export interface Host {
  readonly name: string;
  readonly id: string;
  /** Runs `sh -c script` as root inside the host. */
  sh(script: string, opts?: ShOptions): Promise<CommandResult>;
  /** Like sh(), but throws with the output unless it exits 0; returns stdout. */
  ok(script: string, opts?: ShOptions): Promise<string>;
  /** Copies a file of this machine into the host. */
  copyIn(from: string, to: string): Promise<void>;
  /** When the outer engine last started the host's PID 1, in ms since the epoch. */
  startedAt(): Promise<number>;
  /** Resolves once `systemctl is-system-running --wait` answers; returns its answer. */
  booted(timeoutMs?: number): Promise<string>;
}

// ---------------------------------------------------------------------------
// Prerequisites

/** null when this machine can boot a host, otherwise why not. */
export function systemdHostSkipReason(): string | null {
  if (process.platform !== 'linux') return 'a systemd host needs Linux';
  if (process.getuid?.() !== 0) return 'a systemd host needs root (it runs a dockerd of its own)';
  for (const bin of [DOCKERD, DOCKER]) if (!fs.existsSync(bin)) return `a systemd host needs ${bin} (Debian's docker.io)`;
  if (!isFile(rootfsTarballPath()) && !fs.existsSync(MMDEBSTRAP)) {
    return `a systemd host needs ${MMDEBSTRAP} (Debian's mmdebstrap) to build its root file system`;
  }
  if (!fs.existsSync('/sys/fs/cgroup')) return 'a systemd host needs /sys/fs/cgroup';
  return null;
}

// ---------------------------------------------------------------------------
// Root file system

/** The cache file for the current package list: a new list, a new file. */
export function rootfsTarballPath(): string {
  const key = createHash('sha256').update(JSON.stringify({ MMDEBSTRAP_ARGS, MIRROR })).digest('hex').slice(0, 12);
  return path.join(CACHE_DIR, `${SUITE}-${key}.tar`);
}

/**
 * The cached tarball, built first if missing (about 50 s and 480 MB from
 * Debian's archive). Built under a temp name and renamed into place, so an
 * interrupted build never leaves a truncated cache behind.
 */
export async function ensureRootfs(log: (line: string) => void): Promise<{ file: string; builtMs: number | null }> {
  const file = rootfsTarballPath();
  if (isFile(file)) return { file, builtMs: null };
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  // mmdebstrap picks its output format from the name, so the temp name ends in .tar too.
  const tmp = file.replace(/\.tar$/, `.${process.pid}.tmp.tar`);
  const started = Date.now();
  log(`building ${file} with mmdebstrap ${MMDEBSTRAP_ARGS.join(' ')} ${MIRROR}`);
  try {
    const r = await run(MMDEBSTRAP, ['--quiet', '--format=tar', ...MMDEBSTRAP_ARGS, tmp, MIRROR], { timeoutMs: 15 * 60_000 });
    if (r.code !== 0) throw new Error(`mmdebstrap failed (${r.code}):\n${r.stderr.slice(-4000)}`);
    if (!isFile(tmp)) throw new Error(`mmdebstrap made no tarball at ${tmp}`);
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return { file, builtMs: Date.now() - started };
}

// ---------------------------------------------------------------------------
// Outer engine

interface Tracked {
  dir: string;
  pid: number;
  exited: Promise<void>;
  containers: Set<string>;
}

const live = new Map<string, Tracked>();

/** A plain dockerd (no userns-remap, vfs, no iptables, no bridge) in a temp dir of its own. */
export async function startOuterEngine(): Promise<OuterEngine> {
  installExitNet();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ug-host-'));
  fs.chmodSync(dir, 0o755);
  const socket = path.join(dir, 'docker.sock');
  const logFile = path.join(dir, 'dockerd.log');
  fs.writeFileSync(path.join(dir, 'daemon.json'), '{}\n');
  const tracked: Tracked = { dir, pid: 0, exited: Promise.resolve(), containers: new Set() };
  live.set(dir, tracked);
  const log = fs.openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(DOCKERD, [
      '--config-file', path.join(dir, 'daemon.json'),
      '--data-root', path.join(dir, 'data'),
      '--exec-root', path.join(dir, 'exec'),
      '--pidfile', path.join(dir, 'docker.pid'),
      '-H', `unix://${socket}`,
      '--storage-driver=vfs',
      '--iptables=false', '--ip-forward=false', '--bridge=none',
    ], { stdio: ['ignore', log, log], env: { PATH: SYSTEM_PATH } });
  } finally {
    fs.closeSync(log);
  }
  child.unref();
  tracked.pid = child.pid ?? 0;
  tracked.exited = new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });

  let stopping: Promise<void> | undefined;
  const engine: OuterEngine = {
    dir,
    socket,
    pid: tracked.pid,
    docker: (args, opts) => run(DOCKER, args, { ...opts, env: { PATH: SYSTEM_PATH, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: path.join(dir, 'client') } }),
    stop: () => (stopping ??= stopOuter(tracked, engine)),
  };
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (!isAlive(tracked.pid)) throw new Error(`outer dockerd exited:\n${tail(logFile)}`);
      if ((await engine.docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 5_000 }).catch(() => null))?.code === 0) break;
      if (Date.now() > deadline) throw new Error(`outer dockerd not ready after 30 s:\n${tail(logFile)}`);
      await sleep(100);
    }
  } catch (err) {
    await engine.stop();
    throw err;
  }
  return engine;
}

/** Imports the tarball as an image of the outer engine (vfs: a plain copy). */
export async function importRootfs(engine: OuterEngine, tarball: string): Promise<string> {
  const image = `ug-systemd-host:${path.basename(tarball, '.tar')}`;
  const r = await engine.docker(['import', tarball, image], { timeoutMs: 5 * 60_000 });
  if (r.code !== 0) throw new Error(`docker import failed: ${r.stderr}`);
  return image;
}

/** Starts a container of the image with systemd as PID 1; see HOST_RUN_ARGS. */
export async function bootHost(engine: OuterEngine, image: string): Promise<Host> {
  const name = `ug-systemd-host-${randomBytes(4).toString('hex')}`;
  const r = await engine.docker(['run', '-d', '--name', name, '--hostname', 'userns-guard-host', ...HOST_RUN_ARGS, image, '/lib/systemd/systemd'], { timeoutMs: 5 * 60_000 });
  if (r.code !== 0) throw new Error(`docker run of the host failed: ${r.stderr}`);
  const id = r.stdout.trim();
  live.get(engine.dir)?.containers.add(id);
  return makeHost(engine, name, id);
}

function makeHost(engine: OuterEngine, name: string, id: string): Host {
  const host: Host = {
    name,
    id,
    sh: (script, opts = {}) => {
      const envArgs = Object.entries(opts.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
      return engine.docker(['exec', opts.tty ? '-t' : '-i', ...envArgs, name, 'sh', '-c', script], opts);
    },
    async ok(script, opts) {
      const r = await host.sh(script, opts);
      if (r.code !== 0) throw new Error(`in the host, \`${script}\` exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
      return r.stdout;
    },
    async copyIn(from, to) {
      const r = await engine.docker(['cp', from, `${name}:${to}`], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`docker cp ${from} failed: ${r.stderr}`);
    },
    async startedAt() {
      const r = await engine.docker(['inspect', '-f', '{{.State.StartedAt}}', name]);
      if (r.code !== 0) throw new Error(`inspect failed: ${r.stderr}`);
      return Date.parse(r.stdout.trim());
    },
    async booted(timeoutMs = 90_000) {
      const deadline = Date.now() + timeoutMs;
      let last: CommandResult | null = null;
      while (Date.now() < deadline) {
        // Fails until PID 1 listens on its private bus; then waits for the boot to end.
        last = await host.sh('systemctl is-system-running --wait', { timeoutMs: Math.max(1_000, deadline - Date.now()) }).catch(() => null);
        const state = last?.stdout.trim() ?? '';
        if (state !== '' && state !== 'initializing' && state !== 'starting') return state;
        await sleep(100);
      }
      throw new Error(`the host did not finish booting in ${timeoutMs} ms: ${last?.stdout} ${last?.stderr}`);
    },
  };
  return host;
}

async function stopOuter(tracked: Tracked, engine: OuterEngine): Promise<void> {
  if (isAlive(tracked.pid)) {
    for (const id of tracked.containers) {
      // Halts systemd inside (stopping the inner engine and its containers), then removes it.
      await engine.docker(['stop', '-t', '30', id], { timeoutMs: 60_000 }).catch(() => null);
      await engine.docker(['rm', '-f', id], { timeoutMs: 120_000 }).catch(() => null);
    }
    signal(tracked.pid, 'SIGTERM');
    const deadline = Date.now() + 15_000;
    while (isAlive(tracked.pid) && Date.now() < deadline) await sleep(50);
  }
  reap(tracked);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([tracked.exited, new Promise<void>((r) => (timer = setTimeout(r, 5_000)))]);
  clearTimeout(timer);
  live.delete(tracked.dir);
}

// Synchronous, so the exit net can use it: kill by pid whatever the outer
// engine started (containerd, shims and their children name the dir or
// descend from something that does), detach mounts, remove the dir and the
// cgroups the host's containers left.
function reap(tracked: Tracked): void {
  if (tracked.pid > 0) signal(tracked.pid, 'SIGKILL');
  const marker = `${tracked.dir}/`;
  const owned = new Set<number>();
  const parents = new Map<number, number>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    if (readProc(pid, 'cmdline')?.includes(marker)) owned.add(pid);
    const stat = readProc(pid, 'stat');
    if (stat !== null) parents.set(pid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
  }
  for (const [pid, ppid] of parents) if (owned.has(ppid) && !owned.has(pid)) signal(pid, 'SIGKILL');
  for (const pid of owned) signal(pid, 'SIGKILL');
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((mp): mp is string => mp !== undefined && (mp === tracked.dir || mp.startsWith(marker)))
    .sort((a, b) => b.length - a.length);
  for (const mp of mounts) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
  try {
    fs.rmSync(tracked.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  } catch {
    // best effort: a busy mount must not turn a passing test into a failure
  }
  for (const id of tracked.containers) removeCgroups(id);
}

// The outer engine (cgroupfs driver) put the host in <controller>/docker/<id>;
// systemd inside made its slices below that. Deepest first: rmdir only.
function removeCgroups(id: string): void {
  let controllers: string[];
  try {
    controllers = fs.readdirSync('/sys/fs/cgroup');
  } catch {
    return;
  }
  for (const c of controllers) {
    const top = path.join('/sys/fs/cgroup', c, 'docker', id);
    if (!fs.existsSync(top)) continue;
    const dirs: string[] = [];
    const walk = (d: string) => {
      dirs.push(d);
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    };
    try {
      walk(top);
    } catch {
      continue;
    }
    for (const d of dirs.reverse()) {
      try {
        fs.rmdirSync(d);
      } catch {
        // still in use, or gone
      }
    }
  }
}

let exitNet = false;
function installExitNet(): void {
  if (exitNet) return;
  exitNet = true;
  process.on('exit', () => {
    for (const t of live.values()) reap(t);
    live.clear();
  });
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) process.once(sig, () => process.exit(code));
}

// ---------------------------------------------------------------------------
// Helpers

export function run(cmd: string, args: readonly string[], opts: RunOptions & { env?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], { env: opts.env ?? { PATH: SYSTEM_PATH }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function readProc(pid: number, file: string): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  if (pid <= 0) return false;
  const stat = readProc(pid, 'stat');
  return stat !== null && stat[stat.lastIndexOf(')') + 2] !== 'Z';
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
