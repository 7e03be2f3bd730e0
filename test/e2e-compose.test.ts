// Ordinary work through userns-guard in its default mode, on every engine,
// with the tools people use on top of the engine: a small docker compose v2
// project (trixie's docker-compose 2.26) goes up, scales, execs, copies a file
// in and out of a named volume and goes down; `docker buildx build` (trixie's
// docker-buildx 0.13) builds an image with a RUN step on the default BuildKit
// builder. Judged by what the engine did, and by the plugin refusing nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildsForTests, cliPluginsDir, engineSkipReason, engineTitle, startEngine, type Engine } from './lib/engine.ts';
import { BINARY, makeTempDir, startPlugin, type PluginProcess } from './lib/plugin.ts';
import { skipUnless } from './lib/prereq.ts';

const REMAPPED_UID_MAP = '0 100000 65536';
const PROJECT = 'ugc';

// network_mode none: the engines run with --bridge=none, and a compose
// default network would be a bridge on the host.
const COMPOSE_YAML = (image: string) => `services:
  app:
    image: ${image}
    command: ["sleep", "600"]
    network_mode: none
    volumes:
      - data:/data
volumes:
  data: {}
`;

const norm = (s: string) => s.trim().split(/\s+/).join(' ');

for (const build of buildsForTests()) {
  test(`compose and buildx through userns-guard ${engineTitle(build)}: ordinary work on the default plugin`, { timeout: 240_000 }, async (t) => {
    if (skipUnless(t, engineSkipReason(build))) return;
    if (skipUnless(t, existsSync(BINARY) ? null : `${BINARY} is missing: run npm run build`)) return;
    if (skipUnless(t, cliPluginsDir() === null ? 'the compose and buildx CLI plugins are missing: run .ci/fetch-engines' : null)) return;

    const work = makeTempDir('ug-compose-');
    let plugin: PluginProcess | null = null;
    let engine: Engine | null = null;
    // The engine first: it removes its containers through the plugin.
    t.after(async () => {
      await engine?.stop();
      await plugin?.stop();
      rmSync(work, { recursive: true, force: true });
    });
    plugin = await startPlugin();
    engine = await startEngine({ build, authzPlugins: [{ socket: plugin.socket }], apiSocket: plugin.engineSocket });
    const [e, p] = [engine, plugin];
    const docker = async (args: string[], timeoutMs = 120_000) => {
      const r = await e.docker(args, { cwd: work, timeoutMs });
      assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    const compose = (args: string[]) => docker(['compose', '-p', PROJECT, ...args]);
    const projectContainers = async () =>
      (await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${PROJECT}`])).split('\n').filter(Boolean);
    writeFileSync(join(work, 'compose.yaml'), COMPOSE_YAML(e.image));

    await t.test('the CLI plugins are the ones fetched', async () => {
      assert.match(await docker(['compose', 'version', '--short']), /^v?2\.26\./);
      assert.match(await docker(['buildx', 'version']), / v?0\.13\./);
    });

    await t.test('compose up', async () => {
      await compose(['up', '-d']);
      assert.equal((await projectContainers()).length, 1);
      assert.equal(await compose(['ps', '--format', '{{.State}}']), 'running');
    });

    await t.test('compose up --scale app=2', async () => {
      await compose(['up', '-d', '--scale', 'app=2']);
      const ids = await projectContainers();
      assert.equal(ids.length, 2);
      for (const id of ids) {
        assert.equal(await docker(['inspect', '-f', '{{.State.Running}}/{{.HostConfig.UsernsMode}}/', id]), 'true//');
      }
    });

    await t.test('compose exec runs remapped', async () => {
      for (const index of ['1', '2']) {
        assert.equal(norm(await compose(['exec', '-T', '--index', index, 'app', 'cat', '/proc/self/uid_map'])), REMAPPED_UID_MAP);
      }
      assert.equal(await compose(['exec', '-T', 'app', 'id', '-u']), '0');
    });

    await t.test('compose cp into and out of the named volume', async () => {
      writeFileSync(join(work, 'in.txt'), 'copied in\n');
      // One replica: without --index compose copies into every replica at
      // once, and two copies into one shared volume race on the file.
      await compose(['cp', '--index', '1', 'in.txt', 'app:/data/in.txt']);
      assert.equal(await compose(['exec', '-T', 'app', 'cat', '/data/in.txt']), 'copied in');
      // The other replica shares the volume.
      assert.equal(await compose(['exec', '-T', '--index', '2', 'app', 'cat', '/data/in.txt']), 'copied in');
      await compose(['exec', '-T', 'app', 'sh', '-c', 'echo made inside > /data/out.txt']);
      await compose(['cp', '--index', '1', 'app:/data/out.txt', 'out.txt']);
      assert.equal(readFileSync(join(work, 'out.txt'), 'utf8'), 'made inside\n');
    });

    await t.test('compose down -v removes the containers and the volume', async () => {
      await compose(['down', '-v', '--timeout', '1']);
      assert.deepEqual(await projectContainers(), []);
      assert.doesNotMatch(await docker(['volume', 'ls', '-q']), new RegExp(`^${PROJECT}_data$`, 'm'));
    });

    await t.test('buildx build with a RUN step on the default BuildKit builder', async () => {
      const ctx = join(work, 'ctx');
      rmSync(ctx, { recursive: true, force: true });
      mkdirSync(ctx);
      writeFileSync(join(ctx, 'Dockerfile'), `FROM ${e.image}\nRUN cat /proc/self/uid_map > /built\nCMD ["cat", "/built"]\n`);
      const builder = await docker(['buildx', 'inspect']);
      assert.match(builder, /^Driver:\s+docker$/m, builder);
      // --network=none: the engine runs with --bridge=none, and BuildKit's
      // default network for RUN steps is the bridge.
      await docker(['buildx', 'build', '--network=none', '-t', 'ugc-built:latest', ctx], 180_000);
      // The RUN step itself ran in the remapped user namespace.
      assert.equal(norm(await docker(['run', '--rm', 'ugc-built:latest'])), REMAPPED_UID_MAP);
    });

    await t.test('userns-guard refused nothing and no container has the host user namespace', async () => {
      assert.deepEqual(p.records().filter((r) => r.decision === 'deny'), []);
      assert.deepEqual(p.records().filter((r) => r.level === 'error'), []);
      assert.deepEqual(await e.hostUsernsContainers(), []);
    });
  });
}
