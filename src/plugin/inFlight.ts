// Keeps a decision about an existing container true for the container the
// engine then acts on. The plugin judges `docker cp NAME:...` by looking NAME
// up; the engine resolves NAME again when it runs the call. In between, a
// rename or a remove-and-create could make NAME mean another container that
// the caller also controls. So, between a call's AuthZReq and its AuthZRes:
//
// - while a judged call on NAME is in flight, no call may make NAME refer to
//   a container (create ?name=NAME, rename ?name=NAME): refused, "retry";
// - a judged call is refused if a call claiming its NAME was in flight, or
//   allowed, at any time since its judgement began (its lookup may predate
//   the claim's effect). A claim counts at its allowance and again at its
//   end, because it takes effect somewhere in between: a judgement that
//   began while the claim was in flight is void even once it is over.
//
// The engine sends AuthZRes after the handler has returned, including when
// it failed (moby pkg/authorization/middleware.go, 20.10 to 28.5), and the
// handler resolves NAME first thing after authorization. A hold ends with
// the AuthZRes, or after 30 s: some AuthZRes never come (another
// authorization plugin refused the call, the engine lost the plugin), and a
// name must not stay locked for long; 30 s is many orders of magnitude past
// the microseconds between the answer and the engine's lookup of NAME.
//
// The same holds volume names, which a create's copy-up judgement depends on.

export type Space = 'container' | 'volume';

interface Entry {
  readonly key: string; // method and RequestUri, as the AuthZRes repeats them
  readonly names: readonly string[];
  readonly expires: number;
}

export interface InFlight {
  // A mark to pass back to judgedConflict: claims allowed after it count.
  mark(): number;
  judgedConflict(space: Space, names: readonly string[], since: number): string | null;
  claimConflict(space: Space, names: readonly string[]): string | null;
  // `since` is the mark taken when the call's judgement began: an AuthZRes
  // for the same call that arrived after it (only a replay or a reordering
  // proxy sends one before the answer) means the call has already run.
  holdJudged(space: Space, key: string, names: readonly string[], since: number): boolean;
  holdClaim(space: Space, key: string, names: readonly string[], since: number): boolean;
  // The AuthZRes for `key` arrived: its call has run.
  release(key: string): void;
  size(): number;
}

const HOLD_TTL_MS = 30_000;
const MAX_ENTRIES = 10_000;
const MAX_EARLY = 1_000;

export function createInFlight(now: () => number = Date.now): InFlight {
  // Counts marks, claims and releases, so each can be ordered after another.
  let seq = 0;
  // AuthZRes that found no hold to end: key -> seq.
  const early = new Map<string, number>();
  // Claims before this mark were forgotten (see holdClaim); a judgement that
  // began before it cannot be vouched for.
  let forgottenBefore = -1;
  const judged: Record<Space, Entry[]> = { container: [], volume: [] };
  const claims: Record<Space, Entry[]> = { container: [], volume: [] };
  // name -> seq of the last claim allowed on it, or ended
  const lastClaim: Record<Space, Map<string, number>> = { container: new Map(), volume: new Map() };

  const claimed = (space: Space, names: readonly string[]) => {
    seq++;
    for (const n of names) lastClaim[space].set(n, seq);
    if (lastClaim[space].size > MAX_ENTRIES) {
      lastClaim[space].clear();
      forgottenBefore = seq;
    }
  };
  // A claim's names count again when it ends, by its AuthZRes or by expiry.
  const claimEnded = (space: Space, e: Entry) => claimed(space, e.names);
  const live = (list: Entry[], space: Space, isClaims: boolean): Entry[] => {
    const t = now();
    let i = 0;
    while (i < list.length) {
      if (list[i]!.expires <= t) {
        const [gone] = list.splice(i, 1);
        if (isClaims) claimEnded(space, gone!);
      } else i++;
    }
    return list;
  };
  const holding = (lists: Record<Space, Entry[]>, space: Space, names: readonly string[]) =>
    live(lists[space], space, lists === claims).find((e) => e.names.some((n) => names.includes(n)));
  const ranAlready = (key: string, since: number): boolean => {
    const at = early.get(key);
    if (at === undefined || at <= since) return false;
    early.delete(key);
    return true;
  };
  const total = () => judged.container.length + judged.volume.length + claims.container.length + claims.volume.length;

  return {
    mark: () => ++seq,
    judgedConflict(space, names, since) {
      if (since < forgottenBefore) return 'too many names changed while the call was being judged';
      const claim = holding(claims, space, names);
      if (claim !== undefined) return `another call (${claim.key}) is making ${quoteList(claim.names)} refer to another ${space}`;
      for (const n of names) {
        if ((lastClaim[space].get(n) ?? -1) > since) return `${space} name ${JSON.stringify(n)} was given to another ${space} while the call was being judged`;
      }
      return null;
    },
    claimConflict(space, names) {
      const held = holding(judged, space, names);
      return held === undefined ? null : `a call on ${quoteList(held.names)} (${held.key}) is still in flight`;
    },
    holdJudged(space, key, names, since) {
      if (ranAlready(key, since)) return true;
      if (total() >= MAX_ENTRIES) return false;
      judged[space].push({ key, names, expires: now() + HOLD_TTL_MS });
      return true;
    },
    holdClaim(space, key, names, since) {
      if (total() >= MAX_ENTRIES) return false;
      claimed(space, names);
      if (!ranAlready(key, since)) claims[space].push({ key, names, expires: now() + HOLD_TTL_MS });
      return true;
    },
    release(key) {
      seq++;
      let found = false;
      for (const lists of [judged, claims]) {
        for (const space of ['container', 'volume'] as const) {
          const list = lists[space];
          const at = list.findIndex((e) => e.key === key);
          if (at >= 0) {
            const [gone] = list.splice(at, 1);
            if (lists === claims) claimEnded(space, gone!);
            found = true;
          }
        }
      }
      if (!found) {
        early.set(key, seq);
        if (early.size > MAX_EARLY) early.delete(early.keys().next().value!);
      }
    },
    size: total,
  };
}

function quoteList(names: readonly string[]): string {
  return names.map((n) => JSON.stringify(n)).join(', ');
}
