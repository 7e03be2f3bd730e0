// The calls the benchmark sends: the committed recording of real engine
// traffic, a few hostile creates that userns-guard must refuse, and two
// synthetic large calls the recording lacks. Large ones are made here at run
// time so the repository holds no megabytes of filler.

import { decide, DEFAULT_POLICY } from '../src/policy/decide.ts';
import { MAX_VALUES } from '../src/engine/goJson.ts';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RecordedCall } from './record-plugin.ts';

export const RECORDING = path.join(path.dirname(fileURLToPath(import.meta.url)), 'recording.jsonl');

// The engine forwards a request body to plugins only below 1 MiB (20.10).
const ENGINE_FORWARD_LIMIT = 1 << 20;

// 'judged': recorded calls on existing containers, which userns-guard looks
// up on the engine before it answers (start, exec, attach, docker cp, ...).
export const CALL_KINDS = ['recorded', 'judged', 'denied', 'large-create', 'large-response'] as const;
export type CallKind = (typeof CALL_KINDS)[number];

// One fresh value per kind of call: the tallies of the replay, the rounds and
// the report all keep every kind.
export function perKind<T>(make: () => T): Record<CallKind, T> {
  return Object.fromEntries(CALL_KINDS.map((k) => [k, make()])) as Record<CallKind, T>;
}

export interface BenchCall {
  readonly kind: CallKind;
  readonly label: string;
  readonly path: string;
  readonly body: Buffer;
  // What userns-guard must answer. The null plugin allows everything, so
  // expected refusals are not checked against it.
  readonly expectAllow: boolean;
}

interface Envelope {
  RequestMethod: string;
  RequestUri: string;
  RequestBody?: string | null;
  RequestHeaders?: Record<string, string> | null;
  ResponseBody?: string | null;
  ResponseStatusCode?: number;
  ResponseHeaders?: Record<string, string> | null;
  [other: string]: unknown;
}

export function loadRecording(file = RECORDING): RecordedCall[] {
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const calls = lines.map((l) => JSON.parse(l) as RecordedCall);
  if (calls.length === 0) throw new Error(`${file} holds no calls; re-make it with bench/make-recording.ts`);
  return calls;
}

export function buildTraffic(recorded: readonly RecordedCall[] = loadRecording()): BenchCall[] {
  const withBinds = containersWithBinds(recorded);
  const calls: BenchCall[] = recorded.map((c) => {
    const env = JSON.parse(c.body) as Envelope;
    return {
      kind: c.path === '/AuthZPlugin.AuthZReq' && needsLookups(c.body) ? 'judged' : 'recorded',
      label: `${c.path.slice('/AuthZPlugin.'.length)} ${env.RequestMethod} ${env.RequestUri}`,
      path: c.path,
      body: Buffer.from(c.body),
      // docker cp out of a container with a bind mount is refused
      // (archive-host-mount); everything else the CLI did is allowed.
      expectAllow: !(c.path === '/AuthZPlugin.AuthZReq' && copiesThroughBind(env, withBinds)),
    };
  });
  const create = recordedCreate(recorded);
  calls.push(...deniedCreates(create), largeCreate(create), largeResponse(recorded));
  return calls;
}

// What the policy itself says a call needs looked up (an existing container
// or exec, a bind source, a volume).
function needsLookups(envelope: string): boolean {
  const d = decide(envelope, DEFAULT_POLICY);
  return d.needs.containers.length + d.needs.execs.length + d.needs.volumes.length + d.needs.paths.length > 0;
}

// Names of the recorded containers whose inspect answer lists a bind mount.
function containersWithBinds(recorded: readonly RecordedCall[]): Set<string> {
  const names = new Set<string>();
  for (const c of recorded) {
    if (c.path !== '/AuthZPlugin.AuthZRes') continue;
    const env = JSON.parse(c.body) as Envelope;
    const m = /\/containers\/([^/?]+)\/json/.exec(env.RequestUri);
    if (m === null || !env.ResponseBody) continue;
    const inspect = JSON.parse(Buffer.from(env.ResponseBody, 'base64').toString('utf8')) as { Mounts?: { Type?: string }[] };
    if (inspect.Mounts?.some((mount) => mount.Type === 'bind')) names.add(m[1]!);
  }
  return names;
}

function copiesThroughBind(env: Envelope, withBinds: ReadonlySet<string>): boolean {
  const m = /\/containers\/([^/?]+)\/archive/.exec(env.RequestUri);
  return m !== null && withBinds.has(m[1]!);
}

// A recorded container create to derive the synthetic calls from, so they
// carry exactly the fields and headers the engine sends.
function recordedCreate(recorded: readonly RecordedCall[]): Envelope {
  for (const c of recorded) {
    if (c.path !== '/AuthZPlugin.AuthZReq') continue;
    const env = JSON.parse(c.body) as Envelope;
    if (env.RequestMethod === 'POST' && /\/containers\/create(\?|$)/.test(env.RequestUri) && env.RequestBody) return env;
  }
  throw new Error('the recording holds no container create with a body');
}

function withBody(env: Envelope, uri: string, body: string): Envelope {
  return { ...env, RequestUri: uri, RequestBody: Buffer.from(body).toString('base64') };
}

function reqCall(kind: CallKind, label: string, env: Envelope, expectAllow: boolean): BenchCall {
  return { kind, label, path: '/AuthZPlugin.AuthZReq', body: Buffer.from(`${JSON.stringify(env)}\n`), expectAllow };
}

// Hostile variants of a real create body: `docker run --userns=host`, and the
// spellings Go's decoder accepts that a naive JSON reader would miss.
function deniedCreates(create: Envelope): BenchCall[] {
  const text = Buffer.from(create.RequestBody!, 'base64').toString('utf8');
  const body = JSON.parse(text) as Record<string, unknown> & { HostConfig: Record<string, unknown> };
  const uri = '/v1.41/containers/create?name=bench-denied';
  const plain = JSON.stringify({ ...body, HostConfig: { ...body.HostConfig, UsernsMode: 'host' } });
  // Go keeps the last of duplicate keys; a JSON.parse-based check might see the first.
  const duplicate = plain.replace('"UsernsMode":"host"', '"UsernsMode":"","UsernsMode":"host"');
  // Go matches field names case-insensitively, with Unicode folding (U+017F is s).
  const folded = plain.replace('"HostConfig":', '"hostconfig":').replace('"UsernsMode":"host"', '"Uſernſmode":"host"');
  const { HostConfig: _dropped, ...noHostConfig } = body;
  const topLevel = JSON.stringify({ ...noHostConfig, UsernsMode: 'host' });
  return [
    reqCall('denied', 'create --userns=host', withBody(create, uri, plain), false),
    reqCall('denied', 'create, duplicate UsernsMode key', withBody(create, uri, duplicate), false),
    reqCall('denied', 'create, case-folded keys', withBody(create, uri, folded), false),
    reqCall('denied', 'create, top-level UsernsMode', withBody(create, uri, topLevel), false),
  ];
}

// A create whose body is just under what the engine still forwards: the
// largest body userns-guard ever has to decode and parse.
function largeCreate(create: Envelope): BenchCall {
  const body = JSON.parse(Buffer.from(create.RequestBody!, 'base64').toString('utf8')) as { Env: string[] | null };
  const env: string[] = [...(body.Env ?? [])];
  const target = ENGINE_FORWARD_LIMIT - 256;
  let size = JSON.stringify({ ...body, Env: env }).length;
  for (let i = 0; size < target; i++) {
    const entry = `BENCH_VAR_${String(i).padStart(6, '0')}=${'v'.repeat(80)}`;
    if (size + entry.length + 3 > target) break;
    env.push(entry);
    size += entry.length + 3;
  }
  const text = JSON.stringify({ ...body, Env: env });
  if (Buffer.byteLength(text) >= ENGINE_FORWARD_LIMIT) throw new Error('large create body over the forwarding limit');
  return reqCall('large-create', `create with a ${(text.length / 1024).toFixed(0)} KiB body`, withBody(create, '/v1.41/containers/create?name=bench-large', text), true);
}

// Creates made to cost the reader the most memory per byte: nothing but empty
// arrays, as many as goJson.ts still reads (allowed: the plugin does not check
// Go's types), and a 4 MiB body of them (which engines from 25.0 forward),
// refused once it passes MAX_VALUES. For the memory cgroup run.
export function heavyCreates(recorded: readonly RecordedCall[] = loadRecording()): BenchCall[] {
  const create = recordedCreate(recorded);
  // Under a field the reader keeps: Env, Cmd, Entrypoint and Labels are
  // checked without being built (goJson.ts, UNREAD_FIELDS).
  const arrays = (n: number) => `{"Image":"busybox","Volumes":[${Array(n).fill('[]').join(',')}]}`;
  const most = arrays(MAX_VALUES - 3);
  const over = arrays(Math.floor((4 << 20) / 3) - 20);
  return [
    reqCall('large-create', `create of ${MAX_VALUES - 3} empty arrays (${(most.length / 2 ** 20).toFixed(1)} MiB)`, withBody(create, '/v1.44/containers/create?name=bench-heavy', most), true),
    reqCall('denied', `create of 4 MiB of empty arrays`, withBody(create, '/v1.44/containers/create?name=bench-heavy', over), false),
  ];
}

// An AuthZRes carrying a 1 MiB response body, as for `docker inspect` of
// many containers: built from a recorded container list response.
function largeResponse(recorded: readonly RecordedCall[]): BenchCall {
  let base: Envelope | undefined;
  let items: unknown[] = [];
  for (const c of recorded) {
    if (c.path !== '/AuthZPlugin.AuthZRes') continue;
    const env = JSON.parse(c.body) as Envelope;
    if (!/\/containers\/json/.test(env.RequestUri) || !env.ResponseBody) continue;
    const list = JSON.parse(Buffer.from(env.ResponseBody, 'base64').toString('utf8')) as unknown;
    if (Array.isArray(list) && list.length > items.length) {
      base = env;
      items = list;
    }
  }
  if (base === undefined || items.length === 0) throw new Error('the recording holds no non-empty container list response');
  const big: unknown[] = [];
  let size = 2;
  for (let i = 0; size < 1 << 20; i++) {
    const item = items[i % items.length];
    big.push(item);
    size += JSON.stringify(item).length + 1;
  }
  const text = JSON.stringify(big);
  const env: Envelope = {
    ...base,
    ResponseBody: Buffer.from(text).toString('base64'),
    ResponseHeaders: { ...base.ResponseHeaders, 'Content-Length': String(Buffer.byteLength(text)) },
  };
  return {
    kind: 'large-response',
    label: `AuthZRes with a ${(text.length / 1024).toFixed(0)} KiB response body`,
    path: '/AuthZPlugin.AuthZRes',
    body: Buffer.from(`${JSON.stringify(env)}\n`),
    expectAllow: true,
  };
}

export type Workload = 'typical' | 'large';

// typical: the recording and the hostile creates; large: the two synthetic
// calls. run.ts measures them apart (see there why).
export function workloadCalls(name: string, all: readonly BenchCall[] = buildTraffic()): BenchCall[] {
  switch (name) {
    case 'typical':
      return all.filter((c) => c.kind === 'recorded' || c.kind === 'judged' || c.kind === 'denied');
    case 'large':
      return all.filter((c) => c.kind === 'large-create' || c.kind === 'large-response');
    case 'all':
      return [...all];
    default:
      throw new Error(`unknown workload ${JSON.stringify(name)} (typical, large, all)`);
  }
}
