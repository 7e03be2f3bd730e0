// Containers and volumes looked up in the last few seconds, so that the calls
// one docker command makes (exec create and start, cp's HEAD and GET or PUT
// and the volumes behind the container's mounts, run's attach and start)
// share one lookup. What the rules read of a container (its user namespace, its mounts,
// its bind sources) and of a volume (its driver and options) is fixed when it
// is created; what can change is which one a reference names. So an answer is
// only ever used for a reference whose meaning can change through nothing but
// calls the plugin sees and counts as claims (src/plugin/inFlight.ts):
//
// - a container's full id names the container with that id, and once it is
//   gone, a container *named* with those 64 characters (a create or rename);
// - a valid container name that is not all lower-case hex (so no id prefix
//   can match it) names the container of that name: a create or rename gives
//   it, or a create without a name (or a classic build), which may generate
//   it. Not a link alias (`app/db`): creating `app` gives it, without
//   claiming it;
// - a volume name names one volume, exactly; a volume create of that name, or
//   a container create giving it options, makes it anew. A container create
//   that makes it without options makes a plain local one, or one of another
//   driver, which the rules judge by the mount's driver;
// - a container or volume removed leaves its references naming nothing, and
//   a call on nothing fails in the engine.
//
// Short hex references (`docker exec 3f2a`) are looked up every time: when
// their container goes, they may match the prefix of another one that
// nothing claimed. Each entry keeps the in-flight mark taken before its
// lookup began, so claims since then void it.

import { containerName, GENERATED_NAME } from '../policy/asks.ts';
import type { ContainerFacts, VolumeFacts } from '../policy/facts.ts';

export interface Recent<T> {
  readonly facts: T;
  readonly mark: number;
  readonly at: number;
}

export interface RecentAnswers<T> {
  recall(ref: string, now: number): Recent<T> | undefined;
  // Under every reference the answer shows to be true at its time.
  learn(refs: readonly string[], facts: T, mark: number, now: number): void;
  forget(ref: string): void;
  size(): number;
}

export interface KnownFacts {
  readonly containers: RecentAnswers<ContainerFacts>;
  readonly volumes: RecentAnswers<VolumeFacts>;
}

// Calls the engine makes without a plugin (a reload without it, a restart
// without it) are not seen; an entry lives for a few seconds only.
export const RECENT_TTL_MS = 5_000;
const MAX_RECENT = 1_024;

const FULL_ID = /^[0-9a-f]{64}$/;
const HEX = /^[0-9a-f]*$/;
// moby's validContainerNamePattern, 20.10 to 28.5.
const VALID_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function isFullId(ref: string): boolean {
  return FULL_ID.test(ref);
}

export function isKeptContainerRef(ref: string): boolean {
  if (isFullId(ref)) return true;
  const name = containerName(ref);
  return VALID_NAME.test(name) && !HEX.test(name);
}

// Which references of a kind may be kept, which ones an answer vouches for
// (a container's inspect answer for its full id and its name as well), and
// the names whose claims void a kept one.
export interface RefKind<T> {
  readonly space: 'container' | 'volume';
  keeps(ref: string): boolean;
  vouchedFor(asked: string, facts: T): string[];
  voidedBy(ref: string): string[];
}

export const CONTAINER_REFS: RefKind<ContainerFacts> = {
  space: 'container',
  keeps: isKeptContainerRef,
  vouchedFor: (asked, facts) => [...new Set([asked, facts.id, facts.name])].filter(isKeptContainerRef),
  // A generated name can be any name but a full id.
  voidedBy: (ref) => (isFullId(ref) ? [ref] : [containerName(ref), GENERATED_NAME]),
};

export const VOLUME_REFS: RefKind<VolumeFacts> = {
  space: 'volume',
  keeps: (name) => name !== '',
  vouchedFor: (asked) => [asked],
  voidedBy: (name) => [name],
};

export function createKnownFacts(): KnownFacts {
  return { containers: createRecentAnswers(), volumes: createRecentAnswers() };
}

export function createRecentAnswers<T>(ttlMs = RECENT_TTL_MS, max = MAX_RECENT): RecentAnswers<T> {
  const entries = new Map<string, Recent<T>>();
  return {
    recall(ref, now) {
      const e = entries.get(ref);
      if (e === undefined) return undefined;
      if (now - e.at < ttlMs) return e;
      entries.delete(ref);
      return undefined;
    },
    learn(refs, facts, mark, now) {
      const entry: Recent<T> = { facts, mark, at: now };
      for (const key of refs) {
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
