// What the serving process loads before its first call: the modules main.ts
// imports statically (install and doctor are imported only when they run).
// node:http is doctor's client; the daemon speaks HTTP on node:net, and
// every builtin module it loads costs start-up time and resident memory.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './lib/plugin.ts';

// Static imports only: `import x from '...'` and `import type` (erased) are
// told apart; `await import('...')` is not followed.
function staticImports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/^import\s+(?!type\b)[^'"]*?from\s+'([^']+)';$/gm)].map((m) => m[1]!);
}

function servingGraph(): { files: Set<string>; builtins: Set<string> } {
  const files = new Set<string>();
  const builtins = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const spec of staticImports(file)) {
      if (spec.startsWith('node:')) builtins.add(spec);
      else visit(path.resolve(path.dirname(file), spec));
    }
  };
  visit(path.join(ROOT, 'src', 'main.ts'));
  return { files, builtins };
}

test('serving loads no node:http, and none of install or doctor', () => {
  const { files, builtins } = servingGraph();
  assert.ok(files.size > 20, `only ${files.size} modules found: the import pattern no longer matches`);
  assert.ok(builtins.has('node:net'), 'node:net not found: the import pattern no longer matches');
  assert.equal(builtins.has('node:http'), false, `node:http is loaded at start, by: ${[...files].filter((f) => staticImports(f).includes('node:http')).join(', ')}`);
  const host = [...files].filter((f) => f.includes(`${path.sep}host${path.sep}`));
  assert.deepEqual(host.map((f) => path.relative(ROOT, f)), []);
});
