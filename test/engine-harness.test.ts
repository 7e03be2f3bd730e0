// Proves the real-engine harness does what later tests rely on: a userns-remapped
// engine, a way to spot host-userns containers, raw socket access, clean teardown.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { requireEngineOrSkip, startEngine } from './lib/engine.ts';

test('engine harness: remapped engine, host-userns detection, raw socket, teardown', async (t) => {
  if (!requireEngineOrSkip(t)) return;
  const engine = await startEngine();
  t.after(() => engine.stop()); // also runs if an assertion below fails

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
  });
});
