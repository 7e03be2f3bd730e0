// `userns-guard install` / `uninstall`, run as the built binary on a temp
// root tree (--root): what lands where, what is kept, what is refused, and
// that --dry-run and a second run change nothing at all.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BINARY, ROOT, makeTempDir, runBinary, type RunResult } from './lib/plugin.ts';

const SOURCE_UNITS = path.join(ROOT, 'systemd');
const DEFAULT_BINARY = '/usr/local/sbin/userns-guard';

type Run = RunResult;

function run(args: string[]): Promise<Run> {
  return runBinary(args);
}

// Every entry under dir with its type, mode and content hash (or link target).
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      const rel = path.relative(dir, full);
      const st = fs.lstatSync(full);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.set(rel, `link ${fs.readlinkSync(full)}`);
      else if (st.isDirectory()) {
        out.set(rel, `dir ${mode}`);
        walk(full);
      } else out.set(rel, `file ${mode} ${createHash('sha256').update(fs.readFileSync(full)).digest('hex')}`);
    }
  };
  walk(dir);
  return out;
}

function sourceUnits(): Map<string, string> {
  const units = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (!e.name.endsWith('.md')) units.set(path.relative(SOURCE_UNITS, full), fs.readFileSync(full, 'utf8'));
    }
  };
  walk(SOURCE_UNITS);
  return units;
}

function write(root: string, rel: string, content: string): void {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  fs.writeFileSync(path.join(root, rel), content);
}

function read(root: string, rel: string): string {
  return fs.readFileSync(path.join(root, rel), 'utf8');
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function execStarts(content: string): string[] {
  return [...content.matchAll(/^\s*ExecStart\s*=\s*[-@:+!]*(\S+)/gm)].map((m) => m[1]!).filter((exe) => path.basename(exe) === 'userns-guard');
}

function subIdRanges(text: string): { owner: string; start: number; end: number }[] {
  return text
    .split('\n')
    .map((l) => /^([^:#]+):(\d+):(\d+)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ owner: m[1]!, start: Number(m[2]), end: Number(m[2]) + Number(m[3]) }));
}

function assertNoOverlap(text: string): void {
  const ranges = subIdRanges(text);
  for (const a of ranges) {
    for (const b of ranges) {
      if (a !== b) assert.ok(a.end <= b.start || b.end <= a.start, `${a.owner} and ${b.owner} overlap in\n${text}`);
    }
  }
}

test('the unit files to install exist in systemd/', () => {
  const units = sourceUnits();
  assert.ok(units.has('userns-guard.socket') && units.has('userns-guard.service'), `systemd/ holds ${[...units.keys()].join(', ')}`);
});

test('fresh install, second run, dry-run uninstall, uninstall, second uninstall', async (t) => {
  const root = makeTempDir('ug-install-');
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));

  const first = await run(['install', '--root', root]);
  assert.equal(first.code, 0, first.stderr);

  // The running binary, byte for byte, executable.
  const installed = path.join(root, DEFAULT_BINARY);
  assert.equal(sha256(installed), sha256(BINARY));
  assert.equal(fs.statSync(installed).mode & 0o7777, 0o755);

  // Every unit from systemd/, verbatim (its ExecStart already names the default prefix).
  for (const [rel, content] of sourceUnits()) {
    assert.equal(read(root, path.join('etc/systemd/system', rel)), content, rel);
  }
  const service = read(root, 'etc/systemd/system/userns-guard.service');
  assert.deepEqual(execStarts(service), [DEFAULT_BINARY]);

  assert.deepEqual(JSON.parse(read(root, 'etc/docker/daemon.json')), { 'userns-remap': 'default', 'authorization-plugins': ['userns-guard'] });
  assert.equal(read(root, 'etc/subuid'), 'dockremap:100000:65536\n');
  assert.equal(read(root, 'etc/subgid'), 'dockremap:100000:65536\n');
  assert.equal(fs.existsSync(path.join(root, 'etc/docker/daemon.json.userns-guard.bak')), false, 'nothing to back up');

  // The steps that remain, and no claim of having done them.
  for (const step of ['systemctl daemon-reload', 'systemctl enable --now userns-guard.socket', 'systemctl restart docker', `${DEFAULT_BINARY} doctor`]) {
    assert.ok(first.stdout.includes(step), `missing step ${step}:\n${first.stdout}`);
  }
  assert.match(first.stdout, /dockremap user/);

  await t.test('a second install changes nothing and says so', async () => {
    const before = snapshot(root);
    const again = await run(['install', '--root', root]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Nothing to do/);
    assert.doesNotMatch(again.stdout, /^(created|updated|replaced)/m);
    assert.deepEqual(snapshot(root), before);
  });

  await t.test('a changed unit and a changed binary are put back', async () => {
    fs.appendFileSync(path.join(root, 'etc/systemd/system/userns-guard.socket'), '# local edit\n');
    fs.chmodSync(installed, 0o700);
    const r = await run(['install', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /updated .*userns-guard\.socket/);
    assert.match(r.stdout, /replaced .*userns-guard /);
    assert.equal(read(root, 'etc/systemd/system/userns-guard.socket'), sourceUnits().get('userns-guard.socket'));
    assert.equal(fs.statSync(installed).mode & 0o7777, 0o755);
    assert.doesNotMatch(r.stdout, /daemon\.json|subuid|subgid/, 'untouched files are not reported');
  });

  // What `systemctl enable` would have linked; uninstall must not leave it dangling.
  fs.mkdirSync(path.join(root, 'etc/systemd/system/sockets.target.wants'));
  fs.symlinkSync('/etc/systemd/system/userns-guard.socket', path.join(root, 'etc/systemd/system/sockets.target.wants/userns-guard.socket'));

  await t.test('uninstall --dry-run changes nothing', async () => {
    const before = snapshot(root);
    const r = await run(['uninstall', '--dry-run', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /would remove .*userns-guard\.service/);
    assert.match(r.stdout, /would update .*daemon\.json/);
    assert.deepEqual(snapshot(root), before);
  });

  await t.test('uninstall removes units, links and binary, and only the plugin entry', async () => {
    const r = await run(['uninstall', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    for (const rel of sourceUnits().keys()) assert.equal(fs.existsSync(path.join(root, 'etc/systemd/system', rel)), false, rel);
    assert.equal(fs.existsSync(path.join(root, 'etc/systemd/system/docker.service.d')), false, 'empty drop-in dir left behind');
    assert.equal(fs.existsSync(path.join(root, 'etc/systemd/system/sockets.target.wants/userns-guard.socket')), false);
    assert.equal(fs.existsSync(installed), false);
    assert.deepEqual(JSON.parse(read(root, 'etc/docker/daemon.json')), { 'userns-remap': 'default' });
    // The backup is the file as install left it.
    assert.deepEqual(JSON.parse(read(root, 'etc/docker/daemon.json.userns-guard.bak')), { 'userns-remap': 'default', 'authorization-plugins': ['userns-guard'] });
    assert.equal(read(root, 'etc/subuid'), 'dockremap:100000:65536\n');
    assert.equal(read(root, 'etc/subgid'), 'dockremap:100000:65536\n');
    assert.match(r.stdout, /systemctl restart docker/);
  });

  await t.test('a second uninstall has nothing to do', async () => {
    const before = snapshot(root);
    const r = await run(['uninstall', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Nothing to do/);
    assert.deepEqual(snapshot(root), before);
  });
});

test('existing daemon.json and subordinate ids are kept; free ranges are chosen', async (t) => {
  const root = makeTempDir('ug-install-');
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  // A big integer JSON.parse would round, and keys install does not know.
  const original =
    '{\n  "log-driver": "journald",\n  "storage-driver": "overlay2",\n  "authorization-plugins": ["other-authz"],\n' +
    '  "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}},\n  "max-concurrent-uploads": 9007199254740993\n}\n';
  write(root, 'etc/docker/daemon.json', original);
  fs.chmodSync(path.join(root, 'etc/docker/daemon.json'), 0o600);
  write(root, 'etc/subuid', 'alice:100000:65536\nbob:165536:65536');
  write(root, 'etc/subgid', '# groups\nalice:100000:65536\ncarol:300000:65536\n');

  await t.test('--dry-run shows the new content and changes nothing', async () => {
    const before = snapshot(root);
    const r = await run(['install', '--dry-run', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /would update .*daemon\.json/);
    assert.match(r.stdout, /\| +"userns-remap": "default"/);
    assert.match(r.stdout, /would create .*userns-guard\.socket/);
    assert.match(r.stdout, /would update .*subuid \(add dockremap:231072:65536\)/);
    assert.match(r.stdout, /Dry run: nothing was changed/);
    assert.deepEqual(snapshot(root), before);
  });

  const r = await run(['install', '--root', root]);
  assert.equal(r.code, 0, r.stderr);
  const merged = read(root, 'etc/docker/daemon.json');
  const config = JSON.parse(merged);
  assert.equal(config['log-driver'], 'journald');
  assert.equal(config['storage-driver'], 'overlay2');
  assert.deepEqual(config['default-ulimits'], { nofile: { Name: 'nofile', Hard: 64000, Soft: 64000 } });
  assert.deepEqual(config['authorization-plugins'], ['other-authz', 'userns-guard']);
  assert.equal(config['userns-remap'], 'default');
  assert.match(merged, /"max-concurrent-uploads": 9007199254740993\b/, 'number rewritten');
  assert.equal(fs.statSync(path.join(root, 'etc/docker/daemon.json')).mode & 0o7777, 0o600, 'mode kept');
  assert.equal(read(root, 'etc/docker/daemon.json.userns-guard.bak'), original);

  // Lowest free block of 65536 at or above 100000, each file on its own.
  const subuid = read(root, 'etc/subuid');
  const subgid = read(root, 'etc/subgid');
  assert.equal(subuid, 'alice:100000:65536\nbob:165536:65536\ndockremap:231072:65536\n');
  assert.equal(subgid, '# groups\nalice:100000:65536\ncarol:300000:65536\ndockremap:165536:65536\n');
  assertNoOverlap(subuid);
  assertNoOverlap(subgid);

  await t.test('uninstall keeps every other key, userns-remap and the ranges; the first backup survives', async () => {
    const u = await run(['uninstall', '--root', root]);
    assert.equal(u.code, 0, u.stderr);
    const after = JSON.parse(read(root, 'etc/docker/daemon.json'));
    assert.deepEqual(after['authorization-plugins'], ['other-authz']);
    assert.equal(after['userns-remap'], 'default');
    assert.equal(after['log-driver'], 'journald');
    assert.equal(after['storage-driver'], 'overlay2');
    assert.match(read(root, 'etc/docker/daemon.json'), /9007199254740993\b/);
    assert.equal(read(root, 'etc/docker/daemon.json.userns-guard.bak'), original, 'the pre-install backup was overwritten');
    const backups = fs.readdirSync(path.join(root, 'etc/docker')).filter((n) => /^daemon\.json\.userns-guard\..+\.bak$/.test(n));
    assert.equal(backups.length, 1, `backups: ${backups.join(', ')}`);
    assert.equal(read(root, path.join('etc/docker', backups[0]!)), merged);
    assert.equal(read(root, 'etc/subuid'), subuid);
    assert.equal(read(root, 'etc/subgid'), subgid);
  });
});

test('a remap user of the operator\'s own and --prefix', async (t) => {
  const root = makeTempDir('ug-install-');
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  write(root, 'etc/docker/daemon.json', '{"userns-remap": "alice:staff"}');
  const r = await run(['install', '--prefix', '/opt/ug/bin', '--root', root]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(read(root, 'etc/docker/daemon.json')), { 'userns-remap': 'alice:staff', 'authorization-plugins': ['userns-guard'] });
  // Ranges for alice are the operator's business: nothing is invented.
  assert.equal(fs.existsSync(path.join(root, 'etc/subuid')), false);
  assert.equal(fs.existsSync(path.join(root, 'etc/subgid')), false);
  assert.equal(sha256(path.join(root, 'opt/ug/bin/userns-guard')), sha256(BINARY));
  assert.equal(fs.existsSync(path.join(root, DEFAULT_BINARY)), false);
  for (const [rel, content] of sourceUnits()) {
    const written = read(root, path.join('etc/systemd/system', rel));
    assert.deepEqual(execStarts(written), execStarts(content).map(() => '/opt/ug/bin/userns-guard'), rel);
  }
  assert.match(r.stdout, /\/opt\/ug\/bin\/userns-guard doctor/);

  const u = await run(['uninstall', '--prefix', '/opt/ug/bin', '--root', root]);
  assert.equal(u.code, 0, u.stderr);
  assert.equal(fs.existsSync(path.join(root, 'opt/ug/bin/userns-guard')), false);
});

test('a daemon.json that does not parse is refused and nothing changes anywhere', async (t) => {
  const root = makeTempDir('ug-install-');
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const bad of ['[]', '{"authorization-plugins": "userns-guard"}', '{"log-driver": "journald",\n']) {
    write(root, 'etc/docker/daemon.json', bad);
    const before = snapshot(root);
    for (const command of ['install', 'uninstall']) {
      const r = await run([command, '--root', root]);
      assert.equal(r.code, 1, `${command} with ${bad}: ${r.stdout}`);
      assert.match(r.stderr, /refusing to edit .*daemon\.json.*nothing was changed/);
      assert.deepEqual(snapshot(root), before, `${command} changed files with ${bad}`);
    }
  }
});

test('a dockerd flag that daemon.json would repeat is refused: the engine would not start', async (t) => {
  const root = makeTempDir('ug-install-');
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  write(root, 'lib/systemd/system/docker.service', '[Service]\n# ExecStart=/usr/sbin/dockerd --authorization-plugin=x\nExecStart=/usr/sbin/dockerd -H fd:// --userns-remap=default\n');
  const before = snapshot(root);
  const r = await run(['install', '--root', root]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, /docker\.service starts dockerd with --userns-remap.*nothing was changed/);
  assert.deepEqual(snapshot(root), before);

  // Once daemon.json carries the setting, the flag is the operator's to drop; the
  // commented-out --authorization-plugin counts for nothing.
  write(root, 'etc/default/docker', 'DOCKER_OPTS="--authorization-plugin=other"\n');
  write(root, 'etc/docker/daemon.json', '{"userns-remap": "default"}');
  const r2 = await run(['install', '--dry-run', '--root', root]);
  assert.equal(r2.code, 1, r2.stdout);
  assert.match(r2.stderr, /etc\/default\/docker starts dockerd with --authorization-plugin/);
});

test('flags: strict parsing, usage on error, --help', async () => {
  for (const args of [['install', '--bogus'], ['install', 'extra'], ['uninstall', '--prefix'], ['install', '--root', 'relative/dir'], ['doctor', '--nope']]) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^userns-guard ${args[0]}: .*\\n\\nUsage: userns-guard ${args[0]}`));
  }
  for (const command of ['install', 'uninstall', 'doctor']) {
    const r = await run([command, '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Usage: userns-guard ${command}`));
  }
});
