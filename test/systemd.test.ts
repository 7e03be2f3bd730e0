// The systemd units: systemd's own checks (security exposure, verify) and the
// binary run the way the unit runs it, traced, against what the unit allows.
// systemd-host.test.ts starts the units for real, under systemd as PID 1.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_SOCKET } from '../src/plugin/cli.ts';
import { BINARY, ROOT, envelope, makeTempDir, post, waitFor } from './lib/plugin.ts';
import { skipUnless } from './lib/prereq.ts';

const UNITS = path.join(ROOT, 'systemd');
const SERVICE = path.join(UNITS, 'userns-guard.service');
const SOCKET = path.join(UNITS, 'userns-guard.socket');
const DROP_IN = path.join(UNITS, 'docker.service.d', 'userns-guard.conf');
const MAX_EXPOSURE = 1.5;

function missing(tool: string, why: string): string | null {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0 ? null : `needs ${tool} (${why})`;
}
const NO_ANALYZE = missing('systemd-analyze', "Debian's systemd package");

// Every value of `key` in the unit file, in order.
function unitValues(file: string, key: string): string[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

function unitValue(file: string, key: string): string | undefined {
  return unitValues(file, key).at(-1);
}

test('security exposure is at most 1.5', (t) => {
  if (skipUnless(t, NO_ANALYZE)) return;
  const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', SERVICE], { encoding: 'utf8' });
  const out = r.stdout + r.stderr;
  const m = /Overall exposure level for userns-guard\.service: (\d+(?:\.\d+)?)/.exec(out);
  assert.ok(m, out);
  t.diagnostic(`overall exposure ${m[1]}`);
  assert.ok(Number(m[1]) <= MAX_EXPOSURE, out);
});

test('systemd-analyze verify is clean for both units and the docker drop-in', (t) => {
  if (skipUnless(t, NO_ANALYZE)) return;
  // verify checks that ExecStart exists, so the units go into a scratch root
  // laid out as installed, with the built binary at /usr/local/sbin and
  // systemd's own units (sysinit.target and friends) beside them.
  const root = makeTempDir('ug-units-');
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const etc = path.join(root, 'etc', 'systemd', 'system');
  fs.mkdirSync(path.join(etc, 'docker.service.d'), { recursive: true });
  fs.cpSync('/usr/lib/systemd/system', path.join(root, 'usr', 'lib', 'systemd', 'system'), { recursive: true });
  const sbin = path.join(root, 'usr', 'local', 'sbin');
  fs.mkdirSync(sbin, { recursive: true });
  linkOrCopy(BINARY, path.join(sbin, 'userns-guard'));
  fs.copyFileSync(SOCKET, path.join(etc, 'userns-guard.socket'));
  fs.copyFileSync(SERVICE, path.join(etc, 'userns-guard.service'));
  fs.copyFileSync(DROP_IN, path.join(etc, 'docker.service.d', 'userns-guard.conf'));
  // The drop-in is what is checked here, not the engine package's unit, whose
  // binaries are not in this root: a minimal docker.service carries it.
  const lib = path.join(root, 'usr', 'lib', 'systemd', 'system');
  fs.rmSync(path.join(lib, 'docker.socket'), { force: true });
  fs.writeFileSync(path.join(lib, 'docker.service'), '[Unit]\nDescription=engine stand-in\n[Service]\nExecStart=/usr/local/sbin/userns-guard --version\n');

  const units = ['userns-guard.socket', 'userns-guard.service', 'docker.service'];
  const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, ...units], { encoding: 'utf8' });
  // Unknown keys are only warnings (exit 0): any output at all is a failure.
  assert.equal(r.stdout + r.stderr, '');
  assert.equal(r.status, 0);

  // The drop-in took effect: the engine wants and waits for the socket.
  const dump = spawnSync('systemd-analyze', ['verify', `--root=${root}`, 'docker.service'], {
    encoding: 'utf8',
    env: { ...process.env, SYSTEMD_LOG_LEVEL: 'debug' },
  });
  const text = dump.stdout + dump.stderr;
  assert.match(text, /DropIn Path: .*docker\.service\.d\/userns-guard\.conf/);
  assert.match(text, /Wants: userns-guard\.socket/);
  assert.match(text, /After: userns-guard\.socket/);
});

function linkOrCopy(from: string, to: string): void {
  try {
    fs.linkSync(from, to);
  } catch {
    fs.copyFileSync(from, to);
    fs.chmodSync(to, 0o755);
  }
}

test('the units say what the issue asks for', () => {
  assert.deepEqual(unitValues(SOCKET, 'ListenStream'), [DEFAULT_SOCKET]);
  assert.equal(unitValue(SOCKET, 'SocketMode'), '0600');
  assert.equal(unitValue(SOCKET, 'SocketUser'), 'root');
  assert.match(unitValue(SOCKET, 'Before') ?? '', /\bdocker\.service\b/);
  assert.equal(unitValue(SOCKET, 'WantedBy'), 'sockets.target');
  assert.equal(unitValue(SOCKET, 'RemoveOnStop'), 'yes');

  assert.equal(unitValue(SERVICE, 'ExecStart'), '/usr/local/sbin/userns-guard');
  assert.equal(unitValue(SERVICE, 'Restart'), 'always');
  assert.equal(unitValue(SERVICE, 'Requires'), 'userns-guard.socket');
  // uid 0 only to own the engine's root:docker 0660 socket, with one
  // capability, to search users' 0700 homes for bind sources; the host's own
  // /tmp and /home visible, read-only, with their true owners (no
  // PrivateTmp=, PrivateUsers=); nothing writable.
  assert.equal(unitValue(SERVICE, 'User'), 'root');
  assert.equal(unitValue(SERVICE, 'DynamicUser'), undefined);
  assert.equal(unitValue(SERVICE, 'CapabilityBoundingSet'), 'CAP_DAC_READ_SEARCH');
  assert.equal(unitValue(SERVICE, 'AmbientCapabilities'), '');
  assert.equal(unitValue(SERVICE, 'NoNewPrivileges'), 'yes');
  assert.equal(unitValue(SERVICE, 'ProtectSystem'), 'strict');
  assert.equal(unitValue(SERVICE, 'ProtectHome'), 'read-only');
  assert.deepEqual(unitValues(SERVICE, 'ReadOnlyPaths').flatMap((v) => v.split(/\s+/)), ['/run', '/dev']);
  assert.equal(unitValue(SERVICE, 'ReadWritePaths'), undefined);
  assert.equal(unitValue(SERVICE, 'PrivateTmp'), undefined);
  assert.equal(unitValue(SERVICE, 'PrivateUsers'), undefined);
  assert.equal(unitValue(SERVICE, 'PrivateNetwork'), 'yes');
  assert.equal(unitValue(SERVICE, 'RestrictAddressFamilies'), 'AF_UNIX');
  assert.equal(unitValue(SERVICE, 'SyslogIdentifier'), 'userns-guard');
  // The V8 JIT needs writable+executable memory.
  assert.equal(unitValue(SERVICE, 'MemoryDenyWriteExecute'), undefined);
  const unset = new Set(unitValues(SERVICE, 'UnsetEnvironment').flatMap((v) => v.split(/\s+/)));
  for (const name of ['NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS', 'NODE_PATH', 'NODE_V8_COVERAGE', 'NODE_REPL_EXTERNAL_MODULE', 'UV_THREADPOOL_SIZE']) {
    assert.ok(unset.has(name), `UnsetEnvironment misses ${name}`);
  }

  assert.equal(unitValue(DROP_IN, 'Wants'), 'userns-guard.socket');
  assert.equal(unitValue(DROP_IN, 'After'), 'userns-guard.socket');
});

test('the packed runtime honours NODE_OPTIONS, which is why the unit unsets it', (t) => {
  const dir = makeTempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const preload = path.join(dir, 'preload.cjs');
  fs.writeFileSync(preload, 'process.stderr.write("preloaded by NODE_OPTIONS\\n");\n');
  const r = spawnSync(BINARY, ['--version'], { encoding: 'utf8', env: { PATH: process.env.PATH, NODE_OPTIONS: `--require=${preload}` } });
  assert.match(r.stderr, /preloaded by NODE_OPTIONS/);
});

// The group names and members `systemd-analyze syscall-filter` lists.
function syscallGroups(): Map<string, string[]> {
  const out = spawnSync('systemd-analyze', ['syscall-filter', '--no-pager'], { encoding: 'utf8' }).stdout;
  const groups = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of out.split('\n')) {
    if (/^@\S+$/.test(line)) groups.set(line, (current = []));
    else if (current !== null && /^ {4}[@a-z0-9_-]+$/.test(line)) current.push(line.trim());
  }
  return groups;
}

function expand(groups: Map<string, string[]>, names: string[]): Set<string> {
  const out = new Set<string>();
  for (const name of names) {
    if (!name.startsWith('@')) {
      out.add(name);
      continue;
    }
    const members = groups.get(name);
    assert.ok(members, `unknown system call group ${name}`);
    for (const call of expand(groups, members)) out.add(call);
  }
  return out;
}

// What the unit's SystemCallFilter= lines allow, in systemd's terms: the
// first allow-list, then every ~deny list taken out of it.
function allowedSyscalls(): Set<string> {
  const groups = syscallGroups();
  let allowed: Set<string> | null = null;
  for (const value of unitValues(SERVICE, 'SystemCallFilter')) {
    const deny = value.startsWith('~');
    const names = value.replace(/^~/, '').split(/\s+/).filter(Boolean);
    const set = expand(groups, names);
    if (deny) {
      assert.ok(allowed, 'a deny list before any allow list');
      for (const call of set) allowed.delete(call);
    } else {
      allowed = allowed === null ? set : new Set([...allowed, ...set]);
    }
  }
  assert.ok(allowed, 'no SystemCallFilter=');
  return allowed;
}

test('under socket activation the plugin stays inside the unit sandbox (strace)', async (t) => {
  if (skipUnless(t, NO_ANALYZE ?? missing('strace', 'to trace the system calls the plugin makes'))) return;
  if (skipUnless(t, missing('systemd-socket-activate', "Debian's systemd package"))) return;
  const dir = makeTempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socket = path.join(dir, 'plugin.sock');
  const trace = path.join(dir, 'trace');
  // ExecStart's arguments, with the built binary in place of the installed one.
  const [, ...args] = unitValue(SERVICE, 'ExecStart')!.split(/\s+/);

  const tracer = spawn('strace', ['-f', '-qq', '-o', trace, 'systemd-socket-activate', '-l', socket, BINARY, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  let stderr = '';
  tracer.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => tracer.once('exit', (code) => resolve(code)));
  t.after(() => tracer.kill('SIGKILL'));
  await waitFor(() => fs.existsSync(socket), 10_000, () => `no socket: ${stderr}`);

  // The first connection makes systemd-socket-activate exec the plugin.
  assert.equal((await post(socket, '/Plugin.Activate', '')).status, 200);
  const calls = [
    envelope('POST', '/v1.41/containers/create?name=x', JSON.stringify({ Image: 'busybox', HostConfig: { UsernsMode: 'host' } })),
    envelope('POST', '/v1.41/containers/create', JSON.stringify({ Image: 'busybox' })),
    envelope('GET', '/v1.41/info'),
    envelope('POST', '/v1.41/plugins/pull?remote=x'),
  ];
  const answers = [];
  for (const call of calls) answers.push(JSON.parse((await post(socket, '/AuthZPlugin.AuthZReq', JSON.stringify(call))).body).Allow);
  assert.deepEqual(answers, [false, true, true, false]);
  assert.equal((await post(socket, '/AuthZPlugin.AuthZRes', '{}')).status, 200);
  assert.equal((await post(socket, '/AuthZPlugin.AuthZReq', '')).body.includes('"Allow":false'), true);
  assert.match(stderr, /"socket":"socket activation"/);

  // After exec, the traced child of strace is the plugin.
  const pluginPid = Number(fs.readFileSync(`/proc/${tracer.pid}/task/${tracer.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
  assert.match(fs.readFileSync(`/proc/${pluginPid}/cmdline`, 'utf8'), /userns-guard/);
  const peakKiB = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pluginPid}/status`, 'utf8'))![1]);
  process.kill(pluginPid, 'SIGTERM');
  assert.equal(await exited, 0, stderr);

  // Only what the plugin did, from its exec on, in all its threads.
  const lines = fs.readFileSync(trace, 'utf8').split('\n');
  const execLine = lines.findIndex((l) => l.includes(`execve("${BINARY}"`));
  assert.ok(execLine >= 0, 'the exec of the plugin is not in the trace');
  const ours = lines.slice(execLine);
  const used = new Set<string>();
  const tids = new Set<string>();
  for (const line of ours) {
    const m = /^(\d+) +([a-z0-9_]+)\(/.exec(line);
    if (m) {
      tids.add(m[1]!);
      used.add(m[2]!);
    }
  }
  t.diagnostic(`${used.size} distinct system calls, ${tids.size} threads, peak RSS ${peakKiB} KiB`);

  const allowed = allowedSyscalls();
  assert.deepEqual([...used].filter((call) => !allowed.has(call)).sort(), [], 'system calls SystemCallFilter= refuses');
  // RestrictAddressFamilies=AF_UNIX, PrivateNetwork=: no socket of its own.
  assert.deepEqual(ours.filter((l) => /\bsocket\(/.test(l)), []);
  // ProtectSystem=strict, ReadOnlyPaths=: it writes no file.
  const writes = ours.filter((l) => /\b(open|openat|creat)\(.*O_(WRONLY|RDWR|CREAT)|\b(mkdir|mkdirat|unlink|unlinkat|rename|renameat2?|chmod|fchmodat|link|symlink)\(/.test(l));
  assert.deepEqual(writes, []);
  assert.ok(tids.size < Number(unitValue(SERVICE, 'TasksMax')), `${tids.size} threads`);
  assert.ok(peakKiB * 1024 < parseSize(unitValue(SERVICE, 'MemoryMax')!) / 2, `peak RSS ${peakKiB} KiB`);
});

function parseSize(value: string): number {
  const m = /^(\d+)([KMG]?)$/.exec(value);
  assert.ok(m, `unexpected size ${value}`);
  return Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2] as '' | 'K' | 'M' | 'G'];
}
