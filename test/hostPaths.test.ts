// examinePath on a real file system: ownership, modes, symlinks, missing
// levels and permission denied, the way the engine's mkdir -p meets them.

import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { examinePath } from '../src/facts/hostPaths.ts';
import { makeTempDir } from './lib/plugin.ts';
import { rootMissing, skipUnless } from './lib/prereq.ts';

const ROOT = { uid: 100000, gid: 100000 };

test('examinePath: what the remapped root could create or write', async (t) => {
  if (skipUnless(t, rootMissing())) return;
  const dir = makeTempDir('ug-paths-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const rootOnly = join(dir, 'rootonly');
  mkdirSync(rootOnly, { mode: 0o700 });
  chmodSync(rootOnly, 0o700);
  const shared = join(dir, 'shared');
  mkdirSync(shared);
  chownSync(shared, ROOT.uid, ROOT.gid);
  const open = join(dir, 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  const sticky = join(dir, 'sticky');
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  const alice = join(dir, 'alice');
  mkdirSync(alice);
  chownSync(alice, 1000, 1000);
  writeFileSync(join(dir, 'file'), 'x');
  symlinkSync(rootOnly, join(dir, 'to-rootonly'));
  symlinkSync(join(dir, 'nowhere'), join(dir, 'dangling'));
  symlinkSync('shared', join(dir, 'to-shared'));

  const exists = await examinePath(dir, ROOT);
  assert.equal(exists.kind, 'exists');
  assert.equal(exists.kind === 'exists' && exists.writableByRemappedRoot, false);

  const inRootOnly = await examinePath(join(rootOnly, 'a', 'b'), ROOT);
  assert.deepEqual(inRootOnly.kind === 'missing' && [inRootOnly.nearest, inRootOnly.missingLevels, inRootOnly.nearestWritableByRemappedRoot], [rootOnly, 2, false]);

  // Symlinks are followed as the kernel does, absolute and relative.
  const viaLink = await examinePath(join(dir, 'to-rootonly', 'new'), ROOT);
  assert.equal(viaLink.kind === 'missing' && viaLink.nearest, rootOnly);
  const viaRelative = await examinePath(join(dir, 'to-shared', 'new'), ROOT);
  assert.deepEqual(viaRelative.kind === 'missing' && [viaRelative.nearest, viaRelative.nearestWritableByRemappedRoot], [shared, true]);
  const dangling = await examinePath(join(dir, 'dangling', 'x'), ROOT);
  assert.equal(dangling.kind === 'missing' && dangling.nearest, dir);

  const inOpen = await examinePath(join(open, 'x'), ROOT);
  assert.deepEqual(inOpen.kind === 'missing' && [inOpen.nearestWritableByRemappedRoot, inOpen.nearestProtectsSymlinks], [true, false]);
  const inSticky = await examinePath(join(sticky, 'x', 'y'), ROOT);
  const protectedLinks = (await import('node:fs')).readFileSync('/proc/sys/fs/protected_symlinks', 'utf8').trim() === '1';
  assert.deepEqual(inSticky.kind === 'missing' && [inSticky.nearestWritableByRemappedRoot, inSticky.nearestProtectsSymlinks], [true, protectedLinks]);

  // A directory on the way that a local user owns could be swapped.
  const sub = join(alice, 'sub');
  mkdirSync(sub);
  chownSync(sub, ROOT.uid, ROOT.gid);
  const underAlice = await examinePath(join(sub, 'x'), ROOT);
  assert.ok(underAlice.kind === 'missing' && underAlice.swappableAncestors.some((a) => a.startsWith(`${alice} (uid 1000`)), JSON.stringify(underAlice));

  const throughFile = await examinePath(join(dir, 'file', 'x'), ROOT);
  assert.equal(throughFile.kind, 'unexaminable');

  const empty = join(dir, 'empty');
  mkdirSync(empty);
  const e = await examinePath(empty, ROOT);
  assert.deepEqual(e.kind === 'exists' && [e.isEmptyDirectory, e.writableByRemappedRoot], [true, false]);

  // Without the right to look, the answer says so: examined as a user who
  // cannot search the root-only directory (glibc changes the effective uid
  // of every thread, libuv's pool included).
  process.seteuid!(65534);
  let denied;
  try {
    denied = await examinePath(join(rootOnly, 'x'), ROOT);
  } finally {
    process.seteuid!(0);
  }
  assert.equal(denied.kind, 'unexaminable');
  assert.match(denied.kind === 'unexaminable' ? denied.why : '', /permission denied/);
});
