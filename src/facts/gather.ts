// The one step of a decision that does I/O: looks up what the policy's needs
// name, on the engine's API socket and the host's file system, in rounds
// (a start's bind paths are known once its container is). Everything is
// bounded by one deadline; whatever is not learnt by then stays unknown, and
// the policy refuses on it.

import type { EngineApi } from '../engine/engineApi.ts';
import type { ContainerFacts, FactNeeds, Facts, Lookup, PathFacts, RemappedRoot, VolumeFacts } from '../policy/facts.ts';
import { needsNothing } from '../policy/facts.ts';
import { examinePath } from './hostPaths.ts';
import { CONTAINER_REFS, VOLUME_REFS, type KnownFacts, type RecentAnswers, type RefKind } from './recentAnswers.ts';

export interface FactSources {
  readonly engine: EngineApi;
  readonly deadlineMs: number;
  // Containers and volumes looked up recently; absent, every call looks
  // them up.
  readonly known?: KnownFacts;
  // The remapped root changes only with an engine restart; looked up at most
  // once a minute.
  remappedRoot?: { readonly at: number; readonly value: Promise<Lookup<RemappedRoot>> };
}

const REMAPPED_ROOT_TTL_MS = 60_000;

interface MutableFacts {
  containers: Map<string, Lookup<ContainerFacts>>;
  execs: Map<string, Lookup<ContainerFacts>>;
  volumes: Map<string, Lookup<VolumeFacts>>;
  paths: Map<string, PathFacts>;
  // Looked up once per call, for its paths' judgement.
  remappedRoot: Lookup<RemappedRoot> | null;
}

export function emptyFacts(): MutableFacts {
  return { containers: new Map(), execs: new Map(), volumes: new Map(), paths: new Map(), remappedRoot: null };
}

// The caller's judgement of a recalled answer: whether any of `names` was
// claimed since `mark`, the one its answer was learnt at, or is being
// claimed now. `mark` is the one to keep with what this call learns.
export interface Recall {
  readonly mark: number;
  unclaimedSince(space: 'container' | 'volume', names: readonly string[], mark: number): boolean;
}

// Adds the facts `needs` names to `into`, within the deadline.
export async function gather(needs: FactNeeds, sources: FactSources, into: MutableFacts, deadline: number, recall?: Recall): Promise<Facts> {
  if (needsNothing(needs)) return into;
  const known = sources.known;
  const container = (ref: string) => recalled(CONTAINER_REFS, known?.containers, ref, recall, () => bounded(sources.engine.container(ref), deadline));
  const jobs: Promise<void>[] = [];
  for (const ref of needs.containers) {
    jobs.push(container(ref).then((v) => void into.containers.set(ref, v)));
  }
  for (const id of needs.execs) {
    jobs.push(
      bounded(sources.engine.execContainerId(id), deadline)
        .then((c) => (c.kind === 'found' ? container(c.value) : c))
        .then((v) => void into.execs.set(id, v)),
    );
  }
  for (const name of needs.volumes) {
    const volume = recalled(VOLUME_REFS, known?.volumes, name, recall, () => bounded(sources.engine.volume(name), deadline));
    jobs.push(volume.then((v) => void into.volumes.set(name, v)));
  }
  if (needs.paths.length > 0) {
    jobs.push(
      (async () => {
        const root = into.remappedRoot ?? (into.remappedRoot = await bounded(remappedRoot(sources), deadline));
        await Promise.all(
          needs.paths.map(async (p) => {
            const facts: PathFacts =
              root.kind === 'found'
                ? await bounded(examinePath(p, root.value), deadline, (why) => ({ kind: 'unexaminable', why }) as const)
                : { kind: 'unexaminable', why: root.kind === 'absent' ? 'the engine did not say how it remaps root' : root.why };
            into.paths.set(p, facts);
          }),
        );
      })(),
    );
  }
  await Promise.all(jobs);
  return into;
}

// A recent answer the caller still vouches for, or a lookup, learnt.
async function recalled<T>(
  kind: RefKind<T>,
  store: RecentAnswers<T> | undefined,
  ref: string,
  recall: Recall | undefined,
  lookup: () => Promise<Lookup<T>>,
): Promise<Lookup<T>> {
  if (store === undefined || recall === undefined) return lookup();
  // A monotonic clock: a clock stepped back must not make an answer live longer.
  const k = kind.keeps(ref) ? store.recall(ref, performance.now()) : undefined;
  if (k !== undefined) {
    if (recall.unclaimedSince(kind.space, kind.voidedBy(ref), k.mark)) return { kind: 'found', value: k.facts };
    store.forget(ref);
  }
  const found = await lookup();
  if (found.kind === 'found') store.learn(kind.vouchedFor(ref, found.value), found.value, recall.mark, performance.now());
  return found;
}

function remappedRoot(sources: FactSources): Promise<Lookup<RemappedRoot>> {
  const cached = sources.remappedRoot;
  if (cached !== undefined && Date.now() - cached.at < REMAPPED_ROOT_TTL_MS) return cached.value;
  const value = sources.engine.remappedRoot();
  sources.remappedRoot = { at: Date.now(), value };
  // A failure is not kept: the next call asks again.
  void value.then((v) => {
    if (v.kind !== 'found' && sources.remappedRoot?.value === value) sources.remappedRoot = undefined;
  });
  return value;
}

function bounded<T>(
  work: Promise<T>,
  deadline: number,
  late: (why: string) => T = (why) => ({ kind: 'unknown', why }) as T,
): Promise<T> {
  const left = deadline - Date.now();
  // The operator's remedy is the flag: an engine can be slow at a lookup
  // (it probes every plugin it can discover for a volume name it does not know).
  const why = 'no answer within the lookup deadline, --lookup-timeout';
  if (left <= 0) return Promise.resolve(late(why));
  return new Promise<T>((resolve) => {
    const timer = setTimeout(() => resolve(late(why)), left);
    work.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        resolve(late(String((err as Error)?.message ?? err)));
      },
    );
  });
}
