// End-to-end proof of the opt-in hardening rules (issue 6): real engines with
// the built binary as their authorization plugin, judged by the engines' state.
//
// 1. An engine with userns-remap and `--harden`: per rule, requests that ask
//    for what the rule forbids (through the CLI and through raw API shapes
//    the CLI never sends) are refused by userns-guard and leave no container
//    or volume behind, while the benign look-alike is created and runs.
// 2. An engine without userns-remap (what the rules are for): the same kind
//    of requests first run with the rules off, which proves they are real,
//    then are refused once the same socket serves `--harden`.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildsForTests, compareVersions, engineSkipReason, engineTitle, startEngine, type Engine } from './lib/engine.ts';
import { BINARY, makeTempDir, startPlugin, type PluginProcess } from './lib/plugin.ts';
import { skipUnless } from './lib/prereq.ts';
import type { HardeningRuleId } from '../src/policy/rules/types.ts';

const JSON_TYPE = { 'Content-Type': 'application/json' };

interface Guarded {
  readonly engine: Engine;
  readonly pluginName: string;
}

// Runs the docker CLI and expects userns-guard's refusal under `rule`.
async function refusedCli(g: Guarded, rule: HardeningRuleId, args: string[], env?: Record<string, string>): Promise<void> {
  const r = await g.engine.docker(args, env === undefined ? {} : { env });
  assert.notEqual(r.code, 0, `docker ${args.join(' ')} succeeded: ${r.stdout}`);
  assert.match(r.stderr, refusal(g, rule), `docker ${args.join(' ')}`);
}

// Sends a raw API request and expects userns-guard's refusal under `rule`.
async function refusedApi(g: Guarded, rule: HardeningRuleId, path: string, body: object | string): Promise<void> {
  const r = await g.engine.request('POST', path, { headers: JSON_TYPE, body: typeof body === 'string' ? body : JSON.stringify(body) });
  assert.equal(r.status, 403, `${path}: ${r.status} ${r.body}`);
  assert.match(r.body, refusal(g, rule), path);
}

function refusal(g: Guarded, rule: HardeningRuleId): RegExp {
  return new RegExp(`authorization denied by plugin ${g.pluginName}: .*\\(rule ${rule}, enabled by --harden\\)`);
}

async function runs(engine: Engine, args: string[]): Promise<string> {
  const r = await engine.docker(args);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

// How an engine version records HostConfig fields, as seen on each engine.
function recorded(version: string): { defaultNetworkMode: string; capAddPrefix: string } {
  return {
    defaultNetworkMode: compareVersions(version, '25.0.0') >= 0 ? 'bridge' : 'default',
    capAddPrefix: compareVersions(version, '28.0.0') >= 0 ? 'CAP_' : '',
  };
}

async function containerNames(engine: Engine): Promise<string[]> {
  return (await engine.inspectAll()).map((c) => String(c.Name).replace(/^\//, '')).sort();
}

async function volumeNames(engine: Engine): Promise<string[]> {
  return (await runs(engine, ['volume', 'ls', '-q'])).split('\n').filter(Boolean).sort();
}

for (const build of buildsForTests()) {
  test(`issue 6 end to end ${engineTitle(build)}: hardening rules on real engines`, { timeout: 120_000 }, async (t) => {
    if (skipUnless(t, engineSkipReason(build))) return;
    if (skipUnless(t, existsSync(BINARY) ? null : `${BINARY} is missing: run npm run build`)) return;

    const work = makeTempDir('ug-e2e-hard-');
    t.after(() => rmSync(work, { recursive: true, force: true }));
    const guard = await startPlugin({ args: ['--harden'] });
    t.after(() => guard.stop());
    // The no-remap engine's plugin is swapped behind one socket path.
    const swapSocket = join(work, 'swap.sock');
    let swapped: PluginProcess = await startPlugin({ socket: swapSocket });
    t.after(() => swapped.stop());

    const [remapped, plain] = await Promise.all([
      startEngine({ build, authzPlugins: [{ socket: guard.socket }], apiSocket: guard.engineSocket }),
      startEngine({ build, authzPlugins: [{ socket: swapSocket }], apiSocket: swapped.engineSocket, extraArgs: ['--userns-remap='] }),
    ]);
    t.after(() => Promise.all([remapped.stop(), plain.stop()]));
    const g: Guarded = { engine: remapped, pluginName: remapped.pluginNames[0]! };
    const img = remapped.image;
    const user = ['--user', '1000'];
    // Containers the engine must end up with; every refused request names one
    // that must not exist.
    const created = ['runner'];

    await runs(remapped, ['run', '-d', '--name', 'runner', ...user, img, 'sleep', '120']);

    await t.test('privileged', async () => {
      await refusedCli(g, 'privileged', ['create', '--name', 'no-priv', ...user, '--privileged', img, 'true']);
      await refusedCli(g, 'privileged', ['exec', '--privileged', '-u', '1000', 'runner', 'true']);
      await refusedApi(g, 'privileged', '/v1.41/containers/create?name=no-priv-top', { Image: img, User: '1000', Privileged: true });
      // Below API 1.24 a start body becomes the HostConfig.
      await runs(remapped, ['create', '--name', 'legacy', ...user, img, 'true']);
      created.push('legacy');
      await refusedApi(g, 'privileged', '/v1.23/containers/legacy/start', { Privileged: true });
      assert.equal(await runs(remapped, ['inspect', '-f', '{{.HostConfig.Privileged}} {{.State.Running}} {{.State.StartedAt}}', 'legacy']), 'false false 0001-01-01T00:00:00Z');
      assert.equal(await runs(remapped, ['run', '--name', 'ok-plain', ...user, img, 'true']), '');
      created.push('ok-plain');
      assert.equal(await runs(remapped, ['exec', '-u', '1000:1000', 'runner', 'id', '-u']), '1000');
    });

    await t.test('cap-add', async () => {
      await refusedCli(g, 'cap-add', ['create', '--name', 'no-cap', ...user, '--cap-add', 'SYS_ADMIN', img, 'true']);
      // CapAdd is a StrSlice: the engine takes a bare string as one entry.
      await refusedApi(g, 'cap-add', '/v1.41/containers/create?name=no-cap-str', { Image: img, User: '1000', HostConfig: { CapAdd: 'NET_ADMIN' } });
      await runs(remapped, ['run', '--name', 'ok-capdrop', ...user, '--cap-drop', 'ALL', img, 'true']);
      created.push('ok-capdrop');
    });

    await t.test('security-opt', async () => {
      await refusedCli(g, 'security-opt', ['create', '--name', 'no-seccomp', ...user, '--security-opt', 'seccomp=unconfined', img, 'true']);
      // The CLI turns this one into empty MaskedPaths and ReadonlyPaths.
      await refusedCli(g, 'security-opt', ['create', '--name', 'no-syspaths', ...user, '--security-opt', 'systempaths=unconfined', img, 'true']);
      await refusedApi(g, 'security-opt', '/v1.41/containers/create?name=no-label', `{"Image":"${img}","User":"1000","HostConfig":{"\\u017fecurityOpt":["label:disable"]}}`);
      await runs(remapped, ['run', '--name', 'ok-nnp', ...user, '--security-opt', 'no-new-privileges', img, 'true']);
      created.push('ok-nnp');
    });

    await t.test('root-user', async () => {
      await refusedCli(g, 'root-user', ['create', '--name', 'no-root0', '--user', '0', img, 'true']);
      await refusedCli(g, 'root-user', ['create', '--name', 'no-user', img, 'true']);
      await refusedCli(g, 'root-user', ['exec', '-u', '0', 'runner', 'id', '-u']);
      await refusedApi(g, 'root-user', '/v1.41/containers/create?name=no-root-dup', `{"Image":"${img}","User":"1000","user":"+0"}`);
      assert.equal(await runs(remapped, ['run', '--name', 'ok-uid', '--user', '1000', img, 'id', '-u']), '1000');
      created.push('ok-uid');
    });

    await t.test('host-namespaces', async () => {
      await refusedCli(g, 'host-namespaces', ['create', '--name', 'no-pid', ...user, '--pid', 'host', img, 'true']);
      // The engine itself allows this one under remapping.
      await refusedCli(g, 'host-namespaces', ['create', '--name', 'no-uts', ...user, '--uts', 'host', img, 'true']);
      await refusedApi(g, 'host-namespaces', '/v1.41/containers/create?name=no-net', `{"Image":"${img}","User":"1000","HostConfig":{"Networ\\u212aMode":"host"}}`);
      const ctx = mkdtempSync(join(tmpdir(), 'ug-e2e-hard-build-'));
      try {
        writeFileSync(join(ctx, 'Dockerfile'), `FROM ${img}\nRUN true\n`);
        // The legacy builder: POST /build?networkmode=host, refused as such.
        await refusedCli(g, 'host-namespaces', ['build', '-q', '--network', 'host', '-t', 'no-hostnet-build', ctx], { DOCKER_BUILDKIT: '0' });
        // BuildKit (the default builder from engine 23): buildx's docker
        // driver talks to the engine over /grpc, whose build requests
        // authorization never sees; --harden refuses /grpc as a whole. buildx
        // then falls back to a docker-container builder that cannot reach a
        // registry here, so its error is not the plugin's: the audit log and
        // the engine's image list are the proof.
        const seen = guard.records().length;
        const bk = await remapped.docker(['buildx', 'build', '--network', 'host', '-t', 'no-hostnet-buildx', ctx], { timeoutMs: 120_000 });
        assert.notEqual(bk.code, 0, `buildx build --network host succeeded: ${bk.stderr}`);
        const grpc = guard.records().slice(seen).filter((r) => r.decision === 'deny' && r.uri === '/grpc');
        assert.ok(grpc.length >= 1, `no /grpc denial: ${bk.stderr}`);
        assert.deepEqual([...new Set(grpc.map((r) => r.rule))], ['host-namespaces']);
      } finally {
        rmSync(ctx, { recursive: true, force: true });
      }
      assert.equal((await runs(remapped, ['images', '-q', 'no-hostnet-build'])), '');
      assert.equal((await runs(remapped, ['images', '-q', 'no-hostnet-buildx'])), '');
      await runs(remapped, ['run', '--name', 'ok-netnone', ...user, '--network', 'none', '--ipc', 'shareable', img, 'true']);
      created.push('ok-netnone');
    });

    await t.test('devices', async () => {
      await refusedCli(g, 'devices', ['create', '--name', 'no-dev', ...user, '--device', '/dev/null:/dev/xnull', img, 'true']);
      await refusedCli(g, 'devices', ['create', '--name', 'no-devrule', ...user, '--device-cgroup-rule', 'c 1:3 rmw', img, 'true']);
      await refusedCli(g, 'devices', ['volume', 'create', '--opt', 'type=proc', '--opt', 'device=proc', 'no-procvol']);
      await runs(remapped, ['volume', 'create', '--opt', 'type=tmpfs', '--opt', 'device=tmpfs', 'ok-tmpv']);
      await runs(remapped, ['run', '--name', 'ok-tmpv', ...user, '-v', 'ok-tmpv:/t', img, 'true']);
      created.push('ok-tmpv');
    });

    await t.test('docker-socket', async () => {
      // Only refused binds name socket paths: the engine creates a missing
      // bind source, so nothing here may be allowed to reach /var/run.
      await refusedCli(g, 'docker-socket', ['create', '--name', 'no-sock', ...user, '-v', '/var/run/docker.sock:/var/run/docker.sock', img, 'true']);
      await refusedCli(g, 'docker-socket', ['create', '--name', 'no-run', ...user, '--mount', 'type=bind,src=//run/../var/run/,dst=/r', img, 'true']);
      await refusedCli(g, 'docker-socket', ['volume', 'create', '--opt', 'type=none', '--opt', 'o=bind', '--opt', 'device=/run', 'no-runvol']);
      const data = makeTempDir('ug-e2e-hard-data-');
      try {
        writeFileSync(join(data, 'marker'), 'x');
        assert.equal(await runs(remapped, ['run', '--name', 'ok-bind', ...user, '-v', `${data}:/data:ro`, img, 'ls', '/data']), 'marker');
        created.push('ok-bind');
      } finally {
        rmSync(data, { recursive: true, force: true });
      }
    });

    await t.test('the engine holds exactly the allowed containers and volumes', async () => {
      assert.deepEqual(await containerNames(remapped), [...created].sort());
      assert.deepEqual(await volumeNames(remapped), ['ok-tmpv']);
      const denied = new Set(guard.records().filter((r) => r.decision === 'deny').map((r) => r.rule));
      assert.deepEqual([...denied].sort(), [
        'cap-add', 'devices', 'docker-socket', 'host-namespaces', 'privileged', 'root-user', 'security-opt',
      ]);
    });

    await t.test('without userns-remap: real with the rules off, refused with --harden', async () => {
      const info = await runs(plain, ['info', '--format', '{{json .SecurityOptions}}']);
      assert.doesNotMatch(info, /userns/, 'this engine must run without userns-remap');
      const hostile: [string, HardeningRuleId, string[]][] = [
        ['priv', 'privileged', ['--privileged', ...user]],
        ['hostnet', 'host-namespaces', ['--network', 'host', ...user]],
        ['root', 'root-user', ['--user', '0']],
        ['capadd', 'cap-add', ['--cap-add', 'SYS_ADMIN', ...user]],
      ];
      for (const [name, , flags] of hostile) {
        await runs(plain, ['run', '--name', `off-${name}`, ...flags, img, 'true']);
      }
      const hostConfig = await runs(plain, ['inspect', '-f', '{{.Name}} {{.HostConfig.Privileged}} {{.HostConfig.NetworkMode}} {{.Config.User}} {{.HostConfig.CapAdd}}', ...hostile.map(([n]) => `off-${n}`)]);
      // What each engine records: the default network mode is "default" on
      // 20.10 and "bridge" from 25.0; 28 stores added capabilities as CAP_X.
      const { defaultNetworkMode, capAddPrefix } = recorded(build.version);
      assert.deepEqual(hostConfig.split('\n'), [
        `/off-priv true ${defaultNetworkMode} 1000 []`,
        '/off-hostnet false host 1000 []',
        `/off-root false ${defaultNetworkMode} 0 []`,
        `/off-capadd false ${defaultNetworkMode} 1000 [${capAddPrefix}SYS_ADMIN]`,
      ]);
      assert.equal(await runs(plain, ['run', '--name', 'off-uid', '--user', '0', img, 'id', '-u']), '0');

      await swapped.stop();
      swapped = await startPlugin({ socket: swapSocket, args: ['--harden', '--engine-socket', plain.socket] });
      const p: Guarded = { engine: plain, pluginName: plain.pluginNames[0]! };
      for (const [name, rule, flags] of hostile) {
        await refusedCli(p, rule, ['run', '--name', `on-${name}`, ...flags, img, 'true']);
      }
      assert.equal(await runs(plain, ['run', '--name', 'on-uid', '--user', '1000', img, 'id', '-u']), '1000');
      assert.deepEqual(await containerNames(plain), ['off-capadd', 'off-hostnet', 'off-priv', 'off-root', 'off-uid', 'on-uid']);
    });
  });
}
