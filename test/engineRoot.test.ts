// The rules that judge existing things, without a socket: decide() finds
// what a call needs, judgeFacts() judges it on facts shaped like the
// engine's, and the in-flight bookkeeping keeps names from moving.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, DEFAULT_POLICY, judgeFacts, needsAfter, type Decision } from '../src/policy/decide.ts';
import type { ContainerFacts, Facts, Lookup, MountFact, PathFacts, VolumeFacts } from '../src/policy/facts.ts';
import { NO_FACTS } from '../src/policy/facts.ts';
import { createInFlight } from '../src/plugin/inFlight.ts';
import { callOfResponse } from '../src/plugin/pipeline.ts';
import { envelope } from './lib/plugin.ts';

const ID = 'a'.repeat(64);

function container(over: Partial<ContainerFacts> = {}): ContainerFacts {
  return { id: ID, name: 'web', usernsHost: false, restartPolicy: '', mounts: [], createdBindSources: [], ...over };
}

function facts(parts: {
  containers?: Record<string, Lookup<ContainerFacts>>;
  execs?: Record<string, Lookup<ContainerFacts>>;
  volumes?: Record<string, Lookup<VolumeFacts>>;
  paths?: Record<string, PathFacts>;
}): Facts {
  return {
    ...NO_FACTS,
    containers: new Map(Object.entries(parts.containers ?? {})),
    execs: new Map(Object.entries(parts.execs ?? {})),
    volumes: new Map(Object.entries(parts.volumes ?? {})),
    paths: new Map(Object.entries(parts.paths ?? {})),
  };
}

const found = <T>(value: T): Lookup<T> => ({ kind: 'found', value });

function call(method: string, uri: string, body?: unknown, headers?: Record<string, string>): Decision {
  return decide(JSON.stringify(envelope(method, uri, body === undefined ? undefined : JSON.stringify(body), headers)), DEFAULT_POLICY);
}

const bind: MountFact = { type: 'bind', source: '/', destination: '/host', name: '', driver: '' };
const volumeMount = (name: string, driver = 'local'): MountFact => ({ type: 'volume', source: `/var/lib/docker/volumes/${name}/_data`, destination: '/data', name, driver });

test('archive routes need the container, on every method and spelling; other calls need nothing', () => {
  for (const [method, uri] of [
    ['GET', '/v1.41/containers/web/archive?path=/x'],
    ['HEAD', '/containers/web/archive?path=/x'],
    ['PUT', '/containers/web/%61rchive?path=/x'],
    ['POST', '/v1.23/containers/web/copy'],
  ] as const) {
    const d = call(method, uri);
    assert.equal(d.allow, true, `${method} ${uri}`);
    assert.deepEqual(d.needs.containers, ['web'], `${method} ${uri}`);
  }
  for (const [method, uri] of [['GET', '/containers/json'], ['GET', '/containers/web/json'], ['POST', '/containers/web/stop'], ['DELETE', '/containers/web']] as const) {
    assert.deepEqual(call(method, uri).needs, { containers: [], execs: [], volumes: [], paths: [] }, `${method} ${uri}`);
  }
  assert.deepEqual(call('POST', '/exec/abc/start').needs.execs, ['abc']);
});

test('docker cp is refused on host-backed mounts and allowed on plain ones', () => {
  const d = call('GET', '/containers/web/archive?path=/host/etc/shadow');
  const judge = (c: ContainerFacts, volumes: Record<string, Lookup<VolumeFacts>> = {}) =>
    judgeFacts(d, facts({ containers: { web: found(c) }, volumes }), DEFAULT_POLICY);

  const refused = judge(container({ mounts: [bind] }));
  assert.equal(refused.rule, 'archive-host-mount');
  assert.equal(refused.container, ID);
  assert.match(refused.reason, /bind mount of the host path "\/"/);

  const bindVol = found<VolumeFacts>({ name: 'hv', driver: 'local', options: { type: 'none', o: 'bind', device: '/root' } });
  assert.equal(judge(container({ mounts: [volumeMount('hv')] }), { hv: bindVol }).rule, 'archive-host-mount');
  const deviceVol = found<VolumeFacts>({ name: 'dv', driver: 'local', options: { type: 'ext4', device: '/dev/sda1' } });
  assert.equal(judge(container({ mounts: [volumeMount('dv')] }), { dv: deviceVol }).rule, 'archive-host-mount');
  assert.equal(judge(container({ mounts: [volumeMount('x', 'sshfs')] })).rule, 'archive-host-mount');
  assert.equal(judge(container({ mounts: [volumeMount('gone')] }), { gone: { kind: 'absent' } }).rule, 'archive-host-mount');

  const plainVol = found<VolumeFacts>({ name: 'pv', driver: 'local', options: {} });
  const tmpfsVol = found<VolumeFacts>({ name: 'tv', driver: 'local', options: { type: 'tmpfs', device: 'tmpfs', o: 'size=10m' } });
  const tmpfs: MountFact = { type: 'tmpfs', source: '', destination: '/scratch', name: '', driver: '' };
  assert.equal(judge(container({ mounts: [volumeMount('pv'), volumeMount('tv'), tmpfs] }), { pv: plainVol, tv: tmpfsVol }).allow, true);
  assert.equal(judge(container()).allow, true);
});

test('the volumes behind a container come in a second round', () => {
  const d = call('GET', '/containers/web/archive?path=/x');
  const first = facts({ containers: { web: found(container({ mounts: [volumeMount('pv'), bind] })) } });
  assert.deepEqual(needsAfter(d, first).volumes, ['pv']);
});

test('containers in the host user namespace: everything that runs, feeds or starts them is refused', () => {
  const host = found(container({ usernsHost: true, restartPolicy: 'always' }));
  const on = (method: string, uri: string) => judgeFacts(call(method, uri, method === 'POST' && uri.endsWith('/exec') ? { Cmd: ['id'] } : undefined), facts({ containers: { web: host }, execs: { e1: host } }), DEFAULT_POLICY);
  for (const [method, uri] of [
    ['POST', '/containers/web/exec'], ['POST', '/exec/e1/start'], ['POST', '/containers/web/attach?stream=1&stdin=1'],
    ['GET', '/containers/web/attach/ws'], ['POST', '/containers/web/start'], ['POST', '/containers/web/restart'],
    ['POST', '/containers/web/unpause'], ['POST', '/containers/web/update'], ['GET', '/containers/web/archive?path=/'],
    ['POST', '/containers/web/kill?signal=CONT'], ['POST', '/containers/web/kill?signal=SIGHUP'],
  ] as const) {
    const d = on(method, uri);
    assert.equal(d.rule, 'host-userns-container', `${method} ${uri}: ${d.reason}`);
    assert.match(d.reason, /docker rm -f aaaaaaaaaaaa/);
  }
  for (const uri of ['/containers/web/kill', '/containers/web/kill?signal=KILL', '/containers/web/kill?signal=9', '/containers/web/kill?signal=sigkill']) {
    assert.equal(on('POST', uri).allow, true, uri);
  }
});

test('what cannot be looked up refuses, with the reason', () => {
  const d = call('POST', '/containers/web/start');
  const unknown = judgeFacts(d, facts({ containers: { web: { kind: 'unknown', why: 'no engine socket at /run/docker.sock' } } }), DEFAULT_POLICY);
  assert.equal(unknown.rule, 'lookup-failed');
  assert.match(unknown.reason, /no engine socket at \/run\/docker.sock.*--engine-socket/);
  assert.equal(judgeFacts(d, NO_FACTS, DEFAULT_POLICY).rule, 'lookup-failed');
  assert.equal(judgeFacts(d, facts({ containers: { web: { kind: 'absent' } } }), DEFAULT_POLICY).rule, 'no-such-container');
});

test('audit-only and exempt users: facts-based refusals conclude like the others', () => {
  const d = decide(JSON.stringify(envelope('POST', '/containers/web/exec', JSON.stringify({ Cmd: ['id'] }), undefined, 'ops')), DEFAULT_POLICY);
  const host = facts({ containers: { web: found(container({ usernsHost: true })) } });
  const exempt = judgeFacts(d, host, { ...DEFAULT_POLICY, allowUsers: new Set(['ops']) });
  assert.equal(exempt.allow, true);
  assert.equal(exempt.exempt, true);
  const other = judgeFacts(d, host, { ...DEFAULT_POLICY, allowUsers: new Set(['someone-else']) });
  assert.equal(other.allow, false);
  const audit = judgeFacts(d, host, { ...DEFAULT_POLICY, auditOnly: true });
  assert.equal(audit.decision, 'would-deny');
});

test('copyUIDGID and hidden form bodies are refused without a lookup', () => {
  for (const v of ['1', 'true', 'yes', 'TRUE ']) {
    assert.equal(call('PUT', `/containers/web/archive?path=/tmp&copyUIDGID=${encodeURIComponent(v)}`).rule, 'archive-copy-uidgid', v);
  }
  for (const v of ['0', 'false', 'no', 'none', '']) {
    assert.equal(call('PUT', `/containers/web/archive?path=/tmp&copyUIDGID=${v}`).allow, true, v);
  }
  const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
  assert.equal(call('POST', '/containers/web/rename', undefined, form).rule, 'body-not-visible');
  assert.equal(call('POST', '/containers/web/checkpoints?dir=/etc').rule, 'checkpoint-dir');
  assert.equal(call('POST', '/containers/web/checkpoints', { CheckpointID: 'c1', checkpointdir: '/etc/x' }).rule, 'checkpoint-dir');
  assert.equal(call('POST', '/containers/web/checkpoints', { CheckpointID: 'c1' }).allow, true);
  assert.equal(call('POST', '/containers/web/checkpoints', undefined, { 'Content-Type': 'application/json', 'Content-Length': '5000000' }).rule, 'checkpoint-dir', 'a body it cannot see');
  assert.equal(call('POST', '/containers/web/checkpoints', undefined, { 'Content-Length': '0' }).allow, true);
});

test('bind sources the engine would create: judged at create, and at start from the container', () => {
  const create = call('POST', '/v1.41/containers/create', { Image: 'x', HostConfig: { Binds: ['/root/new/sub:/d', '/srv/data:/data:ro', 'named:/v'] } });
  assert.deepEqual(create.needs.paths, ['/root/new/sub', '/srv/data']);
  assert.deepEqual(create.needs.volumes, ['named']);
  const missingUnderRoot: PathFacts = { kind: 'missing', nearest: '/root', missingLevels: 2, nearestWritableByRemappedRoot: false, nearestProtectsSymlinks: false, swappableAncestors: [] };
  const exists: PathFacts = { kind: 'exists', resolved: '/srv/data', isDirectory: true, isEmptyDirectory: false, writableByRemappedRoot: false };
  const refused = judgeFacts(create, facts({ paths: { '/root/new/sub': missingUnderRoot, '/srv/data': exists }, volumes: { named: { kind: 'absent' } } }), DEFAULT_POLICY);
  assert.equal(refused.rule, 'bind-source-creation');
  assert.match(refused.reason, /mkdir -p \/root\/new\/sub/);

  const inTmp: PathFacts = { kind: 'missing', nearest: '/tmp', missingLevels: 2, nearestWritableByRemappedRoot: true, nearestProtectsSymlinks: true, swappableAncestors: [] };
  const ok = call('POST', '/containers/create', { Image: 'x', HostConfig: { Binds: ['/tmp/a/b:/d'] } });
  assert.equal(judgeFacts(ok, facts({ paths: { '/tmp/a/b': inTmp } }), DEFAULT_POLICY).allow, true);
  const owned: PathFacts = { ...inTmp, nearest: '/srv/share', nearestProtectsSymlinks: false };
  assert.equal(judgeFacts(ok, facts({ paths: { '/tmp/a/b': owned } }), DEFAULT_POLICY).rule, 'bind-source-creation', 'two levels where a symlink could be planted');
  assert.equal(judgeFacts(ok, facts({ paths: { '/tmp/a/b': { ...owned, missingLevels: 1 } } }), DEFAULT_POLICY).allow, true);
  assert.equal(judgeFacts(ok, facts({ paths: { '/tmp/a/b': { ...inTmp, swappableAncestors: ['/home/alice (uid 1000, mode 755)'] } } }), DEFAULT_POLICY).rule, 'bind-source-creation');
  assert.equal(judgeFacts(ok, facts({ paths: { '/tmp/a/b': { kind: 'unexaminable', why: 'permission denied' } } }), DEFAULT_POLICY).rule, 'bind-source-creation');

  // CreateMountpoint binds are created; plain Mounts binds are not.
  const mounts = call('POST', '/containers/create', {
    Image: 'x',
    HostConfig: { Mounts: [{ Type: 'bind', Source: '/a', Target: '/a', BindOptions: { CreateMountpoint: true } }, { Type: 'bind', Source: '/b', Target: '/b' }] },
  });
  assert.deepEqual(mounts.needs.paths, ['/a']);

  const start = call('POST', '/containers/web/start');
  const c = container({ createdBindSources: ['/root/gone'] });
  const first = facts({ containers: { web: found(c) } });
  assert.deepEqual(needsAfter(start, first).paths, ['/root/gone']);
  const atStart = judgeFacts(start, facts({ containers: { web: found(c) }, paths: { '/root/gone': { ...missingUnderRoot, missingLevels: 1 } } }), DEFAULT_POLICY);
  assert.equal(atStart.rule, 'bind-source-creation');
  assert.equal(atStart.container, ID);

  // A legacy start body is a new HostConfig: its binds are judged too.
  const legacy = call('POST', '/v1.23/containers/web/start', { Binds: ['/root/legacy:/d'] });
  assert.deepEqual(legacy.needs.paths, ['/root/legacy']);
  const legacyJudged = judgeFacts(legacy, facts({ containers: { web: found(container()) }, paths: { '/root/legacy': { ...missingUnderRoot, missingLevels: 1 } } }), DEFAULT_POLICY);
  assert.equal(legacyJudged.rule, 'bind-source-creation');
  assert.deepEqual(call('POST', '/v1.24/containers/web/start', { Binds: ['/root/legacy:/d'] }).needs.paths, []);
});

test('copy-up into a host directory: refused where the remapped root could not write, unless nocopy', () => {
  const inline = { Image: 'x', HostConfig: { Mounts: [{ Type: 'volume', Target: '/bin', VolumeOptions: { DriverConfig: { Name: 'local', Options: { type: 'none', o: 'bind', device: '/usr/local/bin' } } } }] } };
  const d = call('POST', '/containers/create', inline);
  assert.deepEqual(d.needs.paths, ['/usr/local/bin']);
  const rootOwnedEmpty: PathFacts = { kind: 'exists', resolved: '/usr/local/bin', isDirectory: true, isEmptyDirectory: true, writableByRemappedRoot: false };
  const refused = judgeFacts(d, facts({ paths: { '/usr/local/bin': rootOwnedEmpty } }), DEFAULT_POLICY);
  assert.equal(refused.rule, 'volume-copy-up');
  assert.match(refused.reason, /nocopy/);
  assert.equal(judgeFacts(d, facts({ paths: { '/usr/local/bin': { ...rootOwnedEmpty, writableByRemappedRoot: true } } }), DEFAULT_POLICY).allow, true);
  assert.equal(judgeFacts(d, facts({ paths: { '/usr/local/bin': { ...rootOwnedEmpty, isEmptyDirectory: false } } }), DEFAULT_POLICY).allow, true, 'no copy into a non-empty directory');
  const nocopy = structuredClone(inline);
  (nocopy.HostConfig.Mounts[0]!.VolumeOptions as Record<string, unknown>).NoCopy = true;
  assert.deepEqual(call('POST', '/containers/create', nocopy).needs.paths, []);

  const named = call('POST', '/containers/create', { Image: 'x', HostConfig: { Binds: ['hv:/bin'] } });
  const vol = found<VolumeFacts>({ name: 'hv', driver: 'local', options: { type: 'none', o: 'bind', device: '/usr/local/bin' } });
  assert.deepEqual(needsAfter(named, facts({ volumes: { hv: vol } })).paths, ['/usr/local/bin']);
  assert.equal(judgeFacts(named, facts({ volumes: { hv: vol }, paths: { '/usr/local/bin': rootOwnedEmpty } }), DEFAULT_POLICY).rule, 'volume-copy-up');
  assert.deepEqual(call('POST', '/containers/create', { Image: 'x', HostConfig: { Binds: ['hv:/bin:nocopy'] } }).needs.volumes, []);

  const service = call('POST', '/services/create', { TaskTemplate: { ContainerSpec: { Image: 'x', Mounts: inline.HostConfig.Mounts } } });
  assert.equal(service.rule, 'service-host-path');
});

test('in flight: a name cannot be claimed while a call on it is judged or running', () => {
  const f = createInFlight();
  const since = f.mark();
  assert.equal(f.claimConflict('container', ['web']), null);
  assert.ok(f.holdJudged('container', 'GET /containers/web/archive?path=/', ['web'], since));
  assert.match(f.claimConflict('container', ['web'])!, /still in flight/);
  assert.equal(f.claimConflict('container', ['other']), null);
  f.release('GET /containers/web/archive?path=/');
  assert.equal(f.claimConflict('container', ['web']), null);

  // A claim allowed while a judgement was being made voids it.
  assert.ok(f.holdClaim('container', 'POST /containers/x/rename?name=web', ['web'], since));
  assert.match(f.judgedConflict('container', ['web'], since)!, /given to another container|making "web" refer/);
  f.release('POST /containers/x/rename?name=web');
  assert.match(f.judgedConflict('container', ['web'], since)!, /given to another container/);
  assert.equal(f.judgedConflict('container', ['web'], f.mark()), null);
  assert.equal(f.judgedConflict('volume', ['web'], since), null);

  // A claim in flight when a judgement began voids it even once it is over:
  // it took effect somewhere before its AuthZRes.
  assert.ok(f.holdClaim('container', 'POST /containers/create?name=db', ['db'], f.mark()));
  const during = f.mark();
  f.release('POST /containers/create?name=db');
  assert.match(f.judgedConflict('container', ['db'], during)!, /given to another container/);
  assert.equal(f.judgedConflict('container', ['db'], f.mark()), null);

  // An AuthZRes that overtook its call's answer: the call has run, no hold.
  const early = f.mark();
  f.release('POST /containers/web/start');
  assert.ok(f.holdJudged('container', 'POST /containers/web/start', ['web'], early));
  assert.equal(f.claimConflict('container', ['web']), null);
  assert.equal(f.size(), 0);

  // Holds expire: a name is never locked for long by an AuthZRes that never comes.
  let clock = 0;
  const g = createInFlight(() => clock);
  assert.ok(g.holdJudged('container', 'k', ['n'], g.mark()));
  assert.notEqual(g.claimConflict('container', ['n']), null);
  clock += 31_000;
  assert.equal(g.claimConflict('container', ['n']), null);
});

test('the AuthZRes names its call in its first fields', () => {
  assert.equal(
    callOfResponse('{"User":"a\\"b","UserAuthNMethod":"","RequestMethod":"GET","RequestUri":"/containers/x/archive?path=%2F","RequestBody":null'),
    'GET /containers/x/archive?path=%2F',
  );
  assert.equal(callOfResponse('{"User":null,"RequestMethod":"POST","RequestUri":"/x"'), 'POST /x');
  assert.equal(callOfResponse('{"RequestMethod":"POST"'), null);
  assert.equal(callOfResponse('not json'), null);
});
