// The build type-checks only src/; this keeps the tests and the benchmark
// honest too, since Node runs them with types stripped, unchecked.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './lib/plugin.ts';

test('the whole project type-checks (src, test, bench)', () => {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', ROOT], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tsc reported errors:\n${r.stdout}${r.stderr}`);
});
