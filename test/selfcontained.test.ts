// dist/userns-guard needs no Node installed: it runs with a PATH that holds
// no node, and inside a chroot that holds only the binary and the shared
// libraries ldd lists.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BINARY, ROOT, makeTempDir, post, startPlugin, waitFor } from './lib/plugin.ts';
import { rootMissing, skipUnless } from './lib/prereq.ts';

const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

test('runs with a PATH that holds no node', async (t) => {
  const env = { PATH: '/nonexistent' };
  const version = execFileSync(BINARY, ['--version'], { env, encoding: 'utf8', timeout: 10_000 });
  assert.equal(version, `${VERSION}\n`);

  const p = await startPlugin({ env });
  t.after(() => p.stop());
  const r = await p.call('/Plugin.Activate', '');
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { Implements: ['authz'] });
});

// The absolute paths of the shared objects the binary loads, dynamic loader
// included (ldd prints it without "=>").
function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /(?:=>\s+)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m) libs.push(m[1]!);
    else assert.ok(line.trim() === '' || line.includes('linux-vdso'), `unexpected ldd line: ${line}`);
  }
  return libs;
}

// Absolute: the chroot is started with an empty environment.
const CHROOT = ['/usr/sbin/chroot', '/usr/bin/chroot', '/sbin/chroot'].find((f) => fs.existsSync(f));

test('serves from a chroot holding only the binary and its shared libraries', async (t) => {
  if (skipUnless(t, rootMissing())) return;
  if (skipUnless(t, CHROOT === undefined ? 'chroot(8) is not installed (Debian package coreutils)' : null)) return;
  const root = makeTempDir('ug-chroot-');
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));

  const wanted = ['/userns-guard'];
  // A hard link when possible: the binary is over 100 MiB.
  try {
    fs.linkSync(BINARY, path.join(root, 'userns-guard'));
  } catch {
    fs.copyFileSync(BINARY, path.join(root, 'userns-guard'));
  }
  const libs = sharedLibraries(BINARY);
  assert.ok(libs.some((l) => /\/ld-linux[^/]*\.so/.test(l)), `no dynamic loader in ${libs.join(' ')}`);
  for (const lib of libs) {
    fs.mkdirSync(path.join(root, path.dirname(lib)), { recursive: true });
    // Resolves symlinks: the chroot gets the file under the name ldd gave.
    fs.copyFileSync(lib, path.join(root, lib));
    wanted.push(lib);
  }
  const files = (fs.readdirSync(root, { recursive: true }) as string[])
    .map((f) => `/${f}`)
    .filter((f) => fs.statSync(path.join(root, f)).isFile());
  assert.deepEqual(files.sort(), wanted.sort(), 'the chroot holds something else');

  // No environment at all, and /run does not exist yet: the plugin creates it.
  const child = spawn(CHROOT!, [root, '/userns-guard', '--socket', '/run/userns-guard.sock'], {
    env: {},
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const socket = path.join(root, 'run', 'userns-guard.sock');
  await waitFor(() => err.includes('userns-guard started') && fs.existsSync(socket), 10_000, () => `did not start in the chroot:\n${err}`);

  const r = await post(socket, '/Plugin.Activate', '');
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { Implements: ['authz'] });
  const a = await post(socket, '/AuthZPlugin.AuthZReq', JSON.stringify({ RequestMethod: 'GET', RequestUri: '/v1.41/info' }));
  assert.deepEqual(JSON.parse(a.body), { Allow: true, Msg: '' });

  // chroot execs the binary, so the signal reaches it directly.
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0, err);
  assert.equal(fs.existsSync(socket), false);
});
