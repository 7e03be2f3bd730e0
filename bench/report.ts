// The report: one table (and the end-to-end one) for people, then ONE JSON
// line for machines, with each target marked met or missed.

import type { E2eResult } from './e2e.ts';
import { CONCURRENCIES, WORKLOADS, type Concurrency, type PluginFigures } from './plugin-bench.ts';
import { machine } from './proc.ts';
import type { SustainedFigures } from './sustained.ts';
import type { BurstResult } from './cgroup-burst.ts';
import { perKind, type BenchCall, type Workload } from './traffic.ts';

// What run.ts was asked to do, echoed into the JSON line.
export interface Config {
  readonly seconds: number;
  readonly largeSeconds: number;
  readonly rounds: number;
  readonly coldRuns: number;
  readonly e2e: boolean;
  readonly e2eRounds: number;
  readonly e2eList: number;
  readonly e2eCreate: number;
  readonly sustained: boolean;
  readonly cgroup: boolean;
  readonly sustainedC1Seconds: number;
  readonly sustainedC8Seconds: number;
  readonly sustainedLargeSeconds: number;
  readonly sustainedIdleSeconds: number;
  readonly out: string;
  readonly guardArgs: string[];
  readonly nodeOptions: string;
}

export const TARGETS = {
  cpuPerCallRatio: 1.3,
  p99C1Ratio: 1.3,
  idleRssMiB: 50,
  // Sustained typical load (sustained.ts).
  sustainedPeakRssMiB: 80,
  sustainedPeakAnonMiB: 32,
  // Last 10 s of c=8 over its first 10 s, anonymous memory.
  sustainedTrendMiB: 2,
  // After the large calls.
  largePeakRssMiB: 160,
  largeReturnPct: 10,
  coldStartMs: 100,
  e2eListOverheadPct: 5,
} as const;

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const round2 = (x: number) => Math.round(x * 100) / 100;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

function overheadPct(x: number, base: number): number {
  return ((x - base) / base) * 100;
}

// Prints everything; returns the exit code: 1 if any call went wrong.
export function report(
  cfg: Config,
  traffic: Record<Workload, BenchCall[]>,
  nul: PluginFigures,
  guard: PluginFigures,
  e2e: E2eResult[] | string,
  nodeSizeMiB: number,
  sustained: SustainedFigures[] | null,
  burst: BurstResult | string,
): { text: string; json: string; code: number } {
  const t = (p: PluginFigures, c: Concurrency) => p.workloads.typical[c];
  const l = (p: PluginFigures, c: Concurrency) => p.workloads.large[c];
  const ratios = {
    cpuPerCallC1: t(guard, 1).cpuUsPerCall / t(nul, 1).cpuUsPerCall,
    cpuPerCallC8: t(guard, 8).cpuUsPerCall / t(nul, 8).cpuUsPerCall,
    p50C1: t(guard, 1).latencyUs.p50 / t(nul, 1).latencyUs.p50,
    p99C1: t(guard, 1).latencyUs.p99 / t(nul, 1).latencyUs.p99,
    p50C8: t(guard, 8).latencyUs.p50 / t(nul, 8).latencyUs.p50,
    p99C8: t(guard, 8).latencyUs.p99 / t(nul, 8).latencyUs.p99,
    callsPerSecC1: t(guard, 1).callsPerSec / t(nul, 1).callsPerSec,
    callsPerSecC8: t(guard, 8).callsPerSec / t(nul, 8).callsPerSec,
    largeCpuPerCallC1: l(guard, 1).cpuUsPerCall / l(nul, 1).cpuUsPerCall,
    largeCpuPerCallC8: l(guard, 8).cpuUsPerCall / l(nul, 8).cpuUsPerCall,
  };
  const errorsOf = (p: PluginFigures) => WORKLOADS.reduce((s, w) => s + p.workloads[w][1].errors + p.workloads[w][8].errors, 0);
  const checkedOf = (p: PluginFigures) => WORKLOADS.reduce((s, w) => s + p.workloads[w][1].calls + p.workloads[w][8].calls, 0);
  const pluginErrors = errorsOf(nul) + errorsOf(guard);
  const sustainedErrors = (sustained ?? []).reduce((n, x) => n + x.errors, 0);
  const e2eRuns = typeof e2e === 'string' ? [] : e2e;
  const e2eErrors = e2eRuns.reduce((n, r) => n + r.errors, 0);
  const setup = (r: E2eResult, name: string) => r.setups.find((s) => s.name === name);
  const listOverheadOf = (r: E2eResult) => {
    const none = setup(r, 'none');
    const g = setup(r, 'userns-guard');
    return none && g ? overheadPct(g.list.p50, none.list.p50) : NaN;
  };
  // The target holds on every engine: the worst one counts.
  const listOverhead = e2eRuns.length === 0 ? NaN : Math.max(...e2eRuns.map(listOverheadOf));
  const cpuWorst = Math.max(ratios.cpuPerCallC1, ratios.cpuPerCallC8);

  const targets = {
    cpuPerCall: { target: `<= ${TARGETS.cpuPerCallRatio}x null (typical, c=1 and c=8)`, value: round2(cpuWorst), met: cpuWorst <= TARGETS.cpuPerCallRatio },
    p99C1: { target: `<= ${TARGETS.p99C1Ratio}x null (typical)`, value: round2(ratios.p99C1), met: ratios.p99C1 <= TARGETS.p99C1Ratio },
    errors: { target: '0', value: pluginErrors + e2eErrors + sustainedErrors, met: pluginErrors + e2eErrors + sustainedErrors === 0 },
    idleRss: { target: `<= ${TARGETS.idleRssMiB} MiB`, value: round2(guard.idleRssMiB), met: guard.idleRssMiB <= TARGETS.idleRssMiB },
    ...sustainedTargets(sustained?.find((x) => x.name === guard.name)),
    memoryMaxBurst: {
      target: 'not killed under MemoryMax= (8 x 1 MiB bursts, 8 x heavy creates, then 10 s of large calls at c=8)',
      value: typeof burst === 'string' ? null : burst.survived,
      met: typeof burst === 'string' ? null : burst.survived,
    },
    coldStart: { target: `<= ${TARGETS.coldStartMs} ms`, value: round2(guard.coldStartMs.median), met: guard.coldStartMs.median <= TARGETS.coldStartMs },
    e2eListOverhead: {
      target: `< ${TARGETS.e2eListOverheadPct}% (p50, userns-guard over no plugin, worst engine)`,
      value: Number.isFinite(listOverhead) ? round2(listOverhead) : null,
      met: Number.isFinite(listOverhead) ? listOverhead < TARGETS.e2eListOverheadPct : null,
    },
  };

  const counts = perKind(() => 0);
  for (const w of WORKLOADS) for (const c of traffic[w]) counts[c.kind]++;
  const large = traffic.large;
  const m = machine();
  const out: string[] = [];
  out.push(
    `userns-guard benchmark: typical = ${counts.recorded + counts.judged} recorded calls (${counts.judged} of them judged: looked up first) + ${counts.denied} hostile creates, round-robin; ` +
      `large = ${large.map((c) => c.label).join(' / ')}; ${cfg.rounds} interleaved rounds of ${cfg.seconds} s (large: ${cfg.largeSeconds} s) per plugin and concurrency`,
  );
  out.push(`machine: ${m.nproc} CPUs (${m.cpu}), ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}`);
  out.push('');
  const mark = (met: boolean | null) => (met === null ? '' : met ? 'met' : 'MISSED');
  const row = (label: string, a: number, b: number, fmt: (x: number) => string, target = ''): string[] => [label, fmt(a), fmt(b), f2(b / a), target];
  const rows: string[][] = [['plugin level', 'null', 'userns-guard', 'ratio', 'target']];
  for (const c of CONCURRENCIES) {
    rows.push(row(`typical c=${c}: calls/s`, t(nul, c).callsPerSec, t(guard, c).callsPerSec, f0));
    rows.push(row(`typical c=${c}: p50 µs`, t(nul, c).latencyUs.p50, t(guard, c).latencyUs.p50, f0));
    for (const [kind, label] of [['recorded', 'calls that need no lookup'], ['judged', 'judged calls (lookups first)']] as const) {
      rows.push(row(`  p50 µs, ${label}`, t(nul, c).p50ByKindUs[kind] ?? NaN, t(guard, c).p50ByKindUs[kind] ?? NaN, f0));
    }
    rows.push(row(`typical c=${c}: p99 µs`, t(nul, c).latencyUs.p99, t(guard, c).latencyUs.p99, f0, c === 1 ? `<= 1.3x ${mark(targets.p99C1.met)}` : ''));
    rows.push(row(`typical c=${c}: plugin CPU µs/call`, t(nul, c).cpuUsPerCall, t(guard, c).cpuUsPerCall, f1, `<= 1.3x ${mark(t(guard, c).cpuUsPerCall / t(nul, c).cpuUsPerCall <= TARGETS.cpuPerCallRatio)}`));
  }
  for (const c of CONCURRENCIES) {
    rows.push(row(`large c=${c}: 1 MiB create p50 µs`, l(nul, c).p50ByKindUs['large-create'] ?? NaN, l(guard, c).p50ByKindUs['large-create'] ?? NaN, f0));
    rows.push(row(`large c=${c}: 1 MiB AuthZRes p50 µs`, l(nul, c).p50ByKindUs['large-response'] ?? NaN, l(guard, c).p50ByKindUs['large-response'] ?? NaN, f0));
    rows.push(row(`large c=${c}: p99 µs`, l(nul, c).latencyUs.p99, l(guard, c).latencyUs.p99, f0));
    rows.push(row(`large c=${c}: plugin CPU µs/call`, l(nul, c).cpuUsPerCall, l(guard, c).cpuUsPerCall, f0));
  }
  rows.push(['errors (calls checked)', `${errorsOf(nul)} (${checkedOf(nul)})`, `${errorsOf(guard)} (${checkedOf(guard)})`, '', `0 ${mark(pluginErrors === 0)}`]);
  rows.push(row('idle RSS MiB', nul.idleRssMiB, guard.idleRssMiB, f1, `<= ${TARGETS.idleRssMiB} ${mark(targets.idleRss.met)}`));
  rows.push(row('  of which private (anon)', nul.idleAnonMiB, guard.idleAnonMiB, f1));
  rows.push(row('peak RSS MiB (VmHWM), typical load', nul.peakRssTypicalMiB, guard.peakRssTypicalMiB, f1));
  rows.push(row('  max private (anon), typical', nul.maxAnonMiB.typical, guard.maxAnonMiB.typical, f1));
  rows.push(row('  max mapped file, typical', nul.maxFileMiB.typical, guard.maxFileMiB.typical, f1));
  rows.push(row('peak RSS MiB (VmHWM), incl. large', nul.peakRssLargeMiB, guard.peakRssLargeMiB, f1));
  rows.push(row('  max private (anon), large', nul.maxAnonMiB.large, guard.maxAnonMiB.large, f1));
  rows.push(row(`cold start ms (median of ${guard.coldStartMs.runs})`, nul.coldStartMs.median, guard.coldStartMs.median, f1, `<= 100 ${mark(targets.coldStart.met)}`));
  rows.push(['executable size MiB', `${f1(nodeSizeMiB)} (node)`, f1(guard.sizeMiB), '', '']);
  out.push(table(rows));
  for (const p of [nul, guard]) for (const e of p.errorSamples) out.push(`error (${p.name}): ${e}`);

  const sn = sustained?.find((x) => x.name === nul.name);
  const sg = sustained?.find((x) => x.name === guard.name);
  out.push('');
  if (sn === undefined || sg === undefined) {
    out.push('sustained load: skipped (--no-sustained or BENCH_SUSTAINED=0)');
  } else {
    const srows: string[][] = [
      [`sustained load (c=1 ${cfg.sustainedC1Seconds} s, c=8 ${cfg.sustainedC8Seconds} s, large ${cfg.sustainedLargeSeconds} s, idle ${cfg.sustainedIdleSeconds} s)`, 'null', 'userns-guard', 'ratio', 'target'],
      row('typical: peak RSS MiB', sn.typicalPeakRssMiB, sg.typicalPeakRssMiB, f1, `<= ${TARGETS.sustainedPeakRssMiB} ${mark(targets.sustainedPeakRss?.met ?? null)}`),
      row('typical: peak anon MiB', sn.typicalPeakAnonMiB, sg.typicalPeakAnonMiB, f1, `<= ${TARGETS.sustainedPeakAnonMiB} ${mark(targets.sustainedPeakAnon?.met ?? null)}`),
      row('typical: peak PSS MiB', sn.typicalPeakPssMiB, sg.typicalPeakPssMiB, f1),
      row('typical c=8: anon MiB, first 10 s', sn.c8First10sAnonMiB, sg.c8First10sAnonMiB, f1),
      row('typical c=8: anon MiB, last 10 s', sn.c8Last10sAnonMiB, sg.c8Last10sAnonMiB, f1, `+<= ${TARGETS.sustainedTrendMiB} ${mark(targets.sustainedTrend?.met ?? null)}`),
      row('large: peak RSS MiB', sn.largePeakRssMiB, sg.largePeakRssMiB, f1, `<= ${TARGETS.largePeakRssMiB} ${mark(targets.largePeakRss?.met ?? null)}`),
      row('large: peak anon MiB', sn.largePeakAnonMiB, sg.largePeakAnonMiB, f1),
      row('RSS MiB 10 s into idle', sn.idleAfter10sRssMiB, sg.idleAfter10sRssMiB, f1),
      row('  over typical c=8 RSS, %', sn.idleAfter10sOverTypicalPct, sg.idleAfter10sOverTypicalPct, f1, `<= ${TARGETS.largeReturnPct} ${mark(targets.largeReturn?.met ?? null)}`),
      ['calls (errors)', `${sn.calls} (${sn.errors})`, `${sg.calls} (${sg.errors})`, '', ''],
    ];
    out.push(table(srows));
    out.push(`memory over time: ${cfg.out}/memory.svg`);
    for (const p of [sn, sg]) for (const e of p.errorSamples) out.push(`error (${p.name}): ${e}`);
  }

  out.push('');
  if (typeof burst === 'string') {
    out.push(`memory cgroup: skipped (${burst})`);
  } else {
    out.push(
      `memory cgroup (${burst.cgroup}), limit MemoryMax=${burst.limit}: ${burst.survived ? 'not killed' : 'KILLED or failed'}; ` +
        `${burst.calls} large calls, ${burst.errors} errors, oom_kill ${burst.oomKills}, peak charge ${f1(burst.peakChargeMiB)} MiB, peak RSS ${f1(burst.peakRssMiB)} MiB`,
    );
    for (const e of burst.errorSamples) out.push(`error (cgroup): ${e}`);
  }

  out.push('');
  if (typeof e2e === 'string') {
    out.push(`end to end: skipped (${e2e})`);
  } else {
    for (const run of e2e) {
      const none = setup(run, 'none')!;
      const e2eNull = setup(run, 'null')!;
      const e2eGuard = setup(run, 'userns-guard')!;
      const erows: string[][] = [[`end to end, ms, dockerd ${run.engine}`, 'none', 'null', 'userns-guard', 'null/none', 'guard/none', 'guard/null']];
      for (const [label, key] of [['GET /containers/json', 'list'], ['POST /containers/create', 'create'], ['GET /containers/{name}/archive', 'archive']] as const) {
        const n = none[key];
        const z = e2eNull[key];
        const g = e2eGuard[key];
        for (const q of ['p50', 'p99'] as const) {
          erows.push([
            `${label} ${q} (n=${g.n})`,
            f2(n[q]),
            f2(z[q]),
            f2(g[q]),
            `${overheadPct(z[q], n[q]) >= 0 ? '+' : ''}${f1(overheadPct(z[q], n[q]))}%`,
            `${overheadPct(g[q], n[q]) >= 0 ? '+' : ''}${f1(overheadPct(g[q], n[q]))}%`,
            `${overheadPct(g[q], z[q]) >= 0 ? '+' : ''}${f1(overheadPct(g[q], z[q]))}%`,
          ]);
        }
      }
      out.push(table(erows));
      const overhead = listOverheadOf(run);
      out.push(`e2e [dockerd ${run.engine}] GET /containers/json overhead (p50, userns-guard over no plugin): ${f1(overhead)}%, target < 5%: ${mark(overhead < TARGETS.e2eListOverheadPct)}`);
      out.push(`e2e [dockerd ${run.engine}] errors: ${run.errors}; userns-guard refused a hostile create through the engine: ${run.hostileRefused ? 'yes' : 'NO'}`);
      for (const e of run.errorSamples) out.push(`error (e2e, dockerd ${run.engine}): ${e}`);
      out.push('');
    }
  }

  const json = {
    bench: 'userns-guard',
    machine: m,
    config: cfg,
    traffic: counts,
    plugins: Object.fromEntries([nul, guard].map((p) => [p.name, p])),
    ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round2(v)])),
    targets,
    // The per-second samples are in memory.svg; the JSON line keeps the figures.
    sustained: sustained === null ? null : Object.fromEntries(sustained.map(({ samples: _s, ...f }) => [f.name, f])),
    cgroupBurst: burst,
    e2e,
  };
  const jsonLine = JSON.stringify(json);
  const ok =
    pluginErrors + e2eErrors + sustainedErrors === 0 && e2eRuns.every((r) => r.hostileRefused) && (typeof burst === 'string' || burst.survived);
  return { text: `${out.join('\n')}\n\n${jsonLine}\n`, json: jsonLine, code: ok ? 0 : 1 };
}

function sustainedTargets(g: SustainedFigures | undefined) {
  if (g === undefined) return {};
  const trend = g.c8Last10sAnonMiB - g.c8First10sAnonMiB;
  return {
    sustainedPeakRss: { target: `<= ${TARGETS.sustainedPeakRssMiB} MiB (typical, sustained)`, value: round2(g.typicalPeakRssMiB), met: g.typicalPeakRssMiB <= TARGETS.sustainedPeakRssMiB },
    sustainedPeakAnon: { target: `<= ${TARGETS.sustainedPeakAnonMiB} MiB (typical, sustained)`, value: round2(g.typicalPeakAnonMiB), met: g.typicalPeakAnonMiB <= TARGETS.sustainedPeakAnonMiB },
    sustainedTrend: { target: `last 10 s of c=8 <= first 10 s + ${TARGETS.sustainedTrendMiB} MiB (anon)`, value: round2(trend), met: trend <= TARGETS.sustainedTrendMiB },
    largePeakRss: { target: `<= ${TARGETS.largePeakRssMiB} MiB (large calls and after)`, value: round2(g.largePeakRssMiB), met: g.largePeakRssMiB <= TARGETS.largePeakRssMiB },
    largeReturn: { target: `<= ${TARGETS.largeReturnPct}% over typical c=8 RSS, 10 s into idle`, value: round2(g.idleAfter10sOverTypicalPct), met: g.idleAfter10sOverTypicalPct <= TARGETS.largeReturnPct },
  };
}
