// Differential test of the userns policy against Go's own encoding/json.
//
// Thousands of create and legacy-start bodies, generated from a grammar of
// hostile variants and mutated from real docker CLI bodies, go both to the
// Go reference decoder (test/gojson, decoding like Docker Engine 20.10) and
// to decide(). The guarantee under test: whenever Go ends with
// HostConfig.UsernsMode == "host", the policy denies. Over-denial (Go says
// not host, we deny) is only reported, since refusing what the engine would
// misread is the point of a strict reader.
//
// Seeded: the seed is printed; DIFF_SEED=<n> reproduces or explores.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';

import { isObject, lastScalar, objectsUnder, parseGoJson } from '../src/engine/goJson.ts';
import { decide, DEFAULT_POLICY, type Decision } from '../src/policy/decide.ts';
import { BENIGN_LOOKALIKES, CLI_CREATE_BODIES, hostileBody, makeRng, mutatedCliBody, seedFromEnv, type Rng } from './lib/bodies.ts';
import { buildGoDecoder, goDecodeAll, goDecoderSkipReason, type GoDecoded } from './lib/gojson.ts';
import { envelope } from './lib/plugin.ts';
import { skipUnless } from './lib/prereq.ts';

type Mode = 'create' | 'start';

interface Case {
  readonly origin: string;
  readonly uri: string;
  readonly body: Buffer;
}

// Every spelling of the route the engine's router accepts.
const CREATE_URIS = [
  '/v1.41/containers/create',
  '/containers/create',
  '/v1.41/containers/%63reate?name=x',
  '/v1.41/containers%2Fcreate',
  'http://docker/v1.41/containers/create',
  '/v1.12/containers/create',
];
// Every one below 1.24, where the engine applies a start body as HostConfig.
const START_URIS = [
  '/v1.23/containers/0123456789ab/start',
  '/v1.12/containers/web/start',
  '/v1.23.9/containers/a/b/start',
  '/v01.023/containers/x/start',
  '/v1.2/containers/x%2Fy/start',
  '/v1.23/containers/x/%73tart',
];

const CORPUS = { create: { hostile: 5000, mutated: 4000 }, start: { hostile: 2500, mutated: 1500 } } as const;

function decideFor(c: Case): Decision {
  const headers = { 'Content-Type': 'application/json', 'Content-Length': String(c.body.length) };
  return decide(JSON.stringify(envelope('POST', c.uri, c.body, headers)), DEFAULT_POLICY);
}

function corpus(rng: Rng, mode: Mode): Case[] {
  const uris = mode === 'create' ? CREATE_URIS : START_URIS;
  const sizes = CORPUS[mode];
  const out: Case[] = [];
  for (let i = 0; i < sizes.hostile; i++) out.push({ origin: 'grammar', uri: rng.pick(uris), body: hostileBody(rng) });
  for (let i = 0; i < sizes.mutated; i++) {
    const m = mutatedCliBody(rng);
    out.push({ origin: `mutated "${m.from}"`, uri: rng.pick(uris), body: m.body });
  }
  return out;
}

const isHost = (g: GoDecoded): boolean => g.ok && g.usernsMode === 'host';

// Shortens a bypass by deleting chunks while it stays one, so the report
// shows a minimal counter-example instead of a 1.5 KB CLI body.
async function shrink(binary: string, mode: Mode, c: Case): Promise<Buffer> {
  let cur = c.body;
  for (let size = cur.length >> 1; size >= 1; ) {
    const candidates: Buffer[] = [];
    for (let at = 0; at < cur.length; at += size) candidates.push(Buffer.concat([cur.subarray(0, at), cur.subarray(at + size)]));
    const go = await goDecodeAll(binary, candidates, mode);
    const i = candidates.findIndex((body, j) => isHost(go[j]!) && decideFor({ ...c, body }).allow);
    if (i >= 0) cur = candidates[i]!;
    else size >>= 1;
  }
  return cur;
}

function show(body: Buffer): string {
  const text = body.toString('utf8');
  const lossless = Buffer.from(text, 'utf8').equals(body);
  return lossless ? JSON.stringify(text) : `base64:${body.toString('base64')} (${JSON.stringify(text)})`;
}

// Counts per origin of the bodies (grammar, mutated CLI).
interface Tally {
  bodies: number;
  goOk: number;
  goHost: number;
  // Go decoded it, not to host, and we denied it.
  overDenied: number;
  overDeniedBy: Map<string, number>;
}

const newTally = (): Tally => ({ bodies: 0, goOk: 0, goHost: 0, overDenied: 0, overDeniedBy: new Map() });
const pct = (n: number, of: number): string => `${((100 * n) / Math.max(of, 1)).toFixed(1)}%`;

async function differential(t: TestContext, mode: Mode): Promise<void> {
  if (skipUnless(t, goDecoderSkipReason())) return;
  const seed = seedFromEnv();
  t.diagnostic(`seed ${seed} (rerun with DIFF_SEED=${seed})`);
  const binary = await buildGoDecoder();
  const cases = corpus(makeRng(seed ^ (mode === 'start' ? 0x57a27 : 0)), mode);
  const go = await goDecodeAll(binary, cases.map((c) => c.body), mode);

  const tallies = new Map<string, Tally>();
  const bypasses: Case[] = [];
  const examples: string[] = [];
  // Reader fidelity, reported only: Go's scanner refused the JSON while ours
  // read it, or Go read it and ours refused it (trailing data aside).
  let goSyntaxErrorWeRead = 0;
  let goReadWeDidNot = 0;
  cases.forEach((c, i) => {
    const g = go[i]!;
    const d = decideFor(c);
    const origin = c.origin === 'grammar' ? 'grammar' : 'mutated CLI';
    const tally = tallies.get(origin) ?? newTally();
    tallies.set(origin, tally);
    tally.bodies++;
    if (g.ok) tally.goOk++;
    const ours = parseGoJson(c.body.toString('utf8'));
    const weRead = ours.ok || /after the JSON value/.test(ours.error);
    if (!g.ok && !/cannot unmarshal/.test(g.error ?? '') && weRead) goSyntaxErrorWeRead++;
    if (g.ok && !weRead) goReadWeDidNot++;
    if (isHost(g)) {
      tally.goHost++;
      if (d.allow) bypasses.push(c);
    } else if (g.ok && !d.allow) {
      tally.overDenied++;
      const why = overDenialClass(d);
      tally.overDeniedBy.set(why, (tally.overDeniedBy.get(why) ?? 0) + 1);
      if (examples.length < 3) examples.push(`${c.uri} ${show(c.body).slice(0, 160)} -> ${d.rule}: ${d.reason}`);
    }
  });

  const total = newTally();
  for (const [origin, x] of tallies) {
    const okNotHost = x.goOk - x.goHost;
    t.diagnostic(
      `${mode}/${origin}: ${x.bodies} bodies; Go decoded ${x.goOk} (${pct(x.goOk, x.bodies)}), ${x.goHost} to host; ` +
        `over-denial ${x.overDenied} of ${okNotHost} Go-ok non-host (${pct(x.overDenied, okNotHost)}): ` +
        [...x.overDeniedBy].map(([k, n]) => `${k} ${n}`).join(', '),
    );
    total.bodies += x.bodies;
    total.goOk += x.goOk;
    total.goHost += x.goHost;
  }
  for (const ex of examples) t.diagnostic(`  over-denied e.g. ${ex}`);
  t.diagnostic(`${mode}: reader disagreements: Go syntax error but we read it ${goSyntaxErrorWeRead}, Go read it but we did not ${goReadWeDidNot}`);

  if (bypasses.length > 0) {
    const shown: string[] = [];
    for (const c of bypasses.slice(0, 3)) {
      shown.push(`${c.origin} ${c.uri}: ${show(c.body)}\n    minimal: ${show(await shrink(binary, mode, c))}`);
    }
    assert.fail(`seed ${seed}: ${bypasses.length} ${mode} bodies that Go decodes to UsernsMode=host were allowed:\n  ${shown.join('\n  ')}`);
  }
  // The corpus must exercise the guarantee, not just produce syntax errors.
  const okNotHost = total.goOk - total.goHost;
  assert.ok(total.goHost >= total.bodies * 0.15, `only ${total.goHost} host bodies among ${total.bodies}: generator too weak`);
  assert.ok(okNotHost >= total.bodies * 0.1, `only ${okNotHost} Go-ok non-host bodies: generator too one-sided`);
}

// Why a body Go accepts as not-host was refused: trailing data Go ignores, a
// "host" candidate Go overrides (a later value, an inner HostConfig over the
// top-level field, a later HostConfig null), or a body that is not an object.
function overDenialClass(d: Decision): string {
  if (/after the JSON value/.test(d.reason)) return 'trailing data';
  if (d.rule === 'userns-host') return /top-level/.test(d.reason) ? 'overridden top-level host' : 'overridden HostConfig host';
  return d.rule ?? 'none';
}

test('differential: every create body Go decodes to UsernsMode=host is denied', async (t) => {
  await differential(t, 'create');
});

test('differential: every legacy start body (API < 1.24) Go decodes to UsernsMode=host is denied', async (t) => {
  await differential(t, 'start');
});

test('differential: realistic benign bodies are decoded by Go as not host and allowed', async (t) => {
  if (skipUnless(t, goDecoderSkipReason())) return;
  const binary = await buildGoDecoder();
  const benign = [
    ...CLI_CREATE_BODIES.filter((b) => !b.hostUserns).map((b) => ({ name: b.argv, uri: b.uri, body: b.body })),
    ...BENIGN_LOOKALIKES.map(([name, body]) => ({ name, uri: '/v1.41/containers/create', body })),
  ];
  const go = await goDecodeAll(binary, benign.map((b) => Buffer.from(b.body)));
  benign.forEach((b, i) => {
    assert.equal(go[i]!.ok, true, `${b.name}: Go refused it: ${go[i]!.error}`);
    assert.notEqual(go[i]!.usernsMode, 'host', `${b.name}: Go says host`);
    const d = decideFor({ origin: b.name, uri: b.uri, body: Buffer.from(b.body) });
    assert.equal(d.allow, true, `${b.name}: denied: ${d.reason}`);
  });

  // The CLI's own --userns=host bodies are what the guard exists for.
  const hostile = CLI_CREATE_BODIES.filter((b) => b.hostUserns);
  assert.ok(hostile.length > 0);
  const goHostile = await goDecodeAll(binary, hostile.map((b) => Buffer.from(b.body)));
  hostile.forEach((b, i) => {
    assert.equal(isHost(goHostile[i]!), true, `${b.argv}: Go does not say host`);
    const d = decideFor({ origin: b.argv, uri: b.uri, body: Buffer.from(b.body) });
    assert.equal(d.decision, 'deny', b.argv);
    assert.equal(d.rule, 'userns-host', b.argv);
  });
});

// Every rune in place of every distinct letter of both key names: Go and
// foldKey must agree on which runes stand for which letter. The value names
// the replaced letter, so Go's result shows which key (if any) it matched.
function foldProbe(rune: string, name: 'UsernsMode' | 'HostConfig'): Buffer {
  const seen = new Set<string>();
  const entries: string[] = [];
  [...name].forEach((letter, i) => {
    if (seen.has(letter.toLowerCase())) return;
    seen.add(letter.toLowerCase());
    const key = JSON.stringify(name.slice(0, i) + rune + name.slice(i + 1));
    entries.push(name === 'UsernsMode' ? `${key}:"${letter}${i}"` : `${key}:{"UsernsMode":"${letter}${i}"}`);
  });
  return Buffer.from(name === 'UsernsMode' ? `{"HostConfig":{${entries.join(',')}}}` : `{${entries.join(',')}}`);
}

// What the policy's look-ups make of a probe: the last UsernsMode value under
// the last HostConfig object, as Go ends with for these non-null strings.
function ourUsernsMode(body: Buffer): string {
  const r = parseGoJson(body.toString('utf8'));
  assert.ok(r.ok && isObject(r.value), body.toString('utf8'));
  const hc = objectsUnder(r.value, 'HostConfig').at(-1);
  const v = hc === undefined ? undefined : lastScalar(hc, 'UsernsMode');
  return typeof v === 'string' ? v : '';
}

test('differential: key folding agrees with Go for every BMP rune and a sample of others', async (t) => {
  if (skipUnless(t, goDecoderSkipReason())) return;
  const binary = await buildGoDecoder();
  const runes: string[] = [];
  for (let c = 0x20; c <= 0xffff; c++) {
    if (c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) continue;
    runes.push(String.fromCharCode(c));
  }
  for (let c = 0x10000; c <= 0x10ffff; c += 0x101) runes.push(String.fromCodePoint(c));
  const bodies = runes.flatMap((r) => [foldProbe(r, 'UsernsMode'), foldProbe(r, 'HostConfig')]);
  const go = await goDecodeAll(binary, bodies);
  const disagreements: string[] = [];
  let matched = 0;
  bodies.forEach((body, i) => {
    const g = go[i]!;
    assert.equal(g.ok, true, `${body.toString('utf8')}: ${g.error}`);
    const ours = ourUsernsMode(body);
    if (ours !== '') matched++;
    if (ours !== g.usernsMode && disagreements.length < 10) {
      disagreements.push(`U+${runes[i >> 1]!.codePointAt(0)!.toString(16).padStart(4, '0')}: Go ${JSON.stringify(g.usernsMode)}, ours ${JSON.stringify(ours)}`);
    }
  });
  t.diagnostic(`${runes.length} runes, ${bodies.length} probes; ${matched} matched a field`);
  assert.deepEqual(disagreements, []);
  // Exactly the 8 distinct letters of UsernsMode and the 9 of HostConfig, in
  // both ASCII cases, plus U+017F for the s of each: 2 * (8 + 9) + 2.
  assert.equal(matched, 36, 'probes matching a field');
});
