// The serving command line of the built binary: --help, --version, exit code
// 2 with a one-line error and the usage for anything wrong, and the process
// title while serving.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BINARY, ROOT, makeTempDir, startPlugin } from './lib/plugin.ts';

const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

// Runs the binary to its exit in `cwd` (SIGKILL after 10 s: a bad flag must
// never lead to serving).
async function run(args: readonly string[], cwd: string): Promise<Run> {
  const child = spawn(BINARY, args, { cwd, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

test('--help prints the usage on stdout and exits 0', async (t) => {
  const dir = makeTempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const r = await run(['--help'], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^Usage: userns-guard \[options\]\n/);
  for (const flag of ['--socket PATH', '--debug', '--version', '--help', '--allow-plugin-install', '--audit-only', '--allow-user NAME', '--deny RULE', '--harden']) {
    assert.ok(r.stdout.includes(flag), `usage does not mention ${flag}`);
  }
  assert.match(r.stdout, /Default:\s+\/run\/docker\/plugins\/userns-guard\.sock\n/);
  // It fits a terminal.
  for (const line of r.stdout.split('\n')) assert.ok(line.length <= 80, `usage line over 80 columns: ${line}`);
});

test('--version prints the package version and exits 0', async (t) => {
  const dir = makeTempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const r = await run(['--version'], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${VERSION}\n`);
  assert.equal(r.stderr, '');
});

test('a bad command line: exit 2, one-line error, then the usage, on stderr; nothing served', async (t) => {
  const dir = makeTempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const usage = (await run(['--help'], dir)).stdout;
  const cases: [string[], RegExp][] = [
    [['--bogus'], /Unknown option '--bogus'/],
    [['-h'], /Unknown option '-h'/],
    [['--socket'], /--socket.*argument missing/],
    [['--socket', 'relative.sock'], /--socket must be an absolute path, got "relative\.sock"/],
    [['--socket', ''], /--socket must be an absolute path/],
    [['--deny', 'bogus'], /--deny: unknown rule "bogus" \(rules: /],
    [['--deny', 'privileged,bogus'], /--deny: unknown rule "bogus"/],
    [['--allow-user', ''], /--allow-user needs a non-empty name/],
    [['--allow-user', '  '], /--allow-user needs a non-empty name/],
    [['--debug=yes'], /'--debug' does not take an argument/],
    [['serve'], /Unexpected argument 'serve'/],
    [['--socket', path.join(dir, 'plugin.sock'), '--bogus'], /Unknown option '--bogus'/],
  ];
  for (const [args, error] of cases) {
    const what = JSON.stringify(args);
    const r = await run(args, dir);
    assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stderr}`);
    assert.equal(r.stdout, '', what);
    const [first, blank, ...rest] = r.stderr.split('\n');
    assert.match(first!, /^userns-guard: /, what);
    assert.match(first!, error, what);
    assert.equal(blank, '', `${what}: the error is not one line`);
    assert.equal(rest.join('\n'), usage, `${what}: usage missing`);
  }
  // Not even the relative socket or the valid one was created.
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('the process title is userns-guard while serving', async (t) => {
  const p = await startPlugin();
  t.after(() => p.stop());
  assert.equal(fs.readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim(), 'userns-guard');
  const ps = execFileSync('ps', ['-o', 'comm=', '-p', String(p.pid)], { encoding: 'utf8' }).trim();
  assert.equal(ps, 'userns-guard');
});
