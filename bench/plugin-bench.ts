// The plugin-level measurement: cold starts, then both workloads at each
// concurrency in interleaved rounds, with the plugin's own CPU time and memory
// read from /proc around every round.

import { statSync } from 'node:fs';
import { coldStartMs, startPlugin, type PluginSpec, type RunningPlugin } from './plugins.ts';
import { cpuMs, peakRssKiB, rssKiB, rssSplitKiB } from './proc.ts';
import { replay } from './replay.ts';
import { median, summarize, type Summary } from './stats.ts';
import { perKind, type BenchCall, type CallKind, type Workload } from './traffic.ts';

export const CONCURRENCIES = [1, 8] as const;
export type Concurrency = (typeof CONCURRENCIES)[number];
export const WORKLOADS: readonly Workload[] = ['typical', 'large'];

export interface RoundPlan {
  readonly rounds: number;
  readonly coldRuns: number;
  // Per round, plugin and concurrency.
  readonly msPerWorkload: Record<Workload, number>;
}

interface Slot {
  calls: number;
  errors: number;
  retried: number;
  elapsedMs: number;
  cpuMs: number;
  latencyUs: number[];
  byKind: Record<CallKind, number[]>;
}

export interface SlotFigures {
  readonly callsPerSec: number;
  readonly latencyUs: Summary;
  readonly cpuUsPerCall: number;
  readonly calls: number;
  readonly errors: number;
  // Refused as name-in-flux (see replay.ts), not errors.
  readonly retried: number;
  // Median latency (µs) of each kind of call in the workload.
  readonly p50ByKindUs: Partial<Record<CallKind, number>>;
}

export interface PluginFigures {
  readonly name: string;
  readonly workloads: Record<Workload, Record<Concurrency, SlotFigures>>;
  readonly errorSamples: string[];
  readonly idleRssMiB: number;
  readonly idleAnonMiB: number;
  readonly peakRssTypicalMiB: number;
  readonly peakRssLargeMiB: number;
  // Sampled every 50 ms under load: the largest private (anon) and mapped
  // file parts seen, per workload.
  readonly maxAnonMiB: Record<Workload, number>;
  readonly maxFileMiB: Record<Workload, number>;
  readonly coldStartMs: { median: number; min: number; max: number; runs: number };
  readonly sizeMiB: number;
}

function emptySlot(): Slot {
  return { calls: 0, errors: 0, retried: 0, elapsedMs: 0, cpuMs: 0, latencyUs: [], byKind: perKind((): number[] => []) };
}

function figures(s: Slot): SlotFigures {
  const p50ByKindUs: Partial<Record<CallKind, number>> = {};
  for (const [k, v] of Object.entries(s.byKind) as [CallKind, number[]][]) if (v.length > 0) p50ByKindUs[k] = median(v);
  return {
    callsPerSec: (s.calls * 1000) / s.elapsedMs,
    latencyUs: summarize(s.latencyUs),
    cpuUsPerCall: (s.cpuMs * 1000) / s.calls,
    calls: s.calls,
    errors: s.errors,
    retried: s.retried,
    p50ByKindUs,
  };
}

export async function measurePlugins(
  plan: RoundPlan,
  traffic: Record<Workload, BenchCall[]>,
  specs: PluginSpec[],
  progress: (msg: string) => void,
): Promise<PluginFigures[]> {
  // Cold start first, alternating; one run of each warms the page cache and is not counted.
  const cold = specs.map(() => [] as number[]);
  progress(`cold start: ${plan.coldRuns} runs each (after a warm-up run)`);
  for (let i = 0; i <= plan.coldRuns; i++) {
    for (const j of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const ms = await coldStartMs(specs[j]!);
      if (i > 0) cold[j]!.push(ms);
    }
  }

  const running: RunningPlugin[] = [];
  try {
    for (const s of specs) running.push(await startPlugin(s));
    // Settled after start, before any load.
    await new Promise((r) => setTimeout(r, 300));
    const idle = running.map((p) => rssKiB(p.pid));
    const idleAnon = running.map((p) => rssSplitKiB(p.pid).anon);
    const maxAnon = running.map(() => ({ typical: 0, large: 0 }) as Record<Workload, number>);
    const maxFile = running.map(() => ({ typical: 0, large: 0 }) as Record<Workload, number>);
    let phase: Workload = 'typical';
    const sampler = setInterval(() => {
      running.forEach((p, i) => {
        try {
          const m = rssSplitKiB(p.pid);
          maxAnon[i]![phase] = Math.max(maxAnon[i]![phase], m.anon);
          maxFile[i]![phase] = Math.max(maxFile[i]![phase], m.file);
        } catch {
          // Gone: the replay counts the failed calls.
        }
      });
    }, 50);
    const peakTypical: number[] = [];
    const slots = running.map(() => ({ typical: { 1: emptySlot(), 8: emptySlot() }, large: { 1: emptySlot(), 8: emptySlot() } }) as Record<Workload, Record<Concurrency, Slot>>);
    const errorSamples = running.map(() => [] as string[]);

    for (const workload of WORKLOADS) {
      phase = workload;
      const calls = traffic[workload];
      const ms = plan.msPerWorkload[workload];
      progress(`${workload}: warm-up, 1 s per plugin (not counted)`);
      for (const p of running) await replay({ socket: p.socket, calls, concurrency: 8, durationMs: 1000, checkDenials: p.spec.enforces });
      for (let r = 0; r < plan.rounds; r++) {
        const line: string[] = [];
        for (const c of CONCURRENCIES) {
          const order = (r + c) % 2 === 0 ? [0, 1] : [1, 0];
          for (const i of order) {
            const p = running[i]!;
            const cpu0 = cpuMs(p.pid);
            const res = await replay({ socket: p.socket, calls, concurrency: c, durationMs: ms, checkDenials: p.spec.enforces });
            const cpu1 = cpuMs(p.pid);
            const slot = slots[i]![workload][c];
            slot.calls += res.calls;
            slot.errors += res.errors;
            slot.retried += res.retried;
            slot.elapsedMs += res.elapsedMs;
            slot.cpuMs += cpu1 - cpu0;
            for (const k of Object.keys(res.latencyUs) as CallKind[]) {
              // A loop, not push(...xs): a spread of 100k arguments overflows the stack.
              for (const us of res.latencyUs[k]) {
                slot.byKind[k].push(us);
                slot.latencyUs.push(us);
              }
            }
            for (const e of res.errorSamples) if (errorSamples[i]!.length < 5) errorSamples[i]!.push(`${workload} c=${c}: ${e}`);
            line.push(
              `c=${c} ${p.spec.name} ${(((cpu1 - cpu0) * 1000) / res.calls).toFixed(1)} µs CPU/call ` +
                `${(rssSplitKiB(p.pid).anon / 1024).toFixed(0)} MiB anon${res.errors > 0 ? ` ${res.errors} ERRORS` : ''}`,
            );
          }
        }
        progress(`${workload} round ${r + 1}/${plan.rounds}: ${line.join(', ')}`);
      }
      // VmHWM only grows: read it between the workloads.
      if (workload === 'typical') for (const p of running) peakTypical.push(peakRssKiB(p.pid));
    }
    clearInterval(sampler);

    return running.map((p, i) => ({
      name: p.spec.name,
      workloads: {
        typical: { 1: figures(slots[i]!.typical[1]), 8: figures(slots[i]!.typical[8]) },
        large: { 1: figures(slots[i]!.large[1]), 8: figures(slots[i]!.large[8]) },
      },
      errorSamples: errorSamples[i]!,
      idleRssMiB: idle[i]! / 1024,
      idleAnonMiB: idleAnon[i]! / 1024,
      maxAnonMiB: { typical: maxAnon[i]!.typical / 1024, large: maxAnon[i]!.large / 1024 },
      maxFileMiB: { typical: maxFile[i]!.typical / 1024, large: maxFile[i]!.large / 1024 },
      peakRssTypicalMiB: peakTypical[i]! / 1024,
      peakRssLargeMiB: peakRssKiB(p.pid) / 1024,
      coldStartMs: { median: median(cold[i]!), min: Math.min(...cold[i]!), max: Math.max(...cold[i]!), runs: cold[i]!.length },
      sizeMiB: statSync(p.spec.shipped).size / 2 ** 20,
    }));
  } catch (err) {
    for (const p of running) process.stderr.write(`bench: ${p.spec.name} stderr tail:\n${p.logTail()}\n`);
    throw err;
  } finally {
    await Promise.all(running.map((p) => p.stop()));
  }
}
