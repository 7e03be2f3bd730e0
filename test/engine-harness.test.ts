// Proves the real-engine harness does what later tests rely on, on every
// engine: a userns-remapped engine, a way to spot host-userns containers, raw
// socket access, clean teardown, and the engine's own API versions.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { buildsForTests, compareVersions, EXPECTED_ENGINES, engineBuilds, engineTitle, requireEngineOrSkip, startEngine } from './lib/engine.ts';
import { targetApiVersion } from './lib/engineBehaviour.ts';

test('engineBuilds: oldest first, each with its own dockerd and docker CLI', (t) => {
  const builds = engineBuilds();
  t.diagnostic(`engines: ${builds.map(engineTitle).join(' ')}`);
  const versions = builds.map((b) => b.version);
  assert.deepEqual(versions, [...versions].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })));
  if (process.env.CI === 'true') assert.deepEqual(versions.filter((v) => (EXPECTED_ENGINES as readonly string[]).includes(v)), [...EXPECTED_ENGINES]);
  for (const b of builds) {
    assert.equal(engineTitle(b), `[dockerd ${b.version}]`);
    assert.ok(existsSync(b.dockerd), b.dockerd);
    assert.ok(existsSync(b.docker), b.docker);
  }
});

for (const build of buildsForTests()) {
  test(`engine harness ${engineTitle(build)}: remapped engine, host-userns detection, raw socket, teardown`, async (t) => {
    if (!requireEngineOrSkip(t, build)) return;
    const engine = await startEngine({ build });
    t.after(() => engine.stop()); // also runs if an assertion below fails

    await t.test('the engine is the build asked for, and the CLI talks to it', async () => {
      assert.equal(engine.build, build);
      const r = await engine.docker(['version', '--format', '{{.Server.Version}} {{.Server.APIVersion}}']);
      assert.equal(r.code, 0, r.stderr);
      const [server, api] = r.stdout.trim().split(' ');
      assert.match(server!, new RegExp(`^${build.version.replaceAll('.', '\\.')}\\b`));
      assert.equal(api, engine.apiVersion);
      assert.match(engine.apiVersion, /^1\.\d+$/);
      assert.match(engine.minApiVersion, /^1\.\d+$/);
    });

    await t.test('docker info reports userns', async () => {
      const r = await engine.docker(['info', '--format', '{{json .SecurityOptions}}']);
      assert.equal(r.code, 0, r.stderr);
      const opts: string[] = JSON.parse(r.stdout);
      assert.ok(opts.includes('name=userns'), `SecurityOptions: ${r.stdout}`);
    });

    await t.test('default containers are remapped', async () => {
      const r = await engine.docker(['run', '--rm', engine.image, 'cat', '/proc/self/uid_map']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split(/\s+/), ['0', '100000', '65536']);
    });

    await t.test('--userns=host containers are found', async () => {
      const name = 'hostns';
      const r = await engine.docker(['run', '--name', name, '--userns=host', engine.image, 'cat', '/proc/self/uid_map']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split(/\s+/), ['0', '0', '4294967295']);
      assert.deepEqual(await engine.hostUsernsContainers(), [name]);
      assert.equal((await engine.inspectAll()).length, 1);
    });

    await t.test('raw() talks to the socket', async () => {
      const reply = await engine.raw('GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n');
      assert.match(reply, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(reply, /\r\n\r\nOK$/);
    });

    await t.test('stop() leaves nothing behind', async () => {
      await engine.stop();
      assert.equal(existsSync(`/proc/${engine.pid}`), false, 'dockerd still running');
      assert.equal(existsSync(engine.dir), false, 'temp dir still there');
      const left = leftovers(engine.dir);
      assert.deepEqual(left, [], 'processes naming the engine dir survived');
    });
  });
}

function leftovers(dir: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(`${dir}/`)) out.push(`${pid}: ${cmd.replaceAll('\0', ' ')}`);
    } catch { /* exited meanwhile */ }
  }
  return out;
}

test('engine behaviour table: API versions in request-targets, version order', () => {
  assert.equal(targetApiVersion('/v1.23/containers/x/start'), '1.23');
  assert.equal(targetApiVersion('/v1.023/containers/x/start'), '1.023');
  assert.equal(targetApiVersion('http://u@docker:1/v1.12/containers/create'), '1.12');
  assert.equal(targetApiVersion('/containers/create'), null);
  assert.equal(targetApiVersion('/%761%2E41/containers/create'), null);
  assert.ok(compareVersions('1.023', '1.24') < 0);
  assert.ok(compareVersions('1.41', '1.24') > 0);
  assert.ok(compareVersions('28.5.2', '26.1.5') > 0);
  assert.equal(compareVersions('1.24', '1.24.0'), 0);
});
