// --allow-user on a real TLS engine: the engine itself names the caller from
// a client certificate made here. The exempt user's own calls pass; the
// host-userns container they made is refused to everyone else, judged by
// what a process in it reads from /proc/self/uid_map.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { buildsForTests, engineSkipReason, engineTitle, startEngine } from './lib/engine.ts';
import { makeTempDir, startPlugin } from './lib/plugin.ts';
import { skipUnless } from './lib/prereq.ts';
import { freePort, makePki, opensslMissing } from './lib/tls.ts';

const HOST_UID_MAP = /^\s*0\s+0\s+4294967295\s*$/m;

for (const build of buildsForTests()) {
  test(`an exempt user keeps the exemption for their own calls only ${engineTitle(build)}`, { timeout: 120_000 }, async (t) => {
    if (skipUnless(t, engineSkipReason(build) ?? opensslMissing())) return;
    const dir = makeTempDir('ug-e2e-tls-');
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const pki = makePki(dir, ['alice', 'bob']);
    const port = await freePort();
    const guard = await startPlugin({ args: ['--allow-user', 'alice'] });
    const engine = await startEngine({
      build,
      authzPlugins: [{ socket: guard.socket }],
      apiSocket: guard.engineSocket,
      extraArgs: ['--tlsverify', '--tlscacert', pki.ca, '--tlscert', pki.serverCert, '--tlskey', pki.serverKey, '-H', `tcp://127.0.0.1:${port}`],
    });
    t.after(async () => {
      await engine.stop();
      await guard.stop();
    });
    const as = (user: string, args: string[]) => {
      const c = pki.client(user);
      return engine.docker(['-H', `tcp://127.0.0.1:${port}`, '--tlsverify', '--tlscacert', pki.ca, '--tlscert', c.cert, '--tlskey', c.key, ...args]);
    };
    const img = engine.image;

    const made = await as('alice', ['run', '-d', '--name', 'alice-hu', '--userns=host', img, 'sleep', '600']);
    assert.equal(made.code, 0, made.stderr);
    const id = made.stdout.trim();
    assert.deepEqual(await engine.hostUsernsContainers(), ['alice-hu']);

    const own = await as('alice', ['exec', 'alice-hu', 'cat', '/proc/self/uid_map']);
    assert.equal(own.code, 0, own.stderr);
    assert.match(own.stdout, HOST_UID_MAP, 'alice, exempt, really runs as host root');

    for (const [who, run] of [
      ['bob', (args: string[]) => as('bob', args)],
      ['the unix socket', (args: string[]) => engine.docker(args)],
    ] as const) {
      const r = await run(['exec', 'alice-hu', 'cat', '/proc/self/uid_map']);
      assert.notEqual(r.code, 0, `${who} exec'd into alice's host-userns container`);
      assert.doesNotMatch(r.stdout, HOST_UID_MAP);
      assert.match(r.stderr, /runs in the host user namespace/);
      const cp = await run(['cp', 'alice-hu:/proc/self/uid_map', '-']);
      assert.notEqual(cp.code, 0, `${who} copied out of alice's container`);
      const restart = await run(['restart', 'alice-hu']);
      assert.notEqual(restart.code, 0);
    }
    const bobHost = await as('bob', ['run', '--rm', '--userns=host', img, 'true']);
    assert.notEqual(bobHost.code, 0);
    assert.match(bobHost.stderr, /host user namespace is not allowed/);

    const records = guard.records();
    assert.ok(records.some((r) => r.user === 'alice' && r.rule === 'host-userns-container' && r.reason?.toString().startsWith('exempt user')));
    const bobDenied = records.find((r) => r.user === 'bob' && r.rule === 'host-userns-container' && r.decision === 'deny');
    assert.ok(bobDenied, 'bob\'s refusal is in the audit log');
    assert.equal(bobDenied!.container, id);
  });
}
