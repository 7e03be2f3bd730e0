// Whether MemoryMax= is enough: userns-guard in a real memory cgroup with the
// unit's limit (or the ones given), hit with bursts of 8 concurrent 1 MiB
// creates and 8 concurrent 1 MiB AuthZRes, bursts of 8 concurrent creates made
// of nothing but empty arrays (as many as the reader keeps, and 4 MiB of
// them), then 10 s of the 1 MiB calls at c=8. Passes
// when every call is answered and the kernel killed nothing (oom_kill stays
// 0). Reports the cgroup's peak charge, page cache included (memory.peak on
// cgroup v2, memory.max_usage_in_bytes on v1). Needs root and a writable
// memory controller.
//
//   node bench/cgroup-burst.ts [--limit 128M ...] [--bursts 30] [--seconds 10]

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { copyExecutables } from './plugins.ts';
import { peakRssKiB } from './proc.ts';
import { replay } from './replay.ts';
import { buildTraffic, heavyCreates, workloadCalls, type BenchCall } from './traffic.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVICE = path.join(ROOT, 'systemd', 'userns-guard.service');

export interface BurstResult {
  readonly limit: string;
  readonly cgroup: 'v1' | 'v2';
  readonly calls: number;
  readonly errors: number;
  readonly errorSamples: string[];
  readonly oomKills: number;
  readonly survived: boolean;
  readonly peakChargeMiB: number;
  readonly peakRssMiB: number;
}

export function unitMemoryMax(): string {
  const m = /^MemoryMax=(\S+)$/m.exec(readFileSync(SERVICE, 'utf8'));
  if (m === null) throw new Error(`no MemoryMax= in ${SERVICE}`);
  return m[1]!;
}

function bytes(size: string): number {
  const m = /^(\d+)([KMG]?)$/.exec(size);
  if (m === null) throw new Error(`unexpected size ${size}`);
  return Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2] as '' | 'K' | 'M' | 'G'];
}

interface Cgroup {
  readonly version: 'v1' | 'v2';
  readonly dir: string;
  oomKills(): number;
  peakBytes(): number;
  remove(): void;
}

// A child of the cgroup this process is in, so it works inside a container
// or a systemd slice as well as at the root.
function makeCgroup(limit: number): Cgroup {
  const own = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  const name = `ug-burst-${process.pid}-${Date.now()}`;
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    const rel = own.find((l) => l.startsWith('0::'))!.slice(3);
    const dir = path.join('/sys/fs/cgroup', rel, name);
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'memory.max'), String(limit));
    try {
      writeFileSync(path.join(dir, 'memory.swap.max'), '0');
    } catch {
      // No swap accounting: nothing to turn off.
    }
    return {
      version: 'v2',
      dir,
      oomKills: () => Number(/^oom_kill (\d+)$/m.exec(readFileSync(path.join(dir, 'memory.events'), 'utf8'))?.[1] ?? 0),
      peakBytes: () => (existsSync(path.join(dir, 'memory.peak')) ? Number(readFileSync(path.join(dir, 'memory.peak'), 'utf8')) : NaN),
      remove: () => rmdirSync(dir),
    };
  }
  const line = own.find((l) => /^\d+:memory:/.test(l));
  if (line === undefined) throw new Error('no memory cgroup controller');
  const dir = path.join('/sys/fs/cgroup/memory', line.split(':')[2]!, name);
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limit));
  return {
    version: 'v1',
    dir,
    oomKills: () => Number(/^oom_kill (\d+)$/m.exec(readFileSync(path.join(dir, 'memory.oom_control'), 'utf8'))?.[1] ?? 0),
    peakBytes: () => Number(readFileSync(path.join(dir, 'memory.max_usage_in_bytes'), 'utf8')),
    remove: () => rmdirSync(dir),
  };
}

export function cgroupSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return null;
  if (existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes') || existsSync('/sys/fs/cgroup/memory')) return null;
  return 'no memory cgroup controller';
}

async function waitForSocket(socket: string, alive: () => boolean): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline) {
    if (!alive()) throw new Error('userns-guard exited before listening');
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.createConnection(socket);
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('userns-guard did not listen within 10 s');
}

export async function runBurst(binary: string, limit: string, bursts: number, seconds: number, progress: (m: string) => void): Promise<BurstResult> {
  const cg = makeCgroup(bytes(limit));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ug-burst-'));
  const socket = path.join(dir, 'plugin.sock');
  // The shell puts itself in the cgroup, then becomes the plugin.
  const child = spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg.dir, binary, '--socket', socket], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  let tail = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (tail = (tail + d).slice(-2048)));
  let exit: string | null = null;
  child.once('exit', (code, signal) => (exit = `exit ${code ?? signal}`));
  let calls = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  let peakRssMiB = 0;
  const sampler = setInterval(() => {
    try {
      peakRssMiB = Math.max(peakRssMiB, peakRssKiB(child.pid!) / 1024);
    } catch {
      // Gone: counted below.
    }
  }, 200);
  try {
    await waitForSocket(socket, () => exit === null);
    const large = workloadCalls('large', buildTraffic());
    const only = (kind: BenchCall['kind']) => large.filter((c) => c.kind === kind);
    progress(`cgroup ${limit}: ${bursts} bursts of 8 x 1 MiB creates, then 8 x 1 MiB AuthZRes`);
    for (let b = 0; b < bursts && exit === null; b++) {
      for (const kind of ['large-create', 'large-response'] as const) {
        // One call per connection, 8 connections at once: a burst.
        const r = await replay({ socket, calls: only(kind), concurrency: 8, durationMs: 1, checkDenials: true });
        calls += r.calls;
        errors += r.errors;
        for (const e of r.errorSamples) if (errorSamples.length < 5) errorSamples.push(e);
      }
    }
    // The bodies that cost the reader most per byte, 8 at once: the most values
    // it still reads (allowed), and 4 MiB of them (refused).
    const heavy = heavyCreates();
    progress(`cgroup ${limit}: ${Math.ceil(bursts / 3)} bursts of 8 x each of: ${heavy.map((c) => c.label).join('; ')}`);
    for (let b = 0; b < Math.ceil(bursts / 3) && exit === null; b++) {
      for (const call of heavy) {
        const r = await replay({ socket, calls: [call], concurrency: 8, durationMs: 1, checkDenials: true });
        calls += r.calls;
        errors += r.errors;
        for (const e of r.errorSamples) if (errorSamples.length < 5) errorSamples.push(e);
      }
    }
    progress(`cgroup ${limit}: large calls at c=8 for ${seconds} s`);
    if (exit === null) {
      const r = await replay({ socket, calls: large, concurrency: 8, durationMs: seconds * 1000, checkDenials: true });
      calls += r.calls;
      errors += r.errors;
      for (const e of r.errorSamples) if (errorSamples.length < 5) errorSamples.push(e);
    }
    const oomKills = cg.oomKills();
    const peakChargeMiB = cg.peakBytes() / 2 ** 20;
    const survived = exit === null && oomKills === 0 && errors === 0;
    if (!survived && errorSamples.length < 5) errorSamples.push(`plugin: ${exit ?? 'alive'}; ${tail.slice(-300)}`);
    return { limit, cgroup: cg.version, calls, errors, errorSamples, oomKills, survived, peakChargeMiB, peakRssMiB };
  } finally {
    clearInterval(sampler);
    if (exit === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
    // The cgroup can be removed once its last process is gone.
    for (let i = 0; i < 50; i++) {
      try {
        cg.remove();
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { limit: { type: 'string', multiple: true }, bursts: { type: 'string', default: '30' }, seconds: { type: 'string', default: '10' } },
    strict: true,
  });
  const skip = cgroupSkipReason();
  if (skip !== null) {
    process.stderr.write(`cgroup-burst: skipped: ${skip}\n`);
    process.exit(0);
  }
  const exe = copyExecutables();
  try {
    const results: BurstResult[] = [];
    for (const limit of values.limit ?? [unitMemoryMax()]) {
      const r = await runBurst(exe.guard, limit, Number(values.bursts), Number(values.seconds), (m) => process.stderr.write(`cgroup-burst: ${m}\n`));
      process.stdout.write(
        `MemoryMax=${limit} (cgroup ${r.cgroup}): ${r.survived ? 'survived' : 'FAILED'}, ${r.calls} calls, ${r.errors} errors, ` +
          `oom_kill ${r.oomKills}, peak charge ${r.peakChargeMiB.toFixed(1)} MiB, peak RSS ${r.peakRssMiB.toFixed(1)} MiB\n`,
      );
      for (const e of r.errorSamples) process.stdout.write(`  ${e}\n`);
      results.push(r);
    }
    process.stdout.write(`${JSON.stringify({ bench: 'cgroup-burst', results })}\n`);
    process.exitCode = results.every((r) => r.survived) ? 0 : 1;
  } finally {
    exe.remove();
  }
}
