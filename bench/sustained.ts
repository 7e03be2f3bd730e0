// Sustained load: what a plugin's memory does over minutes, not seconds. The
// interleaved rounds of plugin-bench.ts are too short to show a heap that
// grows with its load (a round is 1 s; V8 needs tens of seconds to reach a
// steady state), so here each plugin gets, back to back, one long timeline:
//
//   typical c=1 (--sustained-c1 s) -> typical c=8 (--sustained-c8 s)
//     -> large c=8 (--sustained-large s) -> idle (--sustained-idle s)
//
// with VmRSS, RssAnon and PSS read from /proc every second. The plugins run
// one after the other rather than interleaved: interleaving would give each
// one idle gaps, in which V8 shrinks its heap, and the point is memory under
// load without pause. Memory figures do not drift with the machine's other
// work the way CPU figures do; CPU and latency come from the interleaved
// rounds.

import { readFileSync } from 'node:fs';
import { kibField, peakRssKiB } from './proc.ts';
import { replay } from './replay.ts';
import type { RunningPlugin } from './plugins.ts';
import type { BenchCall, Workload } from './traffic.ts';

export interface SustainedPlan {
  readonly c1Seconds: number;
  readonly c8Seconds: number;
  readonly largeSeconds: number;
  readonly idleSeconds: number;
}

export type Phase = 'typical c=1' | 'typical c=8' | 'large c=8' | 'idle';
export const PHASES: readonly Phase[] = ['typical c=1', 'typical c=8', 'large c=8', 'idle'];

export interface MemorySample {
  // Seconds since the plugin's timeline started.
  readonly t: number;
  readonly phase: Phase;
  readonly rssMiB: number;
  readonly anonMiB: number;
  readonly pssMiB: number;
}

export interface SustainedFigures {
  readonly name: string;
  readonly samples: MemorySample[];
  readonly calls: number;
  readonly errors: number;
  readonly errorSamples: string[];
  // Over both typical phases: the largest sample, and the kernel's VmHWM
  // read at their end (it also sees peaks between samples).
  readonly typicalPeakRssMiB: number;
  readonly typicalPeakAnonMiB: number;
  readonly typicalPeakPssMiB: number;
  // Mean anonymous memory over the first and the last 10 s of typical c=8.
  readonly c8First10sAnonMiB: number;
  readonly c8Last10sAnonMiB: number;
  // Mean RSS over the last 10 s of typical c=8: what the large calls' memory
  // should come back to.
  readonly typicalRssMiB: number;
  // During the large calls and after: VmHWM at the end of the timeline.
  readonly largePeakRssMiB: number;
  readonly largePeakAnonMiB: number;
  // The RSS sample 10 s into the idle phase (or its last, if shorter), and
  // how far above typicalRssMiB it is, in percent.
  readonly idleAfter10sRssMiB: number;
  readonly idleAfter10sOverTypicalPct: number;
}

const statusKiB = (text: string, field: string): number => kibField(text, field) ?? NaN;

export function sampleMemory(pid: number): { rssMiB: number; anonMiB: number; pssMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  // smaps_rollup: the sum over all mappings, without listing them.
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return { rssMiB: statusKiB(status, 'VmRSS') / 1024, anonMiB: statusKiB(status, 'RssAnon') / 1024, pssMiB: statusKiB(rollup, 'Pss') / 1024 };
}

const mean = (xs: number[]) => (xs.length === 0 ? NaN : xs.reduce((s, x) => s + x, 0) / xs.length);
const max = (xs: number[]) => (xs.length === 0 ? NaN : Math.max(...xs));

export async function runSustained(
  plugin: RunningPlugin,
  plan: SustainedPlan,
  traffic: Record<Workload, BenchCall[]>,
  progress: (msg: string) => void,
): Promise<SustainedFigures> {
  const samples: MemorySample[] = [];
  const start = performance.now();
  let phase: Phase = 'typical c=1';
  const take = () => {
    try {
      samples.push({ t: Math.round((performance.now() - start) / 100) / 10, phase, ...sampleMemory(plugin.pid) });
    } catch {
      // Gone: the replay counts the failed calls.
    }
  };
  take();
  const sampler = setInterval(take, 1000);
  let calls = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  let typicalHwmMiB = NaN;
  try {
    const steps: [Phase, Workload, number, number][] = [
      ['typical c=1', 'typical', 1, plan.c1Seconds],
      ['typical c=8', 'typical', 8, plan.c8Seconds],
      ['large c=8', 'large', 8, plan.largeSeconds],
    ];
    for (const [p, workload, concurrency, seconds] of steps) {
      phase = p;
      progress(`sustained ${plugin.spec.name}: ${p} for ${seconds} s`);
      // Replayed in 5 s pieces, only to keep the per-call latency arrays small.
      const end = performance.now() + seconds * 1000;
      while (performance.now() < end) {
        const ms = Math.min(5000, end - performance.now());
        const r = await replay({ socket: plugin.socket, calls: traffic[workload], concurrency, durationMs: ms, checkDenials: plugin.spec.enforces });
        calls += r.calls;
        errors += r.errors;
        for (const e of r.errorSamples) if (errorSamples.length < 5) errorSamples.push(`sustained ${p}: ${e}`);
      }
      if (p === 'typical c=8') typicalHwmMiB = peakRssKiB(plugin.pid) / 1024;
    }
    phase = 'idle';
    progress(`sustained ${plugin.spec.name}: idle for ${plan.idleSeconds} s`);
    await new Promise((r) => setTimeout(r, plan.idleSeconds * 1000 + 100));
  } finally {
    clearInterval(sampler);
  }
  take();
  const endHwmMiB = peakRssKiB(plugin.pid) / 1024;

  const of = (p: Phase) => samples.filter((s) => s.phase === p);
  const typical = [...of('typical c=1'), ...of('typical c=8')];
  const c8 = of('typical c=8');
  const c8Start = c8[0]?.t ?? 0;
  const c8End = c8.at(-1)?.t ?? 0;
  const typicalRss = mean(c8.filter((s) => s.t > c8End - 10).map((s) => s.rssMiB));
  const idle = of('idle');
  const idleStart = idle[0]?.t ?? 0;
  const after10 = idle.find((s) => s.t >= idleStart + 10) ?? idle.at(-1);
  const afterRss = after10?.rssMiB ?? NaN;
  const large = [...of('large c=8'), ...idle];
  return {
    name: plugin.spec.name,
    samples,
    calls,
    errors,
    errorSamples,
    typicalPeakRssMiB: Math.max(max(typical.map((s) => s.rssMiB)), typicalHwmMiB),
    typicalPeakAnonMiB: max(typical.map((s) => s.anonMiB)),
    typicalPeakPssMiB: max(typical.map((s) => s.pssMiB)),
    c8First10sAnonMiB: mean(c8.filter((s) => s.t < c8Start + 10).map((s) => s.anonMiB)),
    c8Last10sAnonMiB: mean(c8.filter((s) => s.t > c8End - 10).map((s) => s.anonMiB)),
    typicalRssMiB: typicalRss,
    largePeakRssMiB: Math.max(max(large.map((s) => s.rssMiB)), endHwmMiB),
    largePeakAnonMiB: max(large.map((s) => s.anonMiB)),
    idleAfter10sRssMiB: afterRss,
    idleAfter10sOverTypicalPct: ((afterRss - typicalRss) / typicalRss) * 100,
  };
}

// The memory-over-time picture: RSS (solid) and anonymous memory (dashed) of
// each plugin against seconds of its own timeline, phases shaded. Plain SVG,
// no dependencies; opens in any browser.
export function memorySvg(results: readonly SustainedFigures[], title: string): string {
  const W = 960;
  const H = 420;
  const L = 56;
  const R = 150;
  const T = 36;
  const B = 44;
  const all = results.flatMap((r) => r.samples);
  const tMax = Math.max(1, ...all.map((s) => s.t));
  const yMax = Math.ceil(Math.max(16, ...all.map((s) => s.rssMiB)) / 16) * 16;
  const x = (t: number) => L + (t / tMax) * (W - L - R);
  const y = (v: number) => T + (1 - v / yMax) * (H - T - B);
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${L}" y="20" font-size="14">${esc(title)}</text>`);
  // Phases, from the first plugin's timeline (both follow the same plan).
  const shades = ['#f4f4f4', '#e8eef8', '#f8ece4', '#eef6ea'];
  const ref = results[0]?.samples ?? [];
  PHASES.forEach((p, i) => {
    const ts = ref.filter((s) => s.phase === p).map((s) => s.t);
    if (ts.length === 0) return;
    const from = x(Math.min(...ts));
    const to = x(Math.max(...ts));
    out.push(`<rect x="${from.toFixed(1)}" y="${T}" width="${Math.max(1, to - from).toFixed(1)}" height="${H - T - B}" fill="${shades[i]}"/>`);
    out.push(`<text x="${(from + 4).toFixed(1)}" y="${T + 14}" fill="#555">${esc(p)}</text>`);
  });
  for (let v = 0; v <= yMax; v += yMax / 8) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v.toFixed(0)}</text>`);
  }
  const step = tMax > 200 ? 30 : 10;
  for (let t = 0; t <= tMax; t += step) {
    out.push(`<text x="${x(t).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${t}</text>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">seconds of load (each plugin its own timeline)</text>`);
  out.push(`<text x="14" y="${(T + H - B) / 2}" transform="rotate(-90 14 ${(T + H - B) / 2})" text-anchor="middle">MiB</text>`);
  const colours = ['#888888', '#1f6fd1', '#c0392b', '#27ae60'];
  results.forEach((r, i) => {
    const c = colours[i % colours.length];
    const line = (f: (s: MemorySample) => number) => r.samples.map((s) => `${x(s.t).toFixed(1)},${y(f(s)).toFixed(1)}`).join(' ');
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${line((s) => s.rssMiB)}"/>`);
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.5" stroke-dasharray="5 3" points="${line((s) => s.anonMiB)}"/>`);
    const ly = T + 20 + i * 40;
    out.push(`<line x1="${W - R + 10}" x2="${W - R + 34}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<text x="${W - R + 40}" y="${ly + 4}">${esc(r.name)} RSS</text>`);
    out.push(`<line x1="${W - R + 10}" x2="${W - R + 34}" y1="${ly + 16}" y2="${ly + 16}" stroke="${c}" stroke-width="1.5" stroke-dasharray="5 3"/>`);
    out.push(`<text x="${W - R + 40}" y="${ly + 20}">${esc(r.name)} anon</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
