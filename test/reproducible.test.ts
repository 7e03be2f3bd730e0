// The README promises byte-reproducible builds: the same sources, built in
// another directory, must give the very same binary.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BINARY, ROOT } from './lib/plugin.ts';

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

test('a build of the same sources in another directory is byte-identical', () => {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'ug-repro-'));
  try {
    // What build.mjs reads; node_modules is shared, it is not an input.
    for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'build.mjs', 'src', 'systemd']) {
      fs.cpSync(path.join(ROOT, entry), path.join(copy, entry), { recursive: true });
    }
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
    // npm test built dist/ from these same files just before.
    execFileSync(process.execPath, [path.join(ROOT, 'build.mjs'), '--if-stale'], { stdio: 'ignore' });
    const r = spawnSync(process.execPath, [path.join(copy, 'build.mjs')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(sha256(path.join(copy, 'dist', 'userns-guard')), sha256(BINARY));
  } finally {
    fs.rmSync(copy, { recursive: true, force: true });
  }
});
