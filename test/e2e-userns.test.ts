// End-to-end proof of issue 3: the attack catalogue (test/lib/attacks.ts) sent
// as raw HTTP on a real engine's socket, judged only by what the engine did.
//
// First on an engine WITHOUT userns-guard, where every attack must really put
// a container in the host user namespace or run a managed plugin as host root
// (so the catalogue is real and the guarded run can fail). Then on an engine
// with the built binary as its authorization plugin, where none may, while
// ordinary Docker work keeps passing and the plugin survives it all.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { DEFAULT_POLICY, decide } from '../src/policy/decide.ts';
import {
  ATTACKS, engineEnvelope, rawParts, rawRequest, resolveAttack, type Attack, type ResolvedAttack, type RunValues,
} from './lib/attacks.ts';
import { buildsForTests, engineSkipReason, engineTitle, startEngine, type Engine, type HttpResult } from './lib/engine.ts';
import {
  buildRootfs, HOST_ROOT_UID_MAP, pluginCreateTar, pluginPrivileges, readEvidence, startListener, startPluginRegistry,
  type PluginRegistry, type PluginSpec,
} from './lib/managedPlugin.ts';
import { BINARY, makeTempDir, startPlugin, type PluginProcess } from './lib/plugin.ts';
import { skipUnless } from './lib/prereq.ts';
import { bareOutcome } from './lib/engineBehaviour.ts';
import { compareVersions } from './lib/engine.ts';

const REMAPPED_UID_MAP = '0 100000 65536';
const JSON_TYPE = { 'Content-Type': 'application/json' };
const PREINSTALLED = 'preinstalled:latest';

// Everything one engine run needs to fill the catalogue's placeholders.
interface Run {
  readonly engine: Engine;
  // Prefix in the registry, so each run pulls images naming its own dirs.
  readonly registryPrefix: string;
  // The plugin the upgrade entry acts on. The image it upgrades to has the
  // same mount (so the same privileges) and a different evidence file.
  readonly upgradeBase: PluginSpec;
  // Per attack: the spec of the image it pulls from the registry.
  readonly remoteSpecs: Map<string, PluginSpec>;
  // Per attack: the plugin spec its create tar or set target uses.
  readonly specs: Map<string, PluginSpec>;
  // Guarded run: the state of the plugin installed before the guard, and
  // the rule that refused each entry (reported as a diagnostic).
  readonly preinstalled?: unknown;
  readonly refusedBy?: Map<string, string>;
}

interface World {
  readonly work: string;
  readonly rootfs: string;
  readonly registry: PluginRegistry;
  readonly dirs: string[];
  newSpec(mark?: string): PluginSpec;
}

// No engine needed: the catalogue's own expectations against the policy, on
// the envelopes engines with and without the CVE-2024-41110 fix would send.
// Keeps the catalogue honest for the benchmark and other reusers.
test('attack catalogue: distinct entries, and the policy answers each as the entry says', () => {
  assert.ok(ATTACKS.length > 34, `only ${ATTACKS.length} attacks`);
  assert.equal(new Set(ATTACKS.map((a) => a.name)).size, ATTACKS.length, 'attack names repeat');
  const values: RunValues = {
    image: 'ugbox:latest', container: 'victim', plugin: 'installed:latest', registry: '127.0.0.1:5000/x',
    privileges: '[]', outDir: '/tmp/elsewhere', pluginTar: Buffer.from('not really a tar'),
  };
  for (const cveFixed of [false, true]) {
    for (const a of ATTACKS) {
      const d = decide(JSON.stringify(engineEnvelope(resolveAttack(a, values), { cveFixed })), DEFAULT_POLICY);
      const label = `${a.name} (cveFixed=${cveFixed}): ${d.decision} ${d.rule ?? ''} ${d.reason}`;
      if (a.guard.allow) assert.equal(d.allow, true, label);
      else {
        assert.equal(d.allow, false, label);
        assert.ok(d.rule !== null && (a.guard.rules as readonly string[]).includes(d.rule), label);
      }
    }
  }
});

for (const build of buildsForTests()) {
  test(`issue 3 end to end ${engineTitle(build)}: the attack catalogue against a real engine, without and with userns-guard`, { timeout: 240_000 }, async (t) => {
    if (skipUnless(t, engineSkipReason(build))) return;
    if (skipUnless(t, existsSync(BINARY) ? null : `${BINARY} is missing: run npm run build`)) return;

    // Torn down last-in first-out, in one hook: engines before the guard they
    // call, the guard before the dirs.
    const cleanups: (() => unknown)[] = [];
    t.after(async () => {
      for (const cleanup of cleanups.reverse()) {
        try {
          await cleanup();
        } catch (err) {
          t.diagnostic(`cleanup failed: ${String(err)}`);
        }
      }
    });
    const work = makeTempDir('ug-e2e-');
    const dirs: string[] = [work];
    cleanups.push(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
    const listenerPath = join(work, 'listen.sock');
    const listener = await startListener(listenerPath);
    cleanups.push(() => listener.close());
    const newSpec = (mark = 'uid_map'): PluginSpec => {
      const outDir = makeTempDir('ug-e2e-out-');
      dirs.push(outDir);
      return { outDir, listener: listenerPath, mark };
    };

    // One registry for both runs; each run's images name that run's dirs.
    const guardedBase = newSpec('base');
    const runPlan = (registryPrefix: string, upgradeBase: PluginSpec) => {
      const remoteSpecs = new Map<string, PluginSpec>();
      for (const a of ATTACKS.filter(pullsImage)) {
        remoteSpecs.set(a.name, isUpgrade(a) ? { ...upgradeBase, mark: 'upgraded' } : newSpec());
      }
      return { registryPrefix, upgradeBase, remoteSpecs };
    };
    const bareRun = runPlan('bare', newSpec('base'));
    const guardedRun = runPlan('guarded', guardedBase);
    const images: Record<string, PluginSpec> = {};
    for (const plan of [bareRun, guardedRun]) {
      for (const [name, spec] of plan.remoteSpecs) images[`${plan.registryPrefix}/probe/${name}:latest`] = spec;
    }
    const rootfs = buildRootfs(work);
    const registry = await startPluginRegistry(rootfs, images);
    cleanups.push(() => registry.stop());
    const world: World = { work, rootfs, registry, dirs, newSpec };

    // The guard's socket outlives any one guard process: the engine keeps the
    // path, and the test swaps the process behind it.
    const guardSocket = join(work, 'guard.sock');
    let guard = await startPlugin({ socket: guardSocket, args: ['--allow-plugin-install'] });
    cleanups.push(() => guard.stop());
    // --experimental: the plugin runtime of swarm services needs it.
    const [bare, guarded] = await Promise.all([
      startEngine({ build, extraArgs: ['--experimental'] }),
      startEngine({ build, authzPlugins: [{ socket: guardSocket }], apiSocket: guard.engineSocket, extraArgs: ['--experimental'] }),
    ]);
    cleanups.push(() => Promise.all([bare, guarded].map(async (e) => { await leaveSwarm(e); await e.stop(); })));
    const pluginName = guarded.pluginNames[0]!;

    // On engines newer than 20.10 some entries are refused by the engine
    // itself, or have another effect (test/lib/engineBehaviour.ts): asserted
    // here on the bare engine, so each is known for what this engine does.
    await t.test('without userns-guard, every attack reaches the host user namespace or the engine itself refuses it', async (t) => {
      const run: Run = { engine: bare, ...bareRun, specs: new Map() };
      const hostNames: string[] = [];
      for (const a of ATTACKS) {
        await t.test(a.name, async (t) => {
          const outcome = bareOutcome(a, bare);
          if (outcome.why !== undefined) t.diagnostic(`${engineTitle(build)} ${'refused' in outcome ? 'refuses this itself' : `effect ${outcome.effect}`}: ${outcome.why}`);
          const r = resolveAttack(a, await prepare(world, run, a, true));
          const res = await send(bare, r);
          if ('refused' in outcome) {
            assert.equal(res.status, outcome.refused.status, `${a.name}: ${res.body.slice(0, 300)}`);
            assert.match(res.body, outcome.refused.message, a.name);
            await proveNoEffect(run, r);
            return;
          }
          await proveBareEffect(run, r, res, outcome.effect);
          if (outcome.effect === 'host-userns-container' || outcome.effect === 'host-userns-start') hostNames.push(r.name);
        });
      }
      await t.test('docker inspect lists exactly the attacked containers as host-userns', async () => {
        assert.deepEqual((await bare.hostUsernsContainers()).sort(), hostNames.sort());
      });
      await leaveSwarm(bare);
    });

    await t.test('with --allow-plugin-install, a plugin can be created', async () => {
      const tar = pluginCreateTar(work, rootfs, guardedBase);
      const res = await guarded.request('POST', `/v1.41/plugins/create?name=${PREINSTALLED}`, { headers: { 'Content-Type': 'application/x-tar' }, body: tar });
      assert.equal(res.status, 204, res.body);
      assert.deepEqual((await listPlugins(guarded)).map((p) => `${p.Name}:${p.Enabled}`), [`${PREINSTALLED}:false`]);
    });

    // The same engine, now with the default policy behind the same socket. The
    // plugin installed above stands for one installed before the guard.
    await guard.stop();
    guard = await startPlugin({ socket: guardSocket, args: ['--engine-socket', guarded.socket] });

    await t.test('with userns-guard, no attack does', async (t) => {
      const before = await pluginState(guarded, PREINSTALLED);
      const run: Run = { engine: guarded, ...guardedRun, specs: new Map(), preinstalled: before, refusedBy: new Map() };
      for (const a of ATTACKS) {
        await t.test(a.name, async () => {
          const r = resolveAttack(a, await prepare(world, run, a, false));
          const seen = guard.records().length;
          const res = await send(guarded, r);
          const records = await auditRecordsFor(guard, seen, r.target, !a.guard.allow);
          await proveGuarded(run, r, res, records, pluginName);
          assert.deepEqual(await guarded.hostUsernsContainers(), [], `${a.name} left a host-userns container`);
        });
      }
      const byRule = new Map<string, string[]>();
      for (const [name, rule] of run.refusedBy!) byRule.set(rule, [...(byRule.get(rule) ?? []), name]);
      for (const [rule, names] of byRule) t.diagnostic(`refused by ${rule}: ${names.join(', ')}`);
      await t.test('no managed plugin was installed, changed or run', async () => {
        assert.deepEqual((await listPlugins(guarded)).map((p) => `${p.Name}:${p.Enabled}`), [`${PREINSTALLED}:false`]);
        assert.deepEqual(await pluginState(guarded, PREINSTALLED), before);
        const specs = [...run.specs.values(), ...run.remoteSpecs.values(), guardedBase];
        for (const spec of specs) assert.equal(readEvidence(spec), null, `a plugin wrote ${join(spec.outDir, spec.mark)}`);
        // Refused before the engine went to the registry at all.
        const fetched = registry.requests.filter((x) => x.includes('/v2/guarded/'));
        assert.deepEqual(fetched, [], 'the guarded engine fetched plugin images');
      });
      await leaveSwarm(guarded);
    });

    await t.test('ordinary Docker work passes through userns-guard', async (t) => {
      await ordinaryWork(t, guarded, world, pluginName, () => guard);
    });

    await t.test('userns-guard survived and still answers', async () => {
      assert.equal(guard.child.exitCode, null, 'plugin exited');
      assert.doesNotThrow(() => process.kill(guard.pid, 0));
      const activate = await guard.call('/Plugin.Activate', '');
      assert.equal(activate.status, 200);
      assert.deepEqual(JSON.parse(activate.body), { Implements: ['authz'] });
      const ping = await guarded.request('GET', '/v1.41/containers/json?all=1');
      assert.equal(ping.status, 200, ping.body);
      assert.deepEqual(await guarded.hostUsernsContainers(), []);
      const errors = guard.records().filter((r) => r.level === 'error');
      assert.deepEqual(errors, [], 'the plugin logged internal errors');
    });
  });
}

// ---------------------------------------------------------------------------
// Preparing and sending

async function prepare(world: World, run: Run, a: Attack, installBase: boolean): Promise<RunValues> {
  const values: { -readonly [K in keyof RunValues]: RunValues[K] } = {
    image: run.engine.image,
    registry: `${world.registry.host}/${run.registryPrefix}`,
  };
  if (a.setup === 'container') {
    const res = await run.engine.request('POST', `/v1.41/containers/create?name=${a.name}`, {
      headers: JSON_TYPE,
      body: JSON.stringify({ Image: run.engine.image, Cmd: ['cat', '/proc/self/uid_map'] }),
    });
    assert.equal(res.status, 201, `setup container for ${a.name}: ${res.body}`);
    values.container = a.name;
  }
  if (a.setup === 'plugin') {
    // On the bare engine each entry gets its own base plugin; the guarded
    // engine has only the one installed before the guard took over.
    if (installBase) {
      const name = `${a.name}-base:latest`;
      const base = isUpgrade(a) ? run.upgradeBase : world.newSpec('base');
      const res = await run.engine.request('POST', `/v1.41/plugins/create?name=${name}`, {
        headers: { 'Content-Type': 'application/x-tar' },
        body: pluginCreateTar(world.work, world.rootfs, base),
      });
      assert.equal(res.status, 204, `setup plugin for ${a.name}: ${res.body}`);
      values.plugin = name;
    } else {
      values.plugin = PREINSTALLED;
    }
  }
  if (a.setup === 'swarm') await joinSwarm(run.engine);
  const remote = run.remoteSpecs.get(a.name);
  if (remote) values.privileges = JSON.stringify(pluginPrivileges(remote));
  if (a.body !== null && typeof a.body !== 'string') {
    const spec = world.newSpec();
    run.specs.set(a.name, spec);
    values.pluginTar = pluginCreateTar(world.work, world.rootfs, spec);
  }
  if (a.body !== null && typeof a.body === 'string' && a.body.includes('{outDir}')) {
    // plugin-set: a new host dir the base plugin would write its evidence to.
    const spec = { ...world.newSpec(), mark: 'base' };
    run.specs.set(a.name, spec);
    values.outDir = spec.outDir;
  }
  return values;
}

async function send(engine: Engine, r: ResolvedAttack): Promise<HttpResult> {
  if ((r.body?.length ?? 0) > BIG_BODY) return parseReply(await rawWithContinue(engine.socket, r));
  if (r.attack.raw) return parseReply(await engine.raw(rawRequest(r), 30_000));
  return engine.request(r.attack.method, r.target, {
    headers: { ...r.headers },
    ...(r.body === null ? {} : { body: r.body }),
    chunked: r.attack.chunked,
    timeoutMs: 60_000,
  });
}

// Past this, a body goes out only after the engine's 100 Continue: a guarded
// engine refuses a tar upload without reading it and closes, and a body
// written into that close fails with EPIPE before the answer is read (with
// node:http as well as raw).
const BIG_BODY = 64 * 1024;

function rawWithContinue(socketPath: string, r: ResolvedAttack, timeoutMs = 60_000): Promise<string> {
  const { head, body } = rawParts(r, true);
  return new Promise((resolve, reject) => {
    let reply = Buffer.alloc(0);
    let sentBody = false;
    const conn = net.createConnection(socketPath, () => conn.write(head));
    const timer = setTimeout(() => conn.destroy(new Error(`${r.attack.name}: no answer in ${timeoutMs} ms`)), timeoutMs);
    conn.on('data', (d: Buffer) => {
      reply = Buffer.concat([reply, d]);
      const interim = /^HTTP\/1\.1 100 [^\r]*\r\n\r\n/.exec(reply.toString('latin1'));
      if (!sentBody && interim) {
        sentBody = true;
        reply = reply.subarray(interim[0].length);
        conn.write(body);
      }
    });
    conn.on('close', () => { clearTimeout(timer); resolve(reply.toString('utf8')); });
    conn.on('error', (err) => { clearTimeout(timer); if (reply.length > 0) resolve(reply.toString('utf8')); else reject(err); });
  });
}

function parseReply(reply: string): HttpResult {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(reply);
  assert.ok(m, `no HTTP status line in reply: ${JSON.stringify(reply.slice(0, 200))}`);
  const split = reply.indexOf('\r\n\r\n');
  return { status: Number(m[1]), headers: {}, body: split < 0 ? '' : reply.slice(split + 4) };
}

// ---------------------------------------------------------------------------
// What the bare engine did

async function proveBareEffect(run: Run, r: ResolvedAttack, res: HttpResult, effect: Attack['bare']): Promise<void> {
  const e = run.engine;
  const a = r.attack;
  switch (effect) {
    case 'host-userns-container': {
      assert.equal(res.status, 201, `${a.name}: ${res.body}`);
      assert.equal((await inspect(e, r.name)).HostConfig.UsernsMode, 'host');
      return;
    }
    case 'host-userns-start': {
      assert.equal(res.status, 204, `${a.name}: ${res.body}`);
      const c = await waitExited(e, r.name);
      assert.equal(c.HostConfig.UsernsMode, 'host');
      assert.equal(await uidMapLogged(e, r.name), HOST_ROOT_UID_MAP);
      return;
    }
    case 'private-userns': {
      assert.equal(res.status, 201, `${a.name}: ${res.body}`);
      await provePrivate(e, r.name, a);
      return;
    }
    case 'plugin-host-root': {
      assert.ok([200, 201, 204].includes(res.status), `${a.name}: ${res.status} ${res.body}`);
      assert.doesNotMatch(res.body, /"error"/, `${a.name}: ${res.body}`);
      const { name, spec } = pluginTarget(run, r);
      if (isService(a)) {
        // Swarm installs and enables the plugin itself, a moment later.
        const deadline = Date.now() + 30_000;
        // Until the plugin has written it: an empty file is one being written.
        while (!readEvidence(spec) && Date.now() < deadline) await sleep(100);
      } else {
        const enable = await e.request('POST', `/v1.41/plugins/${name}/enable?timeout=30`);
        assert.equal(enable.status, 200, `enable ${name}: ${enable.body}`);
      }
      assert.equal(readEvidence(spec), HOST_ROOT_UID_MAP, `${a.name}: plugin evidence in ${spec.outDir}`);
      return;
    }
  }
}

// The plugin an entry installs or changes, and where its evidence lands.
function pluginTarget(run: Run, r: ResolvedAttack): { name: string; spec: PluginSpec } {
  const a = r.attack;
  const spec = run.remoteSpecs.get(a.name) ?? run.specs.get(a.name);
  assert.ok(spec, `${a.name}: no plugin spec`);
  return { name: a.setup === 'plugin' ? `${a.name}-base:latest` : `${r.name}:latest`, spec };
}

const pullsImage = (a: Attack) => `${a.target} ${typeof a.body === 'string' ? a.body : ''}`.includes('{registry}');
const isUpgrade = (a: Attack) => /\/upgrade\?/.test(a.target);
const isService = (a: Attack) => a.setup === 'swarm';

// Swarm mode, for the service entries. Swarm needs a docker_gwbridge network,
// whose bridge lives on the host and outlives the engine unless removed.
// Made here with a bridge name of its own, so engines running side by side
// never share (or remove) one another's.
const inSwarm = new Set<Engine>();
async function joinSwarm(e: Engine): Promise<void> {
  if (inSwarm.has(e)) return;
  const gw = await e.docker([
    'network', 'create',
    '--opt', `com.docker.network.bridge.name=uggw${randomBytes(4).toString('hex')}`,
    '--opt', 'com.docker.network.bridge.enable_ip_masquerade=false',
    '--opt', 'com.docker.network.bridge.enable_icc=false',
    'docker_gwbridge',
  ]);
  assert.equal(gw.code, 0, `docker_gwbridge: ${gw.stderr}`);
  inSwarm.add(e);
  const r = await e.docker(['swarm', 'init', '--advertise-addr', '127.0.0.1']);
  assert.equal(r.code, 0, `swarm init: ${r.stderr}`);
}
async function leaveSwarm(e: Engine): Promise<void> {
  if (!inSwarm.delete(e)) return;
  await e.docker(['swarm', 'leave', '--force']);
  await e.docker(['network', 'rm', 'docker_gwbridge']);
}

// ---------------------------------------------------------------------------
// What the guarded engine did

// The engine's state decides; the plugin's answer and audit line come second.
async function proveGuarded(run: Run, r: ResolvedAttack, res: HttpResult, records: Record<string, unknown>[], pluginName: string): Promise<void> {
  const e = run.engine;
  const a = r.attack;
  const denials = records.filter((x) => x.decision === 'deny');
  if (a.guard.allow) {
    assert.equal(res.status, 201, `${a.name}: ${res.body}`);
    await provePrivate(e, r.name, a);
    assert.deepEqual(denials, [], `${a.name} was refused`);
    return;
  }

  await proveNoEffect(run, r, res);

  assert.equal(res.status, 403, `${a.name} was not refused: ${res.status} ${res.body.slice(0, 300)}`);
  assert.match(res.body, new RegExp(`authorization denied by plugin ${pluginName}: `), res.body);
  assert.equal(denials.length, 1, `${a.name}: audit records ${JSON.stringify(records)}`);
  const rule = String(denials[0]!.rule);
  assert.ok((a.guard.rules as readonly string[]).includes(rule), `${a.name}: refused by ${rule}, expected ${a.guard.rules.join('|')}`);
  run.refusedBy?.set(a.name, rule);
}

// The engine's state shows the request had none of the effect it asks for.
async function proveNoEffect(run: Run, r: ResolvedAttack, res?: HttpResult): Promise<void> {
  const e = run.engine;
  const a = r.attack;
  const answer = res === undefined ? '' : ` (${res.status} ${res.body.slice(0, 200)})`;
  switch (a.bare) {
    case 'host-userns-container': {
      const got = await e.request('GET', `/v1.41/containers/${r.name}/json`);
      assert.equal(got.status, 404, `${a.name}: the engine created the container${answer}`);
      break;
    }
    case 'host-userns-start': {
      const c = await inspect(e, r.name);
      assert.notEqual(c.HostConfig.UsernsMode, 'host', `${a.name}: the container now has the host user namespace`);
      assert.match(c.State.StartedAt, /^0001-/, `${a.name}: the container was started`);
      break;
    }
    case 'plugin-host-root': {
      if (a.setup === 'plugin') {
        assert.deepEqual(await pluginState(e, PREINSTALLED), run.preinstalled, `${a.name}: the installed plugin changed`);
      } else if (isService(a)) {
        // By name: the service list shows container-runtime services only.
        const service = await e.request('GET', `/v1.41/services/${r.name}`);
        assert.equal(service.status, 404, `${a.name}: the engine created the service (${service.body.slice(0, 200)})`);
      } else {
        const names = (await listPlugins(e)).map((p) => p.Name);
        assert.ok(!names.includes(`${r.name}:latest`), `${a.name}: the engine installed the plugin`);
        // Enabling stays allowed, so this asks the engine itself.
        const enable = await e.request('POST', `/v1.41/plugins/${r.name}:latest/enable?timeout=5`);
        assert.equal(enable.status, 404, `${a.name}: ${enable.body}`);
      }
      break;
    }
    case 'private-userns':
      assert.fail(`${a.name}: a look-alike must be allowed`);
  }
}

// The plugin's audit lines for one request: logged since `seen`, for its
// target. They reach stderr shortly after the answer (the previous request's
// may too), so wait for the one expected.
async function auditRecordsFor(guard: PluginProcess, seen: number, target: string, expectOne: boolean): Promise<Record<string, unknown>[]> {
  const mine = () => guard.records().slice(seen).filter((x) => x.uri === target);
  const deadline = Date.now() + (expectOne ? 3_000 : 200);
  while (Date.now() < deadline && (mine().length === 0 || !expectOne)) await new Promise((r) => setTimeout(r, 20));
  return mine();
}

// ---------------------------------------------------------------------------
// Ordinary work through the plugin

async function ordinaryWork(t: TestContext, e: Engine, world: World, pluginName: string, guard: () => PluginProcess): Promise<void> {
  const docker = async (args: string[]) => {
    const r = await e.docker(args);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const since = Math.floor(Date.now() / 1000) - 1;

  await t.test('run', async () => {
    assert.equal(norm(await docker(['run', '--rm', e.image, 'cat', '/proc/self/uid_map'])), REMAPPED_UID_MAP);
  });
  await t.test('create + start, exec, inspect, update', async () => {
    await docker(['create', '--name', 'cli-box', e.image, 'sleep', '600']);
    await docker(['start', 'cli-box']);
    assert.equal(await docker(['exec', 'cli-box', 'id', '-u']), '0');
    assert.equal(norm(await docker(['exec', 'cli-box', 'cat', '/proc/self/uid_map'])), REMAPPED_UID_MAP);
    assert.equal(await docker(['inspect', '-f', '{{.State.Running}}/{{.HostConfig.UsernsMode}}/', 'cli-box']), 'true//');
    await docker(['update', '--restart', 'on-failure:2', 'cli-box']);
    assert.equal(await docker(['inspect', '-f', '{{.HostConfig.RestartPolicy.Name}}', 'cli-box']), 'on-failure');
  });
  await t.test('logs, ps, images', async () => {
    await docker(['run', '--name', 'cli-logs', e.image, 'echo', 'hello from cli-logs']);
    assert.equal(await docker(['logs', 'cli-logs']), 'hello from cli-logs');
    assert.match(await docker(['ps', '-a', '--format', '{{.Names}}']), /^cli-box$/m);
    assert.match(await docker(['images', '--format', '{{.Repository}}:{{.Tag}}']), new RegExp(`^${e.image}$`, 'm'));
  });
  await t.test('volumes', async () => {
    await docker(['volume', 'create', 'cli-vol']);
    assert.match(await docker(['volume', 'ls', '-q']), /^cli-vol$/m);
    await docker(['run', '--rm', '-v', 'cli-vol:/data', e.image, 'touch', '/data/ok']);
    await docker(['volume', 'rm', 'cli-vol']);
  });
  await t.test('networks', async () => {
    // --internal: no NAT, no host-side routing; the engine runs with --bridge=none.
    await docker(['network', 'create', '--internal', 'cli-net']);
    try {
      assert.match(await docker(['network', 'ls', '--format', '{{.Name}}']), /^cli-net$/m);
      assert.equal(await docker(['network', 'inspect', '-f', '{{.Internal}}', 'cli-net']), 'true');
      await docker(['run', '--rm', '--network', 'cli-net', e.image, 'true']);
    } finally {
      await e.docker(['network', 'rm', 'cli-net']);
    }
    assert.doesNotMatch(await docker(['network', 'ls', '--format', '{{.Name}}']), /^cli-net$/m);
  });
  await t.test('legacy-builder docker build', async () => {
    const ctx = mkdtempSync(join(tmpdir(), 'ug-e2e-build-'));
    world.dirs.push(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), `FROM ${e.image}\nRUN echo built > /x\nCMD ["cat", "/x"]\n`);
    const saved = process.env.DOCKER_BUILDKIT;
    process.env.DOCKER_BUILDKIT = '0';
    try {
      await docker(['build', '-q', '-t', 'cli-built:latest', ctx]);
    } finally {
      if (saved === undefined) delete process.env.DOCKER_BUILDKIT;
      else process.env.DOCKER_BUILDKIT = saved;
    }
    assert.equal(await docker(['run', '--rm', 'cli-built:latest']), 'built');
  });
  await t.test(`old API versions: create, and start with and without a body (engine's minimum: ${e.minApiVersion})`, async () => {
    // From 25.0 the engine refuses versions below its minimum (1.24) itself,
    // after the plugin allowed the call: assert that refusal, not a pass.
    const tooOld = (version: string) => compareVersions(version, e.minApiVersion) < 0;
    const refusedByEngine = (res: HttpResult, what: string) => {
      assert.equal(res.status, 400, `${what}: ${res.body}`);
      assert.match(res.body, /client version \S+ is too old\. Minimum supported API version is /, what);
    };
    const started: string[] = [];
    for (const version of ['1.24', '1.12']) {
      const name = `old-api-${version.replace('.', '-')}`;
      const res = await e.request('POST', `/v${version}/containers/create?name=${name}`, {
        headers: JSON_TYPE,
        body: JSON.stringify({ Image: e.image, Cmd: ['cat', '/proc/self/uid_map'] }),
      });
      if (tooOld(version)) {
        refusedByEngine(res, `create through API ${version}`);
        const fallback = await e.request('POST', `/v${e.minApiVersion}/containers/create?name=${name}`, {
          headers: JSON_TYPE,
          body: JSON.stringify({ Image: e.image, Cmd: ['cat', '/proc/self/uid_map'] }),
        });
        assert.equal(fallback.status, 201, `create through API ${e.minApiVersion}: ${fallback.body}`);
      } else {
        assert.equal(res.status, 201, `create through API ${version}: ${res.body}`);
      }
    }
    // Below 1.24 a start body is applied as HostConfig; harmless ones pass.
    const empty = await e.request('POST', '/v1.23/containers/old-api-1-24/start');
    if (tooOld('1.23')) refusedByEngine(empty, 'start through API 1.23');
    else { assert.equal(empty.status, 204, empty.body); started.push('old-api-1-24'); }
    const withBody = await e.request('POST', '/v1.12/containers/old-api-1-12/start', {
      headers: JSON_TYPE,
      body: JSON.stringify({ HostConfig: { RestartPolicy: { Name: 'no' } } }),
    });
    if (tooOld('1.12')) refusedByEngine(withBody, 'start through API 1.12 with a body');
    else { assert.equal(withBody.status, 204, withBody.body); started.push('old-api-1-12'); }
    // Not refused by the plugin: the engine's refusal is its own.
    const denied = guard().records().filter((x) => x.decision === 'deny' && /\/old-api-/.test(String(x.uri)));
    assert.deepEqual(denied, [], 'userns-guard refused a benign old-API call');
    for (const name of ['old-api-1-24', 'old-api-1-12']) {
      if (!started.includes(name)) {
        const res = await e.request('POST', `/v${e.minApiVersion}/containers/${name}/start`);
        assert.equal(res.status, 204, `start ${name} through API ${e.minApiVersion}: ${res.body}`);
      }
      await waitExited(e, name);
      assert.equal(await uidMapLogged(e, name), REMAPPED_UID_MAP);
    }
  });
  await t.test('events', async () => {
    const until = Math.floor(Date.now() / 1000) + 1;
    const events = await docker(['events', '--since', String(since), '--until', String(until), '--format', '{{.Type}} {{.Action}}']);
    assert.match(events, /^container create$/m);
    assert.match(events, /^network create$/m);
  });
  await t.test('plugin ls and inspect stay allowed', async () => {
    assert.match(await docker(['plugin', 'ls', '--format', '{{.Name}}']), /^preinstalled:latest$/m);
    await docker(['plugin', 'inspect', PREINSTALLED]);
  });
  await t.test('docker run --userns=host is refused by userns-guard', async () => {
    const r = await e.docker(['run', '--rm', '--userns=host', e.image, 'true']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`authorization denied by plugin ${pluginName}: host user namespace is not allowed`));
  });
  await t.test('rm', async () => {
    await docker(['rm', '-f', 'cli-box', 'cli-logs', 'old-api-1-24', 'old-api-1-12']);
    assert.doesNotMatch(await docker(['ps', '-a', '--format', '{{.Names}}']), /^cli-/m);
  });
}

// ---------------------------------------------------------------------------
// Engine look-ups

async function inspect(e: Engine, name: string): Promise<any> {
  const res = await e.request('GET', `/v1.41/containers/${name}/json`);
  assert.equal(res.status, 200, `inspect ${name}: ${res.body}`);
  return JSON.parse(res.body);
}

async function waitExited(e: Engine, name: string): Promise<any> {
  const res = await e.request('POST', `/v1.41/containers/${name}/wait`, { timeoutMs: 30_000 });
  assert.equal(res.status, 200, `wait ${name}: ${res.body}`);
  return inspect(e, name);
}

async function uidMapLogged(e: Engine, name: string): Promise<string> {
  const r = await e.docker(['logs', name]);
  assert.equal(r.code, 0, r.stderr);
  return norm(r.stdout);
}

// A look-alike value: the engine keeps it, and the container runs remapped.
async function provePrivate(e: Engine, name: string, a: Attack): Promise<void> {
  const c = await inspect(e, name);
  assert.notEqual(c.HostConfig.UsernsMode, 'host', a.name);
  const start = await e.request('POST', `/v1.41/containers/${name}/start`);
  assert.equal(start.status, 204, `${a.name}: ${start.body}`);
  await waitExited(e, name);
  assert.equal(await uidMapLogged(e, name), REMAPPED_UID_MAP, a.name);
}

async function listPlugins(e: Engine): Promise<{ Name: string; Enabled: boolean }[]> {
  const res = await e.request('GET', '/v1.41/plugins');
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body);
}

// The parts of an installed plugin that set and upgrade would change.
async function pluginState(e: Engine, name: string): Promise<unknown> {
  const res = await e.request('GET', `/v1.41/plugins/${name}/json`);
  assert.equal(res.status, 200, res.body);
  const p = JSON.parse(res.body);
  return { enabled: p.Enabled, settings: p.Settings, config: p.Config, reference: p.PluginReference ?? '' };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function norm(s: string): string {
  return s.trim().split(/\s+/).join(' ');
}
