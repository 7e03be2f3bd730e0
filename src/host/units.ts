// The systemd units `install` writes. build.mjs embeds every file under
// systemd/ as {relative path: content}, so the binary carries the one source
// of truth; run from source there is no build, hence the fallback that reads
// systemd/ itself.

import fs from 'node:fs';
import path from 'node:path';

declare const __USERNS_GUARD_UNITS__: Record<string, string> | undefined;

export type Units = Readonly<Record<string, string>>;

export function embeddedUnits(): Units {
  if (typeof __USERNS_GUARD_UNITS__ === 'object' && __USERNS_GUARD_UNITS__ !== null) return __USERNS_GUARD_UNITS__;
  // import.meta is empty in the CommonJS bundle (and esbuild warns about
  // it), so locate the repository from the entry script instead: src/main.ts
  // and the test files both sit one level below it.
  return readUnitsDir(path.resolve(path.dirname(process.argv[1] ?? '.'), '..', 'systemd'));
}

// The same selection build.mjs makes: every file except *.md.
export function readUnitsDir(dir: string): Units {
  const units: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (!e.name.endsWith('.md')) units[path.relative(dir, full)] = fs.readFileSync(full, 'utf8');
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return Object.fromEntries(Object.entries(units).sort(([a], [b]) => a.localeCompare(b)));
}

// Points every ExecStart that runs userns-guard at the installed binary, so
// `--prefix` and the unit agree. Special prefixes (-@:+!) and arguments stay.
export function withBinaryPath(content: string, binary: string): string {
  return content.replace(/^(\s*ExecStart\s*=\s*[-@:+!]*)(\S+)/gm, (whole, head: string, exe: string) =>
    path.posix.basename(exe) === 'userns-guard' ? `${head}${binary}` : whole,
  );
}

// Unit names a user passes to systemctl: the top-level files (drop-ins for
// other services live in subdirectories).
export function topLevelUnitNames(units: Units): string[] {
  return Object.keys(units).filter((rel) => !rel.includes('/'));
}

export function socketUnitName(units: Units): string {
  return topLevelUnitNames(units).find((n) => n.endsWith('.socket')) ?? 'userns-guard.socket';
}
