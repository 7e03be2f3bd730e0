// End to end: what a client of the Docker API sees. Three throwaway engines
// (test/lib/engine.ts) of one build run side by side, one without any authz
// plugin, one with the null plugin, one with userns-guard; rounds alternate
// between them so drift in the machine's state hits all three alike. run.ts
// does this on the system's engine and on the newest one (e2eBuilds()).

import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engineBuilds, engineSkipReason, startEngine, systemBuild, type Engine, type EngineBuild } from '../test/lib/engine.ts';
import { guardSpec, nullSpec, startPlugin, type Executables, type RunningPlugin } from './plugins.ts';
import { summarize, type Summary } from './stats.ts';
import type { RecordedCall } from './record-plugin.ts';

export interface E2eOptions {
  readonly rounds: number;
  readonly listPerRound: number;
  readonly createPerRound: number;
  readonly recorded: readonly RecordedCall[];
  readonly executables: Executables;
  readonly progress: (msg: string) => void;
  // Default: the system's engine.
  readonly build?: EngineBuild;
}

export interface E2eSetup {
  readonly name: 'none' | 'null' | 'userns-guard';
  list: Summary;
  create: Summary;
  // GET /containers/{name}/archive of a small file (docker cp out of a
  // running container): the call userns-guard looks up before it answers.
  archive: Summary;
}

export interface E2eResult {
  // dockerd version the three engines ran.
  readonly engine: string;
  readonly setups: E2eSetup[];
  readonly errors: number;
  readonly errorSamples: string[];
  // userns-guard refused a hostile create through the engine (sanity check).
  readonly hostileRefused: boolean;
}

export function e2eSkipReason(): string | null {
  return engineSkipReason();
}

/** The builds the end-to-end section runs on: the system's and the newest, oldest first. */
export function e2eBuilds(): EngineBuild[] {
  const all = engineBuilds();
  const picked = [systemBuild() ?? all[0], all.at(-1)].filter((b): b is EngineBuild => b !== undefined);
  return [...new Map(picked.map((b) => [b.version, b])).values()];
}

const API = '/v1.41';

interface Target {
  readonly name: E2eSetup['name'];
  readonly engine: Engine;
  readonly agent: http.Agent;
  readonly list: number[];
  readonly create: number[];
  readonly archive: number[];
}

export async function runE2e(opts: E2eOptions): Promise<E2eResult> {
  const createBody = recordedCreateBody(opts.recorded);
  const plugins: RunningPlugin[] = [];
  const engines: Engine[] = [];
  const errorSamples: string[] = [];
  let errors = 0;
  const fail = (what: string) => {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(what);
  };
  // The guarded engine's API socket, which the guard looks things up on.
  const apiDir = mkdtempSync(join(tmpdir(), 'ug-bench-api-'));
  const apiSocket = join(apiDir, 'engine.sock');
  try {
    const [nullPlugin, guard] = await Promise.all([
      startPlugin(nullSpec(opts.executables.node)),
      startPlugin(guardSpec(opts.executables.guard, ['--engine-socket', apiSocket])),
    ]);
    plugins.push(nullPlugin!, guard!);
    const build = opts.build ?? systemBuild() ?? undefined;
    const version = build?.version ?? 'unknown';
    opts.progress(`e2e: starting three dockerd ${version} engines (none, null, userns-guard)`);
    const started = await Promise.allSettled([
      startEngine({ build }),
      startEngine({ build, authzPlugins: [{ socket: nullPlugin!.socket }] }),
      startEngine({ build, authzPlugins: [{ socket: guard!.socket }], apiSocket }),
    ]);
    for (const s of started) if (s.status === 'fulfilled') engines.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    const names = ['none', 'null', 'userns-guard'] as const;
    const targets: Target[] = engines.map((engine, i) => ({
      name: names[i]!,
      engine,
      agent: new http.Agent({ keepAlive: true, maxSockets: 1 }),
      list: [],
      create: [],
      archive: [],
    }));

    opts.progress('e2e: a few containers in each engine (3 running, 2 created)');
    await Promise.all(targets.map((t) => seedContainers(t.engine)));

    const hostile = await call(targets[2]!, 'POST', `${API}/containers/create`, hostileBody(createBody));
    const hostileRefused = hostile.status === 403;

    // Warm-up, not counted: JIT, the engine's caches, keep-alive connections.
    for (const t of targets) await round(t, 20, 5, createBody, fail, false);
    for (let r = 0; r < opts.rounds; r++) {
      // Rotate the order so no engine always goes first.
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(r + i) % targets.length]!;
        await round(t, opts.listPerRound, opts.createPerRound, createBody, fail, true);
      }
      opts.progress(`e2e (dockerd ${version}): round ${r + 1}/${opts.rounds}`);
    }
    for (const t of targets) t.agent.destroy();
    return {
      engine: version,
      setups: targets.map((t) => ({ name: t.name, list: summarize(t.list), create: summarize(t.create), archive: summarize(t.archive) })),
      errors,
      errorSamples,
      hostileRefused,
    };
  } finally {
    await Promise.all(engines.map((e) => e.stop()));
    await Promise.all(plugins.map((p) => p.stop()));
    rmSync(apiDir, { recursive: true, force: true });
  }
}

// One round on one engine. A failure (an engine that stopped answering, say)
// is reported through `fail` and ends the round, not the benchmark.
async function round(
  t: Target,
  lists: number,
  creates: number,
  createBody: string,
  fail: (what: string) => void,
  record: boolean,
): Promise<void> {
  try {
    for (let i = 0; i < lists; i++) {
      const r = await call(t, 'GET', `${API}/containers/json`);
      if (r.status !== 200) fail(`${t.name}: GET /containers/json -> ${r.status} ${r.body.slice(0, 200)}`);
      else if (record) t.list.push(r.ms);
    }
    for (let i = 0; i < lists; i++) {
      const r = await call(t, 'GET', `${API}/containers/running-0/archive?path=%2Fbin%2Fecho`);
      if (r.status !== 200) fail(`${t.name}: GET /containers/running-0/archive -> ${r.status} ${r.body.slice(0, 200)}`);
      else if (record) t.archive.push(r.ms);
    }
    const ids: string[] = [];
    for (let i = 0; i < creates; i++) {
      const r = await call(t, 'POST', `${API}/containers/create`, createBody);
      if (r.status !== 201) {
        fail(`${t.name}: POST /containers/create -> ${r.status} ${r.body.slice(0, 200)}`);
        continue;
      }
      if (record) t.create.push(r.ms);
      ids.push((JSON.parse(r.body) as { Id: string }).Id);
    }
    // Removed outside the timed part, so every round starts from the same few containers.
    for (const id of ids) {
      const r = await call(t, 'DELETE', `${API}/containers/${id}?force=1`);
      if (r.status !== 204) fail(`${t.name}: DELETE container -> ${r.status} ${r.body.slice(0, 200)}`);
    }
  } catch (err) {
    fail(`${t.name}: ${(err as Error).message}`);
  }
}

async function seedContainers(engine: Engine): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const r = await engine.docker(['run', '-d', '--name', `running-${i}`, '--label', 'bench=1', engine.image, 'sleep', '3600']);
    if (r.code !== 0) throw new Error(`docker run failed: ${r.stderr}`);
  }
  for (let i = 0; i < 2; i++) {
    const r = await engine.docker(['create', '--name', `created-${i}`, '-e', 'A=1', engine.image, 'true']);
    if (r.code !== 0) throw new Error(`docker create failed: ${r.stderr}`);
  }
}

// The body the CLI sent for `docker create --label ... -e ... IMAGE sleep 600`,
// without a name so it can be created again and again.
function recordedCreateBody(recorded: readonly RecordedCall[]): string {
  for (const c of recorded) {
    if (c.path !== '/AuthZPlugin.AuthZReq') continue;
    const env = JSON.parse(c.body) as { RequestMethod: string; RequestUri: string; RequestBody?: string | null };
    if (env.RequestMethod !== 'POST' || !env.RequestUri.includes('/containers/create') || !env.RequestBody) continue;
    const body = JSON.parse(Buffer.from(env.RequestBody, 'base64').toString('utf8')) as { HostConfig?: { Binds?: unknown } };
    // Bind mounts name directories of the machine that made the recording.
    if (body.HostConfig?.Binds) continue;
    return JSON.stringify(body);
  }
  throw new Error('the recording holds no container create without bind mounts');
}

function hostileBody(createBody: string): string {
  const body = JSON.parse(createBody) as { HostConfig?: Record<string, unknown> };
  return JSON.stringify({ ...body, HostConfig: { ...body.HostConfig, UsernsMode: 'host' } });
}

function call(t: Target, method: string, path: string, body?: string): Promise<{ status: number; body: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'User-Agent': 'Docker-Client/20.10.24 (linux)' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    const t0 = performance.now();
    const req = http.request({ socketPath: t.engine.socket, agent: t.agent, method, path, headers, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - t0 }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}
