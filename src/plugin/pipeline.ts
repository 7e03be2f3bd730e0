// One call from envelope to answer: the pure first step, the facts it needs
// (the only I/O), the pure second step, and the in-flight bookkeeping that
// keeps names from moving under a decision. Calls that need no facts and
// claim no names (nearly all) are answered synchronously.

import { gather, emptyFacts, type FactSources, type Recall } from '../facts/gather.ts';
import { decide, judgeFacts, needsAfter, needsFactsFirst, overrule, type Decision, type PolicyOptions } from '../policy/decide.ts';
import { containerName } from '../policy/asks.ts';
import { needsNothing } from '../policy/facts.ts';
import type { EnvelopeBytes } from '../engine/envelope.ts';
import type { InFlight } from './inFlight.ts';

export interface Pipeline {
  readonly policy: PolicyOptions;
  readonly sources: FactSources | null;
  readonly inFlight: InFlight;
}

const MAX_ROUNDS = 3;

export function decideNow(envelope: EnvelopeBytes, p: Pipeline): Decision | Promise<Decision> {
  const d = decide(envelope, p.policy);
  if (!d.allow || d.call === null) return d;
  const claimsNames = d.asks.claimsContainerNames.length > 0 || d.asks.claimsVolumeNames.length > 0;
  if (!needsFactsFirst(d) && !claimsNames) return d;
  return withFacts(d, p);
}

async function withFacts(d: Decision, p: Pipeline): Promise<Decision> {
  const call = d.call!;
  const key = inFlightKey(call.method, call.uri);
  const claimed = claimConflict(d, p);
  if (claimed !== null) return claimed;

  const since = p.inFlight.mark();
  let judged = d;
  const judgedContainers = d.asks.target?.kind === 'container' ? [containerName(d.asks.target.ref)] : [];
  const judgedVolumes = d.asks.volumes.flatMap((v) => (v.name === null ? [] : [v.name]));
  if (needsFactsFirst(d)) {
    if (p.sources === null) {
      return overrule(d, { rule: 'lookup-failed', reason: 'refused: userns-guard has no engine socket to look up what this call acts on' }, p.policy);
    }
    const deadline = Date.now() + p.sources.deadlineMs;
    const facts = emptyFacts();
    let needs = d.needs;
    const recall = recallSince(since, p.inFlight);
    for (let round = 0; round < MAX_ROUNDS && !needsNothing(needs); round++) {
      await gather(needs, p.sources, facts, deadline, recall);
      needs = needsAfter(d, facts);
    }
    judged = judgeFacts(d, facts, p.policy);
    if (!judged.allow) return judged;
  }

  // Facts were gathered asynchronously: what happened meanwhile counts.
  const moved =
    p.inFlight.judgedConflict('container', judgedContainers, since) ?? p.inFlight.judgedConflict('volume', judgedVolumes, since);
  if (moved !== null) {
    return overrule(judged, { rule: 'name-in-flux', reason: `refused: ${moved}; retry once it is done` }, p.policy);
  }
  const claimedLate = claimConflict(judged, p);
  if (claimedLate !== null) return claimedLate;

  const held =
    (judgedContainers.length === 0 || p.inFlight.holdJudged('container', key, judgedContainers, since)) &&
    (judgedVolumes.length === 0 || p.inFlight.holdJudged('volume', key, judgedVolumes, since)) &&
    (d.asks.claimsContainerNames.length === 0 || p.inFlight.holdClaim('container', key, d.asks.claimsContainerNames, since)) &&
    (d.asks.claimsVolumeNames.length === 0 || p.inFlight.holdClaim('volume', key, d.asks.claimsVolumeNames, since));
  if (!held) {
    p.inFlight.release(key);
    return overrule(judged, { rule: 'name-in-flux', reason: 'refused: too many calls on existing containers are in flight; retry' }, p.policy);
  }
  return judged;
}

// An answer learnt at a mark still holds when nothing claimed the names
// that void it since then, and nothing is claiming them now (see
// recentAnswers.ts).
function recallSince(since: number, inFlight: InFlight): Recall {
  return {
    mark: since,
    unclaimedSince: (space, names, mark) => inFlight.judgedConflict(space, names, mark) === null,
  };
}

function claimConflict(d: Decision, p: Pipeline): Decision | null {
  const conflict =
    p.inFlight.claimConflict('container', d.asks.claimsContainerNames) ?? p.inFlight.claimConflict('volume', d.asks.claimsVolumeNames);
  if (conflict === null) return null;
  return overrule(d, { rule: 'name-in-flux', reason: `refused: ${conflict}, and this call would change what its name refers to; retry once it is done` }, p.policy);
}

export function inFlightKey(method: string, uri: string): string {
  return `${method} ${uri}`;
}

// The AuthZRes envelope starts with the request's fields in Go's struct
// order (User, UserAuthNMethod, RequestMethod, RequestUri, ...), so the
// first kilobytes name the call; the rest (a response body of any size) is
// never read.
export function callOfResponse(prefix: string): string | null {
  let method: string | null = null;
  let uri: string | null = null;
  let i = skipSpace(prefix, 0);
  if (prefix[i] !== '{') return null;
  i++;
  for (;;) {
    i = skipSpace(prefix, i);
    const key = readString(prefix, i);
    if (key === null) return null;
    i = skipSpace(prefix, key.end);
    if (prefix[i] !== ':') return null;
    i = skipSpace(prefix, i + 1);
    const value = readString(prefix, i);
    if (value === null) {
      if (prefix.startsWith('null', i)) i += 4;
      else return null;
    } else {
      i = value.end;
      if (key.text === 'RequestMethod') method = value.text;
      if (key.text === 'RequestUri') uri = value.text;
    }
    if (method !== null && uri !== null) return inFlightKey(method, uri);
    i = skipSpace(prefix, i);
    if (prefix[i] !== ',') return null;
    i++;
  }
}

function skipSpace(s: string, i: number): number {
  while (i < s.length && (s[i] === ' ' || s[i] === '\n' || s[i] === '\r' || s[i] === '\t')) i++;
  return i;
}

function readString(s: string, i: number): { text: string; end: number } | null {
  if (s[i] !== '"') return null;
  let j = i + 1;
  while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
  if (j >= s.length) return null;
  try {
    return { text: JSON.parse(s.slice(i, j + 1)) as string, end: j + 1 };
  } catch {
    return null;
  }
}
