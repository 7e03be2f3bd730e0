// `npm run bench`: what userns-guard costs per Docker API call, next to a null
// plugin that only moves bytes, measured in the same run with interleaved
// rounds (A B, B A, ...) so drift on a shared machine hits both alike. Many
// short rounds rather than a few long ones: on a busy 2-core machine a burst
// of other work lasting seconds would otherwise land on one plugin only.
// Prints a table, then ONE JSON line (the last line of stdout).
//
// Two workloads, each at concurrency 1 and 8:
//   typical  the recording of real engine traffic plus a few hostile creates;
//            the targets apply here
//   large    the two synthetic calls the recording lacks, alternating: a
//            create just under the engine's 1 MiB forwarding limit and an
//            AuthZRes carrying a 1 MiB response. Mixed into the typical
//            workload they would swamp its averages at whatever weight was
//            picked, so they get their own rows.
//
// Then the sustained-load timeline (bench/sustained.ts): each plugin on its
// own, 60 s of typical traffic at c=1, 60 s at c=8, 10 s of large calls at
// c=8, 15 s idle, with RSS, anonymous memory and PSS read every second. The
// report, its JSON line and memory.svg (memory over time) also go to
// --out (default dist/bench/, which git ignores). Last, as root, the large
// calls in a memory cgroup limited to the unit's MemoryMax= (cgroup-burst.ts;
// --no-cgroup to skip).
//
//   node bench/run.ts [--seconds 1] [--large-seconds 0.5] [--rounds 8] [--cold-runs 9]
//                     [--no-e2e] [--e2e-rounds 8] [--e2e-list 40] [--e2e-create 30]
//                     [--sustained-c1 60] [--sustained-c8 60] [--sustained-large 10]
//                     [--sustained-idle 15] [--no-sustained] [--out dist/bench]
//                     [--guard-arg=--harden ...] [--node-options='--max-semi-space-size=1']
//
// Environment equivalents: BENCH_SECONDS, BENCH_LARGE_SECONDS, BENCH_ROUNDS,
// BENCH_COLD_RUNS, BENCH_E2E=0, BENCH_E2E_ROUNDS, BENCH_E2E_LIST, BENCH_E2E_CREATE,
// BENCH_SUSTAINED_C1, BENCH_SUSTAINED_C8, BENCH_SUSTAINED_LARGE, BENCH_SUSTAINED_IDLE,
// BENCH_SUSTAINED=0, BENCH_OUT.

import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { e2eBuilds, e2eSkipReason, runE2e, type E2eResult } from './e2e.ts';
import { measurePlugins } from './plugin-bench.ts';
import { copyExecutables, GUARD_BINARY, guardSpec, nullSpec, startPlugin } from './plugins.ts';
import { report, type Config } from './report.ts';
import { memorySvg, runSustained, type SustainedFigures } from './sustained.ts';
import { cgroupSkipReason, runBurst, unitMemoryMax, type BurstResult } from './cgroup-burst.ts';
import { startLookupReplay } from './lookupReplay.ts';
import { buildTraffic, loadRecording, workloadCalls, type BenchCall, type Workload } from './traffic.ts';

const USAGE =
  'usage: node bench/run.ts [--seconds 1] [--large-seconds 0.5] [--rounds 8] [--cold-runs 9] [--no-e2e]\n' +
  '       [--e2e-rounds 8] [--e2e-list 40] [--e2e-create 30] [--sustained-c1 60] [--sustained-c8 60]\n' +
  '       [--sustained-large 10] [--sustained-idle 15] [--no-sustained] [--out DIR] [--guard-arg=FLAG ...] [--node-options=STR]\n';

const DEFAULT_OUT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'bench');

function config(): Config {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      'large-seconds': { type: 'string' },
      rounds: { type: 'string' },
      'cold-runs': { type: 'string' },
      'no-e2e': { type: 'boolean' },
      'e2e-rounds': { type: 'string' },
      'e2e-list': { type: 'string' },
      'e2e-create': { type: 'string' },
      'sustained-c1': { type: 'string' },
      'sustained-c8': { type: 'string' },
      'sustained-large': { type: 'string' },
      'sustained-idle': { type: 'string' },
      'no-sustained': { type: 'boolean' },
      'no-cgroup': { type: 'boolean' },
      out: { type: 'string' },
      'guard-arg': { type: 'string', multiple: true },
      'node-options': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const env = process.env;
  const num = (flag: string | undefined, name: string, dflt: number): number => {
    const raw = flag ?? env[name];
    if (raw === undefined || raw === '') return dflt;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: not a positive number: ${raw}`);
    return n;
  };
  return {
    seconds: num(values.seconds, 'BENCH_SECONDS', 1),
    largeSeconds: num(values['large-seconds'], 'BENCH_LARGE_SECONDS', 0.5),
    rounds: Math.round(num(values.rounds, 'BENCH_ROUNDS', 8)),
    coldRuns: Math.round(num(values['cold-runs'], 'BENCH_COLD_RUNS', 9)),
    e2e: !values['no-e2e'] && env.BENCH_E2E !== '0',
    e2eRounds: Math.round(num(values['e2e-rounds'], 'BENCH_E2E_ROUNDS', 8)),
    e2eList: Math.round(num(values['e2e-list'], 'BENCH_E2E_LIST', 40)),
    e2eCreate: Math.round(num(values['e2e-create'], 'BENCH_E2E_CREATE', 30)),
    sustained: !values['no-sustained'] && env.BENCH_SUSTAINED !== '0',
    cgroup: !values['no-cgroup'] && env.BENCH_CGROUP !== '0',
    sustainedC1Seconds: num(values['sustained-c1'], 'BENCH_SUSTAINED_C1', 60),
    sustainedC8Seconds: num(values['sustained-c8'], 'BENCH_SUSTAINED_C8', 60),
    sustainedLargeSeconds: num(values['sustained-large'], 'BENCH_SUSTAINED_LARGE', 10),
    sustainedIdleSeconds: num(values['sustained-idle'], 'BENCH_SUSTAINED_IDLE', 15),
    out: path.resolve(values.out ?? env.BENCH_OUT ?? DEFAULT_OUT),
    guardArgs: values['guard-arg'] ?? [],
    nodeOptions: values['node-options'] ?? '',
  };
}

const progress = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

async function main(): Promise<number> {
  const cfg = config();
  const started = performance.now();
  const recorded = loadRecording();
  const all = buildTraffic(recorded);
  const traffic: Record<Workload, BenchCall[]> = { typical: workloadCalls('typical', all), large: workloadCalls('large', all) };
  const env: Record<string, string> = cfg.nodeOptions === '' ? {} : { NODE_OPTIONS: cfg.nodeOptions };
  const exe = copyExecutables();
  // userns-guard looks up what the replayed starts, execs and copies act on.
  const engine = await startLookupReplay(recorded);
  try {
    const specs = [nullSpec(exe.node, env), guardSpec(exe.guard, ['--engine-socket', engine.socket, ...cfg.guardArgs], env)];
    const plan = {
      rounds: cfg.rounds,
      coldRuns: cfg.coldRuns,
      msPerWorkload: { typical: cfg.seconds * 1000, large: cfg.largeSeconds * 1000 },
    };
    const [nul, guard] = await measurePlugins(plan, traffic, specs, progress);

    // Each plugin in a fresh process, one after the other (see sustained.ts).
    let sustained: SustainedFigures[] | null = null;
    if (cfg.sustained) {
      sustained = [];
      const plan = {
        c1Seconds: cfg.sustainedC1Seconds,
        c8Seconds: cfg.sustainedC8Seconds,
        largeSeconds: cfg.sustainedLargeSeconds,
        idleSeconds: cfg.sustainedIdleSeconds,
      };
      for (const spec of specs) {
        const p = await startPlugin(spec);
        try {
          await new Promise((r) => setTimeout(r, 300));
          sustained.push(await runSustained(p, plan, traffic, progress));
        } catch (err) {
          process.stderr.write(`bench: ${spec.name} stderr tail:\n${p.logTail()}\n`);
          throw err;
        } finally {
          await p.stop();
        }
      }
    }

    let burst: BurstResult | string;
    const cgSkip = cfg.cgroup ? cgroupSkipReason() : 'turned off (--no-cgroup or BENCH_CGROUP=0)';
    if (cgSkip !== null) burst = cgSkip;
    else burst = await runBurst(exe.guard, unitMemoryMax(), 30, 10, progress);

    // On the system's engine (20.10) and on the newest one this machine has.
    let e2e: E2eResult[] | string;
    const skip = cfg.e2e ? e2eSkipReason() : 'turned off (--no-e2e or BENCH_E2E=0)';
    if (skip !== null) {
      e2e = skip;
    } else {
      e2e = [];
      for (const build of e2eBuilds()) {
        e2e.push(await runE2e({
          rounds: cfg.e2eRounds,
          listPerRound: cfg.e2eList,
          createPerRound: cfg.e2eCreate,
          recorded,
          executables: exe,
          progress,
          build,
        }));
      }
    }
    // Sizes of what ships, not of the temp copies the plugins ran from.
    const shippedGuard = { ...guard!, sizeMiB: statSync(GUARD_BINARY).size / 2 ** 20 };
    const out = report(cfg, traffic, nul!, shippedGuard, e2e, statSync(process.execPath).size / 2 ** 20, sustained, burst);
    process.stdout.write(out.text);
    mkdirSync(cfg.out, { recursive: true });
    writeFileSync(path.join(cfg.out, 'report.txt'), out.text);
    writeFileSync(path.join(cfg.out, 'report.json'), `${out.json}\n`);
    if (sustained !== null) {
      const title =
        `Memory under sustained load: typical c=1 ${cfg.sustainedC1Seconds} s, c=8 ${cfg.sustainedC8Seconds} s, ` +
        `large c=8 ${cfg.sustainedLargeSeconds} s, idle ${cfg.sustainedIdleSeconds} s`;
      writeFileSync(path.join(cfg.out, 'memory.svg'), memorySvg(sustained, title));
      // The per-second samples behind the picture.
      writeFileSync(path.join(cfg.out, 'memory-samples.json'), `${JSON.stringify(Object.fromEntries(sustained.map((x) => [x.name, x.samples])))}\n`);
    }
    progress(`report.txt, report.json${sustained !== null ? ', memory.svg and memory-samples.json' : ''} written to ${cfg.out}`);
    const code = out.code;
    progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    return code;
  } finally {
    await engine.stop();
    exe.remove();
  }
}

process.exitCode = await main();
