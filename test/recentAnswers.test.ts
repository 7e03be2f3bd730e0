// Containers and volumes looked up recently, through the pipeline: which
// calls share a lookup, and which calls void it. The engine here is a table of answers
// that counts what it was asked; the in-flight bookkeeping is the plugin's own.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EngineApi } from '../src/engine/engineApi.ts';
import { CONTAINER_REFS, createKnownFacts, createRecentAnswers, isKeptContainerRef, type KnownFacts } from '../src/facts/recentAnswers.ts';
import { createInFlight } from '../src/plugin/inFlight.ts';
import { decideNow, inFlightKey, type Pipeline } from '../src/plugin/pipeline.ts';
import { DEFAULT_POLICY, type Decision } from '../src/policy/decide.ts';
import type { ContainerFacts, Lookup, VolumeFacts } from '../src/policy/facts.ts';
import { envelope } from './lib/plugin.ts';

const WEB = 'a'.repeat(64);
const HOSTLY = 'b'.repeat(64);

function facts(id: string, name: string, usernsHost = false): ContainerFacts {
  return { id, name, usernsHost, restartPolicy: '', mounts: [], createdBindSources: [] };
}

// An engine whose containers the test moves around, as the engine would.
function world(known: KnownFacts = createKnownFacts()) {
  const byRef = new Map<string, ContainerFacts>();
  const volumes = new Map<string, VolumeFacts>();
  const asked: string[] = [];
  const engine: EngineApi = {
    async container(ref) {
      asked.push(ref);
      const c = byRef.get(ref);
      return c === undefined ? { kind: 'absent' } : { kind: 'found', value: c };
    },
    async execContainerId(id): Promise<Lookup<string>> {
      return id === 'exec1' ? { kind: 'found', value: WEB } : { kind: 'absent' };
    },
    async volume(name) {
      asked.push(`volume ${name}`);
      const v = volumes.get(name);
      return v === undefined ? { kind: 'absent' } : { kind: 'found', value: v };
    },
    async remappedRoot() {
      return { kind: 'found', value: { uid: 100000, gid: 100000 } };
    },
  };
  const pipeline: Pipeline = { policy: DEFAULT_POLICY, sources: { engine, deadlineMs: 2_000, known }, inFlight: createInFlight() };
  const put = (c: ContainerFacts, ...refs: string[]) => {
    for (const r of [c.id, c.name, ...refs]) byRef.set(r, c);
  };
  const remove = (c: ContainerFacts) => {
    for (const [r, v] of byRef) if (v === c) byRef.delete(r);
  };
  const ask = async (method: string, uri: string, body?: object): Promise<Decision> =>
    decideNow(JSON.stringify(envelope(method, uri, body === undefined ? null : JSON.stringify(body))), pipeline);
  // A call the plugin allowed has run: its AuthZRes.
  const ran = (method: string, uri: string) => pipeline.inFlight.release(inFlightKey(method, uri));
  const call = async (method: string, uri: string, body?: object): Promise<Decision> => {
    const d = await ask(method, uri, body);
    if (d.allow) ran(method, uri);
    return d;
  };
  return { asked, put, remove, ask, ran, call, known, volumes };
}

test('the calls of one docker command share a lookup, by name, full id or exec', async () => {
  const w = world();
  w.put(facts(WEB, 'web'));
  assert.equal((await w.call('POST', '/v1.41/containers/web/exec', { Cmd: ['true'] })).allow, true);
  assert.equal((await w.call('POST', '/v1.41/exec/exec1/start')).allow, true);
  assert.equal((await w.call('HEAD', '/v1.41/containers/web/archive?path=/x')).allow, true);
  assert.equal((await w.call('POST', `/v1.41/containers/${WEB}/attach?stream=1`)).allow, true);
  assert.deepEqual(w.asked, ['web'], 'one lookup, then the name, the id and the exec recall it');
});

test('a container in the host user namespace is refused from what is known, too', async () => {
  const w = world();
  w.put(facts(HOSTLY, 'hu', true));
  for (let i = 0; i < 2; i++) assert.equal((await w.call('POST', '/containers/hu/exec', { Cmd: ['id'] })).rule, 'host-userns-container');
  assert.deepEqual(w.asked, ['hu']);
});

test('a name given to another container voids what was known of it', async () => {
  const w = world();
  const web = facts(WEB, 'web');
  const hostly = facts(HOSTLY, 'other', true);
  w.put(web);
  w.put(hostly);
  assert.equal((await w.call('POST', '/containers/web/exec', { Cmd: ['true'] })).allow, true);

  // web goes without a call the plugin sees (--rm), and a rename gives its name away.
  w.remove(web);
  assert.equal((await w.call('POST', '/containers/other/rename?name=web')).allow, true);
  w.remove(hostly);
  w.put(facts(HOSTLY, 'web', true));
  assert.equal((await w.call('POST', '/containers/web/exec', { Cmd: ['id'] })).rule, 'host-userns-container');
  assert.deepEqual(w.asked, ['web', 'web']);

  // The same through a create of that name, and of the full id as a name.
  const w2 = world();
  w2.put(web);
  assert.equal((await w2.call('POST', `/containers/${WEB}/exec`, { Cmd: ['true'] })).allow, true);
  w2.remove(web);
  assert.equal((await w2.call('POST', `/containers/create?name=${WEB}`, { Image: 'x' })).allow, true);
  w2.put(facts(HOSTLY, WEB, true), WEB);
  assert.equal((await w2.call('POST', `/containers/${WEB}/exec`, { Cmd: ['id'] })).rule, 'host-userns-container');
  assert.deepEqual(w2.asked, [WEB, WEB]);
});

test('a claim in flight when a container was learnt voids it once the claim is over', async () => {
  // Learnt by its id while a rename to its name is in flight: the rename
  // succeeds once the engine has removed web by itself (--rm).
  const w = world();
  const web = facts(WEB, 'web');
  w.put(web);
  w.put(facts(HOSTLY, 'x', true));
  assert.equal((await w.ask('POST', '/containers/x/rename?name=web')).allow, true);
  assert.equal((await w.call('POST', `/containers/${WEB}/exec`, { Cmd: ['true'] })).allow, true);
  w.remove(web);
  w.ran('POST', '/containers/x/rename?name=web');
  w.put(facts(HOSTLY, 'web', true));
  assert.equal((await w.call('POST', '/containers/web/exec', { Cmd: ['id'] })).rule, 'host-userns-container');
  assert.deepEqual(w.asked, [WEB, 'web']);

  // A judgement begun while a claim of its own name is in flight learns
  // nothing that outlives the claim.
  const w2 = world();
  w2.put(web);
  assert.equal((await w2.ask('POST', '/containers/x/rename?name=web')).allow, true);
  const during = await w2.call('POST', '/containers/web/exec', { Cmd: ['true'] });
  assert.equal(during.rule, 'name-in-flux');
  w2.ran('POST', '/containers/x/rename?name=web');
  w2.remove(web);
  w2.put(facts(HOSTLY, 'web', true));
  assert.equal((await w2.call('POST', '/containers/web/exec', { Cmd: ['id'] })).rule, 'host-userns-container');
  assert.deepEqual(w2.asked, ['web', 'web']);
});

test('a create without a name, or a classic build, voids known names but not full ids', async () => {
  for (const [method, uri, body] of [
    ['POST', '/containers/create', { Image: 'x' }],
    ['POST', '/containers/create?name=', { Image: 'x' }],
    ['POST', '/containers/create?name=&name=other', { Image: 'x' }],
    ['POST', '/build?t=x', undefined],
  ] as const) {
    const w = world();
    const web = facts(WEB, 'focused_turing');
    w.put(web);
    assert.equal((await w.call('POST', '/containers/focused_turing/exec', { Cmd: ['true'] })).allow, true);
    assert.equal((await w.call(method, uri, body)).allow, true, uri);
    assert.equal((await w.call('POST', '/containers/focused_turing/exec', { Cmd: ['true'] })).allow, true);
    assert.equal((await w.call('POST', `/containers/${WEB}/exec`, { Cmd: ['true'] })).allow, true);
    assert.deepEqual(w.asked, ['focused_turing', 'focused_turing'], uri);
  }
  // A named create voids that name only.
  const w = world();
  w.put(facts(WEB, 'web'));
  assert.equal((await w.call('POST', '/containers/web/exec', { Cmd: ['true'] })).allow, true);
  assert.equal((await w.call('POST', '/containers/create?name=db', { Image: 'x' })).allow, true);
  assert.equal((await w.call('POST', '/containers/web/exec', { Cmd: ['true'] })).allow, true);
  assert.deepEqual(w.asked, ['web']);
});

test('references an id prefix or a link could match are looked up every time', async () => {
  const w = world();
  const c = facts(WEB, 'aaaa');
  w.put(c, 'aaaaaaaa', 'app/db', '/app/db');
  for (const ref of ['aaaaaaaa', 'aaaa', 'app/db']) {
    for (let i = 0; i < 2; i++) assert.equal((await w.call('POST', `/containers/${encodeURIComponent(ref)}/exec`, { Cmd: ['true'] })).allow, true, ref);
  }
  assert.deepEqual(w.asked, ['aaaaaaaa', 'aaaaaaaa', 'aaaa', 'aaaa', 'app/db', 'app/db']);
  for (const kept of [WEB, 'web', '/web', 'Web', 'abc-1', 'focused_turing', 'ABCDEF']) assert.ok(isKeptContainerRef(kept), kept);
  for (const not of ['', 'abc', '/abc', WEB.slice(0, 12), `${WEB}0`, 'app/db', '//web', '-x', 'x', '(generated)']) assert.ok(!isKeptContainerRef(not), not);
});

test('a volume answer is shared too, and a create of that volume voids it', async () => {
  const w = world();
  const withVolume: ContainerFacts = {
    ...facts(WEB, 'web'),
    mounts: [{ type: 'volume', source: '/var/lib/docker/volumes/data/_data', destination: '/data', name: 'data', driver: 'local' }],
  };
  w.put(withVolume);
  w.volumes.set('data', { name: 'data', driver: 'local', options: {} });
  for (let i = 0; i < 2; i++) assert.equal((await w.call('HEAD', '/containers/web/archive?path=/data')).allow, true);
  assert.equal((await w.call('GET', '/containers/web/archive?path=/data')).allow, true);
  assert.deepEqual(w.asked, ['web', 'volume data']);

  // Removed and made anew with a bind of the host: the create claims the name.
  for (const [uri, body] of [
    ['/volumes/create', { Name: 'data', DriverOpts: { type: 'none', o: 'bind', device: '/' } }],
    ['/containers/create?name=other', { Image: 'x', HostConfig: { Mounts: [{ Type: 'volume', Source: 'data', Target: '/d', VolumeOptions: { DriverConfig: { Name: 'local', Options: { type: 'none', o: 'bind', device: '/' } } } }] } }],
  ] as const) {
    assert.equal((await w.call('GET', '/containers/web/archive?path=/data')).allow, true);
    w.asked.length = 0;
    assert.equal((await w.call('POST', uri, body)).allow, true, uri);
    w.volumes.set('data', { name: 'data', driver: 'local', options: { type: 'none', o: 'bind', device: '/' } });
    assert.equal((await w.call('GET', '/containers/web/archive?path=/data')).rule, 'archive-host-mount', uri);
    assert.deepEqual(w.asked, ['volume data'], uri);
    w.volumes.set('data', { name: 'data', driver: 'local', options: {} });
    assert.equal((await w.call('POST', '/volumes/create', { Name: 'data' })).allow, true);
  }
});

test('what is known lasts a few seconds, under a bounded number of references', () => {
  const k = createRecentAnswers<ContainerFacts>(1_000, 4);
  const web = facts(WEB, 'web');
  k.learn(CONTAINER_REFS.vouchedFor('web', web), web, 1, 0);
  assert.equal(k.size(), 2, 'under its name and its id');
  assert.equal(k.recall('web', 999)?.facts.id, WEB);
  assert.equal(k.recall(WEB, 999)?.mark, 1);
  assert.equal(k.recall('web', 1_000), undefined);
  assert.equal(k.size(), 1);
  for (let i = 0; i < 10; i++) {
    const c = facts(String(i).repeat(64), `c${i}x`);
    k.learn(CONTAINER_REFS.vouchedFor(c.name, c), c, 2, 0);
  }
  assert.equal(k.size(), 4);
  assert.equal(k.recall('c0x', 0), undefined, 'the oldest go first');
  assert.ok(k.recall('c9x', 0));
  assert.deepEqual(CONTAINER_REFS.vouchedFor('abc', facts(WEB, 'abcd')), [WEB], 'only references that may be kept');
});
