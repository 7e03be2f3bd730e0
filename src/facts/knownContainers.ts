// Containers looked up in the last few seconds, so that the calls one docker
// command makes (exec create and start, cp's HEAD and PUT, run's attach and
// start) share one lookup. What the rules read of a container (its user
// namespace, its mounts, its bind sources) is fixed when it is created; what
// can change is which container a reference names. So an entry is only ever
// used for a reference whose meaning can change through nothing but calls
// the plugin sees and counts as claims (src/plugin/inFlight.ts):
//
// - a full id names the container with that id, and once it is gone, a
//   container *named* with those 64 characters (a create or rename);
// - a valid container name that is not all lower-case hex (so no id prefix
//   can match it) names the container of that name: a create or rename gives
//   it, or a create without a name, which may generate it. Not a link alias
//   (`app/db`): creating `app` gives it, without claiming it;
// - a container removed by the engine itself (--rm) leaves its references
//   naming nothing, and a call on nothing fails in the engine.
//
// Short hex references (`docker exec 3f2a`) are looked up every time: when
// their container goes, they may match the prefix of another one that
// nothing claimed. Each entry keeps the in-flight mark taken before its
// lookup began, so claims since then void it.

import { containerName } from '../policy/asks.ts';
import type { ContainerFacts } from '../policy/facts.ts';

export interface KnownContainer {
  readonly facts: ContainerFacts;
  readonly mark: number;
  readonly at: number;
}

export interface KnownContainers {
  recall(ref: string, now: number): KnownContainer | undefined;
  // Under every reference the answer shows to be true at its time: the one
  // asked, the container's full id and its name.
  learn(ref: string, facts: ContainerFacts, mark: number, now: number): void;
  forget(ref: string): void;
  size(): number;
}

// Calls the engine makes without a plugin (a reload without it, a restart
// without it) are not seen; an entry lives for a few seconds only.
export const KNOWN_TTL_MS = 5_000;
const MAX_KNOWN = 1_024;

const FULL_ID = /^[0-9a-f]{64}$/;
const HEX = /^[0-9a-f]*$/;
// moby's validContainerNamePattern, 20.10 to 28.5.
const VALID_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function isFullId(ref: string): boolean {
  return FULL_ID.test(ref);
}

export function isKeptRef(ref: string): boolean {
  if (isFullId(ref)) return true;
  const name = containerName(ref);
  return VALID_NAME.test(name) && !HEX.test(name);
}

export function createKnownContainers(ttlMs = KNOWN_TTL_MS, max = MAX_KNOWN): KnownContainers {
  const entries = new Map<string, KnownContainer>();
  return {
    recall(ref, now) {
      const e = entries.get(ref);
      if (e === undefined) return undefined;
      if (now - e.at < ttlMs) return e;
      entries.delete(ref);
      return undefined;
    },
    learn(ref, facts, mark, now) {
      const entry: KnownContainer = { facts, mark, at: now };
      for (const key of new Set([ref, facts.id, facts.name])) {
        if (!isKeptRef(key)) continue;
        entries.delete(key);
        entries.set(key, entry);
      }
      while (entries.size > max) entries.delete(entries.keys().next().value!);
    },
    forget(ref) {
      entries.delete(ref);
    },
    size: () => entries.size,
  };
}
