// Crashes under load, the way systemd runs the plugin: a holder keeps the
// listening socket and restarts the plugin on it (socket activation), while a
// real engine creates containers through it and the plugin is SIGKILLed every
// few hundred milliseconds. Judged by what the engine did, not by answers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { buildsForTests, engineSkipReason, engineTitle, startEngine, type Engine } from './lib/engine.ts';
import { BINARY, makeTempDir, waitFor } from './lib/plugin.ts';
import { skipUnless } from './lib/prereq.ts';
import { readsTopLevelHostConfig } from './lib/engineBehaviour.ts';
import { startSocketHolder, type SocketHolder } from './lib/socketActivation.ts';

const LOAD_MS = 20_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Every spelling the engine (20.10) turns into HostConfig.UsernsMode=host.
// Index of the one 28.x no longer reads (see test/lib/engineBehaviour.ts).
const TOP_LEVEL_SPELLING = 2;
const HOST_USERNS_BODIES: ((image: string) => string)[] = [
  (image) => JSON.stringify({ Image: image, Cmd: ['true'], HostConfig: { UsernsMode: 'host' } }),
  // Go matches JSON keys case-insensitively.
  (image) => JSON.stringify({ image, cmd: ['true'], hostconfig: { usernsmode: 'host' } }),
  // The deprecated top-level HostConfig fields, used when there is no HostConfig.
  (image) => JSON.stringify({ Image: image, Cmd: ['true'], UsernsMode: 'host' }),
  // Duplicate keys: Go keeps the last.
  (image) => `{"Image":${JSON.stringify(image)},"Cmd":["true"],"HostConfig":{"UsernsMode":"","UsernsMode":"host"}}`,
  // U+017F folds to 's' in Go's key matching.
  (image) => `{"Image":${JSON.stringify(image)},"Cmd":["true"],"HostConfig":{"U\u017fernsMode":"host"}}`,
];
const BENIGN_BODY = (image: string) => JSON.stringify({ Image: image, Cmd: ['true'] });

interface Attempt {
  readonly name: string;
  readonly hostile: boolean;
  readonly start: number;
  end: number;
  status: number;
  body: string;
}

async function create(engine: Engine, name: string, body: string): Promise<{ status: number; body: string }> {
  try {
    return await engine.request('POST', `/v1.41/containers/create?name=${name}`, {
      headers: { 'Content-Type': 'application/json' },
      body,
      timeoutMs: 60_000,
    });
  } catch (err) {
    return { status: 0, body: String(err) };
  }
}

for (const build of buildsForTests()) {
  test(`SIGKILLed under load with socket activation ${engineTitle(build)}: nothing slips through, benign calls wait`, async (t) => {
    if (skipUnless(t, engineSkipReason(build))) return;
    const dir = makeTempDir('ug-faults-');
    let holder: SocketHolder | null = null;
    let engine: Engine | null = null;
    // One hook, in this order: the engine removes its containers through the
    // plugin, so the plugin (and its socket in `dir`) must outlive it.
    t.after(async () => {
      await engine?.stop();
      await holder?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    const apiSocket = path.join(dir, 'engine.sock');
    holder = await startSocketHolder({ socket: path.join(dir, 'plugin.sock'), binary: BINARY, restartDelayMs: 100, args: ['--engine-socket', apiSocket] });
    await holder.nextStart(null);
    engine = await startEngine({ build, authzPlugins: [{ socket: holder.socket }], apiSocket });
    const [h, e] = [holder, engine];

    await t.test('the plugin runs socket-activated and enforces', async () => {
      await waitFor(() => h.stderr().includes('userns-guard started'), 10_000, () => h.stderr());
      const startup = h.stderr().split('\n').filter((l) => l.includes('userns-guard started')).map((l) => JSON.parse(l));
      assert.equal(startup[0].socket, 'socket activation');
      const refused = await create(e, 'preflight-host', HOST_USERNS_BODIES[0]!(e.image));
      assert.equal(refused.status, 403, refused.body);
      assert.match(refused.body, /authorization denied by plugin/);
      const ok = await create(e, 'preflight-benign', BENIGN_BODY(e.image));
      assert.equal(ok.status, 201, ok.body);
    });

    await t.test('calls made while the plugin is down wait for the restart and succeed', async () => {
      // Hold the plugin down for a second after each kill: long enough for the
      // engine to drop its dead pooled connection (a call made on that one is
      // "in flight at a kill", re-sent empty and refused), and for the call
      // to be made inside the gap on any machine load.
      h.setRestartDelay(1_000);
      try {
        for (let i = 0; i < 3; i++) {
          const before = h.current();
          assert.ok(h.kill(), 'no plugin to kill');
          await sleep(300);
          const started = Date.now();
          const r = await create(e, `during-restart-${i}`, BENIGN_BODY(e.image));
          assert.equal(r.status, 201, r.body);
          assert.notEqual(h.current(), before, 'the call did not span a restart');
          t.diagnostic(`call during restart ${i}: ${Date.now() - started} ms`);
        }
      } finally {
        h.setRestartDelay(100);
      }
    });

    await t.test(`creates under SIGKILL every few hundred ms for ${LOAD_MS / 1000} s`, async () => {
      const attempts: Attempt[] = [];
      const kills: number[] = [];
      const deadline = Date.now() + LOAD_MS;

      const killer = (async () => {
        while (Date.now() < deadline) {
          // Kill only a plugin that is up, a random while after it started.
          await sleep(150 + Math.random() * 300);
          if (Date.now() >= deadline) break;
          const victim = h.current();
          if (h.kill()) {
            kills.push(Date.now());
            await h.nextStart(victim);
          }
        }
      })();

      let i = 0;
      while (Date.now() < deadline) {
        const hostile = i % 2 === 1;
        const name = `${hostile ? 'hostile' : 'benign'}-${i}`;
        const body = hostile
          ? HOST_USERNS_BODIES[((i - 1) / 2) % HOST_USERNS_BODIES.length]!(e.image)
          : BENIGN_BODY(e.image);
        const attempt: Attempt = { name, hostile, start: Date.now(), end: 0, status: 0, body: '' };
        attempts.push(attempt);
        const r = await create(e, name, body);
        attempt.end = Date.now();
        attempt.status = r.status;
        attempt.body = r.body;
        i++;
      }
      await killer;

      const hostileCreated = attempts.filter((a) => a.hostile && a.status === 201);
      const benign = attempts.filter((a) => !a.hostile);
      const benignFailed = benign.filter((a) => a.status !== 201);
      // A call can only be lost to a kill it overlapped; 50 ms of slack for the
      // engine noticing that a pooled connection died with the plugin.
      const overlapsKill = (a: Attempt) => kills.some((k) => a.start <= k + 50 && k <= a.end);
      t.diagnostic(
        `kills: ${kills.length}, plugin starts: ${h.starts()}, creates: ${attempts.length} ` +
          `(${benign.length} benign, ${attempts.length - benign.length} host-userns), ` +
          `benign failed: ${benignFailed.length}, host-userns created: ${hostileCreated.length}`,
      );
      for (const a of benignFailed) t.diagnostic(`benign failure ${a.name}: ${a.status} ${a.body.trim()}`);

      assert.ok(kills.length >= 20, `only ${kills.length} kills`);
      assert.ok(benign.length >= 20, `only ${benign.length} benign creates`);
      assert.deepEqual(hostileCreated.map((a) => a.name), [], 'host-userns creates answered 201');
      assert.deepEqual(await e.hostUsernsContainers(), [], 'host-userns containers exist');
      assert.ok(benignFailed.length <= kills.length, `${benignFailed.length} benign failures for ${kills.length} kills`);
      assert.deepEqual(benignFailed.filter((a) => !overlapsKill(a)).map((a) => a.name), [], 'benign creates failed with no kill in flight');
      // Every benign create that answered 201 really exists.
      const names = new Set((await e.inspectAll()).map((c) => String(c.Name).replace(/^\//, '')));
      assert.deepEqual(benign.filter((a) => a.status === 201 && !names.has(a.name)).map((a) => a.name), []);
    });

    await t.test('control: without enforcement every spelling the engine reads does reach the host user namespace', async () => {
      // Same socket path, plugin in --audit-only: the engine now gets every
      // create through, which shows the spellings above are not harmless.
      await h.stop();
      holder = await startSocketHolder({ socket: h.socket, binary: BINARY, args: ['--audit-only', '--engine-socket', apiSocket] });
      await holder.nextStart(null);
      const names = HOST_USERNS_BODIES.map((_, n) => `control-${n}`);
      for (const [n, body] of HOST_USERNS_BODIES.entries()) {
        const r = await create(e, names[n]!, body(e.image));
        assert.equal(r.status, 201, `spelling ${n}: ${r.body}`);
      }
      // On an engine that ignores the top-level fields that spelling makes a
      // remapped container, so it is harmless there: the others must be real.
      const real = readsTopLevelHostConfig(e) ? names : names.filter((_, n) => n !== TOP_LEVEL_SPELLING);
      if (real.length < names.length) t.diagnostic(`${engineTitle(build)} ignores the top-level UsernsMode spelling`);
      assert.deepEqual((await e.hostUsernsContainers()).sort(), real.sort());
    });

    await t.test('exec under SIGKILL with lookups in flight: never into a host-userns container, benign execs wait', async () => {
      // Under --audit-only: one running container in the host user namespace,
      // one remapped.
      for (const [name, extra] of [['lk-host', { UsernsMode: 'host' }], ['lk-ok', {}]] as const) {
        const r = await create(e, name, JSON.stringify({ Image: e.image, Cmd: ['sleep', '600'], HostConfig: extra }));
        assert.equal(r.status, 201, r.body);
        const started = await e.request('POST', `/containers/${name}/start`);
        assert.equal(started.status, 204, started.body);
      }
      await holder!.stop();
      holder = await startSocketHolder({ socket: h.socket, binary: BINARY, restartDelayMs: 100, args: ['--engine-socket', apiSocket] });
      await holder.nextStart(null);
      const k = holder;
      let hostRoot = 0;
      let benign = 0;
      const benignFailed: string[] = [];
      const MIN_BENIGN = 10;
      const deadline = Date.now() + LOAD_MS / 2;
      // An exec a kill cut off waits for the engine's backoff before it is
      // sent again, so some rounds leave too few execs to judge by the
      // deadline: then the load goes on, up to three times as long.
      const lastDeadline = Date.now() + (3 * LOAD_MS) / 2;
      const loading = () => Date.now() < deadline || (benign < MIN_BENIGN && Date.now() < lastDeadline);
      const kills: number[] = [];
      const killer = (async () => {
        while (loading()) {
          await sleep(150 + Math.random() * 300);
          const victim = k.current();
          if (loading() && k.kill()) {
            kills.push(Date.now());
            await k.nextStart(victim);
          }
        }
      })();
      const client = async (target: string) => {
        while (loading()) {
          const r = await e.docker(['exec', target, 'cat', '/proc/self/uid_map'], { timeoutMs: 30_000 });
          if (target === 'lk-host' && /^\s*0\s+0\s+4294967295/m.test(r.stdout)) hostRoot++;
          if (target === 'lk-ok') {
            benign++;
            if (r.code !== 0) benignFailed.push(r.stderr.trim());
          }
        }
      };
      await Promise.all([killer, client('lk-host'), client('lk-host'), client('lk-ok'), client('lk-ok')]);
      t.diagnostic(`kills: ${kills.length}, benign execs: ${benign}, failed: ${benignFailed.length}`);
      for (const f of benignFailed) t.diagnostic(`benign failure: ${f}`);
      assert.ok(kills.length >= 10, `only ${kills.length} kills`);
      assert.equal(hostRoot, 0, 'an exec ran as host root');
      assert.ok(benign >= MIN_BENIGN, `only ${benign} benign execs`);
      // An exec is two calls (create, start), each can meet one kill.
      assert.ok(benignFailed.length <= 2 * kills.length, `${benignFailed.length} benign failures for ${kills.length} kills`);
      assert.ok(benignFailed.length < benign, 'no benign exec got through');
    });
  });
}
