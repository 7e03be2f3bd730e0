// `userns-guard doctor`, run as the built binary against a real engine with
// the built plugin as its authorization plugin, on a temp root tree for the
// host files: all ok when set up right, and each broken setup caught.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { kernelCheck, socketCheck, subIdCheck } from '../src/host/doctorChecks.ts';
import { buildsForTests, engineSkipReason, engineTitle, startEngine, type Engine } from './lib/engine.ts';
import { makeTempDir, runBinary, startPlugin, type RunResult } from './lib/plugin.ts';
import { skipUnless } from './lib/prereq.ts';

interface Report {
  code: number | null;
  stdout: string;
  stderr: string;
  ok: boolean;
  checks: { id: string; status: 'ok' | 'warn' | 'fail'; message: string; fix: string }[];
}

function runDoctor(args: string[]): Promise<RunResult> {
  return runBinary(['doctor', ...args]);
}

async function doctorJson(args: string[]): Promise<Report> {
  const r = await runDoctor([...args, '--json']);
  const parsed = JSON.parse(r.stdout) as Pick<Report, 'ok' | 'checks'>;
  return { ...r, ...parsed };
}

function status(report: Report, id: string): string {
  const check = report.checks.find((c) => c.id === id);
  assert.ok(check !== undefined, `no check ${id} in ${JSON.stringify(report.checks, null, 2)}`);
  return check.status;
}

function check(report: Report, id: string): Report['checks'][number] {
  status(report, id);
  return report.checks.find((c) => c.id === id)!;
}

function write(root: string, rel: string, content: string): void {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  fs.writeFileSync(path.join(root, rel), content);
}

async function containerIds(engine: Engine): Promise<string[]> {
  const r = await engine.request('GET', '/containers/json?all=1');
  assert.equal(r.status, 200, r.body);
  return (JSON.parse(r.body) as { Id: string }[]).map((c) => c.Id).sort();
}

const ALL_CHECKS = [
  'kernel.userns', 'daemon-json', 'daemon-json.userns-remap', 'daemon-json.authorization-plugins', 'subuid', 'subgid',
  'plugin.socket', 'plugin.activate', 'plugin.lookups', 'engine.plugin-discovery', 'engine.api', 'engine.userns', 'engine.authz', 'engine.probe',
  'engine.probe.bind-source', 'engine.host-userns', 'engine.bind-sources',
];

for (const build of buildsForTests()) {
  test(`doctor against a real engine with the plugin ${engineTitle(build)}`, async (t) => {
    if (skipUnless(t, engineSkipReason(build))) return;
    const plugin = await startPlugin();
    let engine: Engine | undefined;
    // The engine first: stopping it lists containers through the plugin, and a
    // gone plugin would make every such call wait out the engine's retries.
    t.after(async () => {
      await engine?.stop();
      await plugin.stop();
    });
    engine = await startEngine({ build, authzPlugins: [{ socket: plugin.socket }], apiSocket: plugin.engineSocket });
    const name = engine.pluginNames[0]!;

    const root = makeTempDir('ug-doctor-');
    t.after(() => fs.rmSync(root, { recursive: true, force: true }));
    const goodDaemonJson = JSON.stringify({ 'userns-remap': 'default', 'authorization-plugins': [name], 'log-driver': 'json-file' });
    const setUp = () => {
      write(root, 'etc/docker/daemon.json', goodDaemonJson);
      write(root, 'etc/subuid', 'alice:200000:65536\ndockremap:100000:65536\n');
      write(root, 'etc/subgid', 'dockremap:100000:65536\n');
      fs.chmodSync(plugin.socket, 0o600);
    };
    const args = ['--root', root, '--docker-host', engine.host, '--socket', plugin.socket, '--plugin-name', name];

    await t.test('set up right: every check ok, exit 0, no container left', async () => {
      setUp();
      const before = await containerIds(engine);
      const r = await doctorJson(args);
      assert.equal(r.code, 0, r.stdout);
      assert.equal(r.ok, true);
      assert.deepEqual(r.checks.map((c) => c.id), ALL_CHECKS);
      for (const c of r.checks) assert.equal(c.status, 'ok', `${c.id}: ${c.message}`);
      assert.match(check(r, 'engine.probe').message, new RegExp(`authorization denied by plugin ${name}: `));
      assert.deepEqual(await containerIds(engine), before);
      // The refusal really came from the plugin, for a host-userns create.
      const denials = plugin.records().filter((rec) => rec.decision === 'deny' && rec.rule === 'userns-host');
      assert.ok(denials.length >= 1, plugin.stderr());

      // The same verdicts as text: one line per check, no fix lines when all is well.
      const text = await runDoctor(args);
      assert.equal(text.code, 0, text.stdout);
      const lines = text.stdout.trimEnd().split('\n');
      assert.deepEqual(lines.slice(0, ALL_CHECKS.length).map((l) => /^ok {3}([\w.-]+): /.exec(l)?.[1]), ALL_CHECKS);
      assert.match(lines.at(-1)!, /^17 checks: 17 ok, 0 warn, 0 FAIL$/);
    });

    await t.test('no userns-remap in daemon.json', async () => {
      setUp();
      write(root, 'etc/docker/daemon.json', JSON.stringify({ 'authorization-plugins': [name] }));
      const r = await doctorJson(args);
      assert.equal(r.code, 1);
      assert.equal(r.ok, false);
      assert.equal(status(r, 'daemon-json.userns-remap'), 'fail');
      assert.match(check(r, 'daemon-json.userns-remap').fix, /"userns-remap": "default"/);
      assert.equal(status(r, 'engine.probe'), 'ok');
    });

    await t.test('plugin missing from daemon.json', async () => {
      setUp();
      write(root, 'etc/docker/daemon.json', JSON.stringify({ 'userns-remap': 'default', 'authorization-plugins': ['something-else'] }));
      const r = await doctorJson(args);
      assert.equal(r.code, 1);
      assert.equal(status(r, 'daemon-json.authorization-plugins'), 'fail');
      assert.match(check(r, 'daemon-json.authorization-plugins').message, /something-else/);
      assert.equal(status(r, 'daemon-json.userns-remap'), 'ok');
    });

    await t.test('daemon.json that does not parse', async () => {
      setUp();
      write(root, 'etc/docker/daemon.json', '{"userns-remap": "default",');
      const r = await doctorJson(args);
      assert.equal(r.code, 1);
      assert.equal(status(r, 'daemon-json'), 'fail');
      assert.match(check(r, 'daemon-json').message, /not valid JSON/);
    });

    await t.test('plugin socket with mode 0666', async () => {
      setUp();
      fs.chmodSync(plugin.socket, 0o666);
      const r = await runDoctor(args);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /^FAIL plugin\.socket: .*mode 0666, not 0600.*\n {5}fix: .*chmod 0600/m);
      // The plugin behind it still answers: that is reported separately.
      assert.match(r.stdout, /^ok {3}plugin\.activate: /m);
      fs.chmodSync(plugin.socket, 0o600);
    });

    await t.test('no subordinate range for dockremap', async () => {
      setUp();
      write(root, 'etc/subuid', 'alice:100000:65536\n');
      const r = await doctorJson(args);
      assert.equal(r.code, 1);
      assert.equal(status(r, 'subuid'), 'fail');
      assert.equal(status(r, 'subgid'), 'ok');
      // The fix names a block no one has.
      assert.match(check(r, 'subuid').fix, /dockremap:165536:65536/);
    });

    await t.test("dockremap's range overlapping another user's", async () => {
      setUp();
      write(root, 'etc/subgid', 'dockremap:100000:65536\nstaff:150000:65536\n');
      const r = await doctorJson(args);
      assert.equal(r.code, 1);
      assert.equal(status(r, 'subgid'), 'fail');
      assert.match(check(r, 'subgid').message, /overlaps staff/);
    });

    await t.test('plugins the engine discovers that do not answer', async () => {
      setUp();
      write(root, 'etc/docker/plugins/live.spec', `unix://${plugin.socket}\n`);
      write(root, 'etc/docker/plugins/dead.spec', `unix://${path.join(root, 'nobody-here.sock')}\n`);
      write(root, 'usr/lib/docker/plugins/remote/remote.json', JSON.stringify({ Name: 'remote', Addr: 'tcp://192.0.2.1:9999' }));
      // A socket file whose listener is gone, as a crashed plugin leaves it.
      const ghost = path.join(root, 'run/docker/plugins/ghost/ghost.sock');
      fs.mkdirSync(path.dirname(ghost), { recursive: true });
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(path.join(root, 'listening.sock'), resolve));
      fs.renameSync(path.join(root, 'listening.sock'), ghost);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      try {
        const r = await doctorJson(args);
        const c = check(r, 'engine.plugin-discovery');
        assert.equal(c.status, 'warn', c.message);
        assert.equal(r.code, 0, 'a warning is not a failure');
        assert.match(c.message, /2 plugin\(s\) that do not answer/);
        assert.match(c.message, /dead\.spec \(no socket at /);
        assert.match(c.message, /ghost\.sock \(nothing listens on /);
        assert.doesNotMatch(c.message, /live\.spec|remote\.json/);
        assert.match(c.message, /--lookup-timeout/);
        assert.match(c.fix, /ghost\.sock .*dead\.spec/);
      } finally {
        for (const f of ['etc/docker/plugins', 'usr/lib/docker/plugins', 'run/docker/plugins']) fs.rmSync(path.join(root, f), { recursive: true, force: true });
      }
      assert.equal(status(await doctorJson(args), 'engine.plugin-discovery'), 'ok');
    });

    await t.test('plugin socket missing', async () => {
      setUp();
      const r = await doctorJson([...args.slice(0, -4), '--socket', path.join(root, 'absent.sock'), '--plugin-name', name]);
      assert.equal(r.code, 1);
      assert.equal(status(r, 'plugin.socket'), 'fail');
      assert.equal(r.checks.some((c) => c.id === 'plugin.activate'), false);
    });
  });
}

for (const build of buildsForTests()) {
  test(`doctor against a real engine without the plugin ${engineTitle(build)}: the probe is not refused`, async (t) => {
    if (skipUnless(t, engineSkipReason(build))) return;
    const plugin = await startPlugin();
    t.after(() => plugin.stop());
    // The plugin runs and daemon.json names it, but this engine was started without it.
    const engine = await startEngine({ build });
    t.after(() => engine.stop());
    const root = makeTempDir('ug-doctor-');
    t.after(() => fs.rmSync(root, { recursive: true, force: true }));
    write(root, 'etc/docker/daemon.json', JSON.stringify({ 'userns-remap': 'default', 'authorization-plugins': ['userns-guard'] }));
    write(root, 'etc/subuid', 'dockremap:100000:65536\n');
    write(root, 'etc/subgid', 'dockremap:100000:65536\n');
    const args = ['--root', root, '--docker-host', engine.host, '--socket', plugin.socket];
    const before = await containerIds(engine);

    await t.test('with a probe image that does not exist', async () => {
      const r = await doctorJson(args);
      assert.equal(r.code, 1);
      assert.equal(status(r, 'engine.userns'), 'ok');
      assert.equal(status(r, 'engine.authz'), 'fail');
      assert.equal(status(r, 'engine.probe'), 'fail');
      assert.match(check(r, 'engine.probe').message, /^THE ENGINE ACCEPTED A CREATE IN THE HOST USER NAMESPACE/);
      assert.equal(status(r, 'engine.probe.bind-source'), 'fail');
      assert.match(check(r, 'engine.probe.bind-source').message, /^THE ENGINE ACCEPTED A CREATE WHOSE START WOULD MAKE A DIRECTORY IN \/root/);
      assert.deepEqual(await containerIds(engine), before);
    });

    await t.test('with an image that exists: the created container is removed', async () => {
      const r = await runDoctor([...args, '--probe-image', engine.image]);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /^FAIL engine\.probe: THE ENGINE CREATED A CONTAINER IN THE HOST USER NAMESPACE: .*removed it again/m);
      assert.match(r.stdout, /^FAIL engine\.probe\.bind-source: THE ENGINE CREATED A CONTAINER WHOSE START WOULD MAKE A DIRECTORY IN \/root: .*removed it again/m);
      assert.deepEqual(await containerIds(engine), before);
      assert.deepEqual(await engine.hostUsernsContainers(), []);
    });
  });
}

test('doctor with no engine at the address', async (t) => {
  const root = makeTempDir('ug-doctor-');
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const r = await doctorJson(['--root', root, '--docker-host', `unix://${root}/no-engine.sock`]);
  assert.equal(r.code, 1);
  assert.equal(status(r, 'daemon-json'), 'fail');
  assert.equal(status(r, 'engine.api'), 'fail');
  assert.equal(r.checks.some((c) => c.id === 'engine.probe'), false);
});

// The kernel is always the running one, so its variants are checked on the
// pure function that judges the facts.
test('kernel check verdicts', () => {
  const facts = { maxUserNamespaces: '15000\n', hasUserNamespaces: true, enableParameter: null, cmdline: 'quiet' };
  assert.equal(kernelCheck(facts).status, 'ok');
  assert.equal(kernelCheck({ ...facts, maxUserNamespaces: '0\n' }).status, 'fail');
  assert.equal(kernelCheck({ ...facts, maxUserNamespaces: null, hasUserNamespaces: false }).status, 'fail');
  // RHEL 7: gated behind a boot parameter that is off by default.
  const off = kernelCheck({ ...facts, enableParameter: 'N\n' });
  assert.equal(off.status, 'fail');
  assert.match(off.message, /user_namespace\.enable=N/);
  assert.match(off.fix, /user_namespace\.enable=1/);
  assert.equal(kernelCheck({ ...facts, cmdline: 'ro user_namespace.enable=0' }).status, 'fail');
  assert.equal(kernelCheck({ ...facts, enableParameter: 'Y\n', cmdline: 'user_namespace.enable=1' }).status, 'ok');
  assert.match(kernelCheck({ ...facts, maxUserNamespaces: '0', enableParameter: 'Y' }).message, /user_namespace\.enable/);
});

test('subordinate id and socket verdicts', () => {
  const ids = new Map([['dockremap', '102']]);
  const base = { kind: 'subuid' as const, path: '/etc/subuid', owner: 'dockremap', ids };
  assert.equal(subIdCheck({ ...base, text: '102:100000:65536\n' }).status, 'ok', 'a range keyed by uid counts');
  assert.equal(subIdCheck({ ...base, text: 'dockremap:100000:1000\n' }).status, 'fail');
  assert.equal(subIdCheck({ ...base, text: null }).status, 'fail');
  assert.equal(socketCheck({ path: '/s', stat: { isSocket: true, uid: 1000, mode: 0o140600 } }).status, 'fail');
  assert.equal(socketCheck({ path: '/s', stat: { isSocket: false, uid: 0, mode: 0o100600 } }).status, 'fail');
  assert.equal(socketCheck({ path: '/s', stat: { isSocket: true, uid: 0, mode: 0o140600 } }).status, 'ok');
});
