// Where an engine without userns-guard does something other than what the
// attack catalogue's `bare` says (which is what bookworm's dockerd 20.10
// does). Each line here was seen on a real engine of that version by the bare
// run of test/e2e-userns.test.ts, which asserts it: the catalogue stays
// honest on every engine, and the guarded run's expectations come from what
// that engine does, not from what 20.10 did.

import type { Attack, Effect } from './attacks.ts';
import { compareVersions, type Engine } from './engine.ts';

export type BareOutcome =
  // The request has this effect (the catalogue's `bare`, or what replaced it).
  | { readonly effect: Effect; readonly why?: string }
  // The engine itself refuses the request, before it has any effect.
  | { readonly refused: { readonly status: number; readonly message: RegExp }; readonly why: string };

// Attacks whose body only has UsernsMode at the top level, the deprecated
// place for HostConfig fields.
const TOP_LEVEL_ONLY = new Set(['fold-top-level', 'dup-hostconfig-nulled', 'top-level-no-hostconfig', 'top-level-hostconfig-null']);
// Attacks with a further JSON value or garbage after the body (not a stray
// closing bracket, which Go's Decoder.More() does not count).
const TRAILING_VALUE = new Set(['trailing-garbage', 'trailing-second-value']);

/** The API version a request-target names, or null when it has none. */
export function targetApiVersion(target: string): string | null {
  const path = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '');
  const m = /^\/v([0-9]+\.[0-9]+)(?=\/)/.exec(path);
  return m ? m[1]! : null;
}

export function bareOutcome(a: Attack, e: Pick<Engine, 'build' | 'minApiVersion'>): BareOutcome {
  const v = e.build.version;
  const atLeast = (min: string) => compareVersions(v, min) >= 0;
  const api = targetApiVersion(a.target);
  if (api !== null && compareVersions(api, e.minApiVersion) < 0) {
    return {
      refused: { status: 400, message: /client version \S+ is too old\. Minimum supported API version is / },
      why: `API ${api} is below the engine's minimum, ${e.minApiVersion} (from 25.0)`,
    };
  }
  if (atLeast('26.1.0') && TRAILING_VALUE.has(a.name)) {
    return { refused: { status: 400, message: /unexpected content after JSON/ }, why: 'the engine refuses data after the JSON body' };
  }
  if (atLeast('26.1.0') && a.setup === 'swarm' && !/^application\/json\b/i.test(a.headers['Content-Type'] ?? '')) {
    return { refused: { status: 400, message: /unsupported Content-Type header/ }, why: 'service create takes only application/json' };
  }
  if (atLeast('28.0.0') && TOP_LEVEL_ONLY.has(a.name)) {
    return { effect: 'private-userns', why: 'the engine no longer reads the deprecated top-level HostConfig fields' };
  }
  return { effect: a.bare };
}

/** Whether create still reads the deprecated top-level HostConfig fields (20.10, 26.1: yes; 28.5: no). */
export function readsTopLevelHostConfig(e: Pick<Engine, 'build'>): boolean {
  return compareVersions(e.build.version, '28.0.0') < 0;
}

/**
 * How the engine hands a create body of a given size to authorization
 * plugins. 20.10 forwards bodies under 1 MiB and silently drops larger ones
 * (the handler still runs). 26.1 and 28.5 forward bodies up to 4 MiB and
 * refuse larger ones themselves (500), without asking the plugin.
 */
export function bodyForwarding(e: Pick<Engine, 'build'>, bytes: number): 'forwarded' | 'dropped' | 'engine-refuses' {
  if (compareVersions(e.build.version, '26.1.0') < 0) return bytes < 1 << 20 ? 'forwarded' : 'dropped';
  return bytes <= 4 << 20 ? 'forwarded' : 'engine-refuses';
}
