// How big a create body each engine lets an authorization plugin see, and
// what userns-guard does with it: a benign create with a large label, just
// over 1 MiB and just over 4 MiB, through the default plugin, on every engine.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { buildsForTests, engineSkipReason, engineTitle, startEngine, type Engine } from './lib/engine.ts';
import { bodyForwarding } from './lib/engineBehaviour.ts';
import { BINARY, startPlugin, type PluginProcess } from './lib/plugin.ts';
import { skipUnless } from './lib/prereq.ts';

for (const build of buildsForTests()) {
  test(`create body size limits ${engineTitle(build)}: what the plugin sees and answers`, async (t) => {
    if (skipUnless(t, engineSkipReason(build))) return;
    if (skipUnless(t, existsSync(BINARY) ? null : `${BINARY} is missing: run npm run build`)) return;
    let plugin: PluginProcess | null = null;
    let engine: Engine | null = null;
    t.after(async () => {
      await engine?.stop();
      await plugin?.stop();
    });
    plugin = await startPlugin();
    engine = await startEngine({ build, authzPlugins: [{ socket: plugin.socket }], apiSocket: plugin.engineSocket });
    const [e, p] = [engine, plugin];

    for (const [label, padBytes] of [['512 KiB', 512 << 10], ['just over 1 MiB', (1 << 20) + 4096], ['just over 4 MiB', (4 << 20) + 4096]] as const) {
      await t.test(`a benign create with a ${label} label`, async () => {
        const name = `big-${padBytes}`;
        const body = JSON.stringify({ Image: e.image, Cmd: ['true'], Labels: { pad: 'x'.repeat(padBytes) } });
        const seen = p.records().length;
        const res = await e.request('POST', `/v1.41/containers/create?name=${name}`, {
          headers: { 'Content-Type': 'application/json' }, body, timeoutMs: 60_000,
        });
        const how = bodyForwarding(e, Buffer.byteLength(body));
        t.diagnostic(`${engineTitle(build)} ${Buffer.byteLength(body)} bytes: ${how}, answered ${res.status}`);
        const exists = (await e.request('GET', `/v1.41/containers/${name}/json`)).status === 200;
        if (how === 'forwarded') {
          assert.equal(res.status, 201, res.body);
          assert.ok(exists);
        } else if (how === 'dropped') {
          // userns-guard refuses a create whose body it did not see.
          assert.equal(res.status, 403, res.body);
          assert.match(res.body, /its body was not visible to userns-guard/);
          assert.ok(!exists);
        } else {
          assert.equal(res.status, 500, res.body);
          assert.match(res.body, /request body too large for authorization plugin/);
          assert.ok(!exists);
          // Refused before the plugin was asked.
          await new Promise((r) => setTimeout(r, 200));
          assert.deepEqual(p.records().slice(seen).filter((x) => String(x.uri).includes(name)), []);
        }
      });
    }
  });
}
