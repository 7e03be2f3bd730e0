// What /proc says about a process: CPU time and memory. Reading the plugin's
// own counters keeps the load generator's work out of its figures.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let clockTicks: number | undefined;

// USER_HZ: the unit of utime and stime.
function ticksPerSecond(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clockTicks;
}

// utime + stime of every thread of the process, in milliseconds.
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // comm (field 2) may contain spaces; the fields after its ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / ticksPerSecond();
}

// A "Field:   123 kB" line of /proc/PID/status or smaps_rollup, in KiB.
export function kibField(text: string, field: string): number | null {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
  return m === null ? null : Number(m[1]);
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon' | 'RssFile'): number {
  const kib = kibField(readFileSync(`/proc/${pid}/status`, 'utf8'), field);
  if (kib === null) throw new Error(`no ${field} in /proc/${pid}/status`);
  return kib;
}

export const rssKiB = (pid: number): number => statusKiB(pid, 'VmRSS');
// The kernel's high-water mark of RSS over the process's life.
export const peakRssKiB = (pid: number): number => statusKiB(pid, 'VmHWM');

// RSS split: private memory (the heap, JIT code) and mapped file pages (the
// executable's code and data, shared with every process running it).
export function rssSplitKiB(pid: number): { anon: number; file: number } {
  return { anon: statusKiB(pid, 'RssAnon'), file: statusKiB(pid, 'RssFile') };
}

export function machine(): { nproc: number; cpu: string; memGiB: number; kernel: string; node: string } {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  return {
    nproc: (cpuinfo.match(/^processor\s*:/gm) ?? []).length,
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    memGiB: Math.round((Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0) / 2 ** 20) * 10) / 10,
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    node: process.version,
  };
}
