// The checks of `userns-guard doctor` that talk to running processes: the
// plugin on its socket, and the engine on the Docker API socket. The probe
// asks the engine for a host-userns container and must be refused; it never
// starts anything, and removes whatever the engine did create.

import { randomBytes } from 'node:crypto';
import { fail, ok, warn, type Check } from './doctorChecks.ts';
import { errorMessage } from '../engine/engineError.ts';
import { unixRequest, type UnixResponse } from '../engine/unixHttp.ts';
import { PLUGIN_PATHS } from '../engine/wire.ts';

// The handshake the engine starts every plugin with.
export function activate(socket: string, timeoutMs: number): Promise<UnixResponse> {
  return unixRequest(socket, 'POST', PLUGIN_PATHS.activate, {
    body: '',
    headers: { Accept: 'application/vnd.docker.plugins.v1.2+json' },
    timeoutMs,
  });
}

export async function activateCheck(socket: string): Promise<Check> {
  const id = 'plugin.activate';
  let r;
  try {
    r = await activate(socket, 5_000);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES') return fail(id, `cannot connect to ${socket}: permission denied`, 'run doctor as root (sudo userns-guard doctor)');
    if (code === 'ECONNREFUSED') {
      return fail(id, `nothing listens on ${socket} (a stale socket file?)`, 'systemctl restart userns-guard.socket; journalctl -u userns-guard shows why the plugin stopped');
    }
    return fail(id, `${socket} did not answer /Plugin.Activate: ${(err as Error).message}`, 'systemctl restart userns-guard.socket userns-guard.service; journalctl -u userns-guard -e');
  }
  let implementsAuthz = false;
  try {
    const parsed = JSON.parse(r.body) as { Implements?: unknown };
    implementsAuthz = Array.isArray(parsed.Implements) && parsed.Implements.includes('authz');
  } catch {
    // not JSON: reported below
  }
  if (r.status !== 200 || !implementsAuthz) {
    return fail(id, `${socket} answered /Plugin.Activate with ${r.status} ${r.body.trim().slice(0, 200)}, not an authz plugin`, `check what listens on ${socket}; it should be userns-guard`);
  }
  return ok(id, `${socket} answers /Plugin.Activate with authz`);
}

export interface EngineCheckOptions {
  readonly dockerHost: string;
  readonly pluginName: string;
  // Names the image in the probe create. By default one that does not exist:
  // the engine asks authorization plugins before it looks for the image, so
  // a refusal still shows, and a missed one cannot create anything.
  readonly probeImage?: string | undefined;
}

export async function engineChecks(opts: EngineCheckOptions): Promise<Check[]> {
  const socket = unixSocketOf(opts.dockerHost);
  if (socket === null) {
    return [fail('engine.api', `--docker-host ${opts.dockerHost} is not a unix:// address; doctor talks to the engine's local socket only`, 'pass --docker-host unix:///var/run/docker.sock')];
  }
  let info;
  try {
    info = await unixRequest(socket, 'GET', '/info', { timeoutMs: 15_000 });
  } catch (err) {
    return [fail('engine.api', `cannot reach the engine at ${opts.dockerHost}: ${(err as Error).message}`, 'systemctl start docker, or pass --docker-host unix:///path/to/docker.sock')];
  }
  if (info.status !== 200) {
    return [
      fail(
        'engine.api',
        `GET /info answered ${info.status}: ${errorMessage(info.body)}`,
        info.body.includes(opts.pluginName) ? 'the engine cannot reach the plugin: systemctl restart userns-guard.socket' : 'journalctl -u docker -e',
      ),
    ];
  }
  const parsed = parseInfo(info.body);
  const checks: Check[] = [ok('engine.api', `Docker ${parsed.version} answers on ${opts.dockerHost}`)];

  checks.push(
    parsed.securityOptions.some((o) => o.startsWith('name=userns'))
      ? ok('engine.userns', 'the engine runs with user namespace remapping (security option name=userns)')
      : fail('engine.userns', `the engine runs without userns-remap (security options: ${parsed.securityOptions.join(', ') || 'none'})`, 'set "userns-remap": "default" in daemon.json, then systemctl restart docker'),
  );
  checks.push(
    parsed.authorization.includes(opts.pluginName)
      ? ok('engine.authz', `the engine consults ${opts.pluginName} (authorization plugins: ${parsed.authorization.join(', ')})`)
      : fail(
          'engine.authz',
          `the engine does not consult ${opts.pluginName} (authorization plugins: ${parsed.authorization.join(', ') || 'none'})`,
          `add "${opts.pluginName}" to "authorization-plugins" in daemon.json, then systemctl restart docker`,
        ),
  );
  for (const probe of PROBES) checks.push(await probeCheck(socket, opts, probe));
  return checks;
}

// Each probe is a create the plugin must refuse, naming an image that does
// not exist unless --probe-image says otherwise.
interface Probe {
  readonly id: string;
  readonly what: string;
  // How a failure says what the engine did, in capitals.
  readonly created: string;
  readonly accepted: string;
  hostConfig(): Record<string, unknown>;
}

const PROBES: readonly Probe[] = [
  {
    id: 'engine.probe',
    what: 'a create with HostConfig.UsernsMode=host',
    created: 'A CONTAINER IN THE HOST USER NAMESPACE',
    accepted: 'A CREATE IN THE HOST USER NAMESPACE',
    hostConfig: () => ({ UsernsMode: 'host' }),
  },
  {
    // /root belongs to root, mode 0700: the containers' root could not make
    // a directory there, so the engine must not be let do it for them.
    id: 'engine.probe.bind-source',
    what: 'a create whose missing bind source the engine would make in /root',
    created: 'A CONTAINER WHOSE START WOULD MAKE A DIRECTORY IN /root',
    accepted: 'A CREATE WHOSE START WOULD MAKE A DIRECTORY IN /root',
    hostConfig: () => ({ Binds: [`/root/userns-guard-doctor-probe-${randomBytes(6).toString('hex')}/sub:/probe`] }),
  },
];

async function probeCheck(socket: string, opts: EngineCheckOptions, probe: Probe): Promise<Check> {
  const id = probe.id;
  const name = `userns-guard-doctor-probe-${randomBytes(6).toString('hex')}`;
  const image = opts.probeImage ?? `userns-guard-doctor-probe:absent-${randomBytes(6).toString('hex')}`;
  const body = JSON.stringify({
    Image: image,
    Cmd: ['true'],
    Labels: { 'userns-guard.doctor-probe': 'true' },
    HostConfig: probe.hostConfig(),
  });
  let r;
  try {
    r = await unixRequest(socket, 'POST', `/containers/create?name=${name}`, {
      body,
      headers: { 'Content-Type': 'application/json' },
      timeoutMs: 15_000,
    });
  } catch (err) {
    return fail(id, `the probe create got no answer: ${(err as Error).message}`, 'journalctl -u docker -e');
  }
  const message = errorMessage(r.body);
  // moby: "authorization denied by plugin %s: %s".
  const byUs = `plugin ${opts.pluginName}: `;
  if (r.status === 403 && message.includes(byUs)) {
    return ok(id, `${probe.what} was refused: ${message}`);
  }
  if (r.status === 403) {
    return warn(id, `${probe.what} was refused, but not by ${opts.pluginName}: ${message}`, `put "${opts.pluginName}" in "authorization-plugins" and check why the other plugin answered first`);
  }
  if (r.status === 201) {
    const removal = await removeProbe(socket, r.body, name);
    return fail(
      id,
      `THE ENGINE CREATED ${probe.created}: ${opts.pluginName} did not refuse it (${removal})`,
      `add "${opts.pluginName}" to "authorization-plugins", start userns-guard.socket and systemctl restart docker; then run doctor again`,
    );
  }
  if (r.status === 404) {
    return fail(
      id,
      `THE ENGINE ACCEPTED ${probe.accepted}: only the missing probe image stopped it (${message}); ${opts.pluginName} did not refuse it`,
      `add "${opts.pluginName}" to "authorization-plugins", start userns-guard.socket and systemctl restart docker; then run doctor again`,
    );
  }
  if (message.includes(opts.pluginName)) {
    return fail(id, `the engine could not consult ${opts.pluginName} (${r.status}: ${message}); it refuses every call until the plugin answers`, 'systemctl restart userns-guard.service; journalctl -u userns-guard -e');
  }
  return fail(id, `the probe create answered ${r.status}: ${message}; that does not show ${opts.pluginName} refusing it`, 'journalctl -u docker -e');
}

async function removeProbe(socket: string, createBody: string, name: string): Promise<string> {
  let idOrName = name;
  try {
    const created = JSON.parse(createBody) as { Id?: unknown };
    if (typeof created.Id === 'string' && /^[0-9a-f]+$/.test(created.Id)) idOrName = created.Id;
  } catch {
    // fall back to the name
  }
  try {
    const r = await unixRequest(socket, 'DELETE', `/containers/${idOrName}?force=1&v=1`, { timeoutMs: 30_000 });
    if (r.status === 204 || r.status === 200) return `removed it again: container ${idOrName.slice(0, 12)}, never started`;
    return `COULD NOT REMOVE IT: DELETE answered ${r.status}: ${errorMessage(r.body)}; run docker rm -f ${name}`;
  } catch (err) {
    return `COULD NOT REMOVE IT: ${(err as Error).message}; run docker rm -f ${name}`;
  }
}

function unixSocketOf(host: string): string | null {
  if (!host.startsWith('unix://')) return null;
  const p = host.slice('unix://'.length);
  return p.startsWith('/') ? p : null;
}

function parseInfo(body: string): { version: string; securityOptions: string[]; authorization: string[] } {
  let info: { ServerVersion?: unknown; SecurityOptions?: unknown; Plugins?: { Authorization?: unknown } } = {};
  try {
    info = JSON.parse(body) as typeof info;
  } catch {
    // an empty info fails the checks below, which is the truth
  }
  const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  return {
    version: typeof info.ServerVersion === 'string' ? info.ServerVersion : '(unknown version)',
    securityOptions: strings(info.SecurityOptions),
    authorization: strings(info.Plugins?.Authorization),
  };
}

// Asks the plugin itself to judge a start of a container that does not
// exist: it can only say so after looking it up on the engine, so the answer
// shows whether its lookups reach the engine from where it runs (its unit's
// sandbox included).
export async function lookupCheck(socket: string): Promise<Check> {
  const id = 'plugin.lookups';
  const name = `userns-guard-doctor-lookup-${randomBytes(6).toString('hex')}`;
  const envelope = JSON.stringify({ User: '', UserAuthNMethod: '', RequestMethod: 'POST', RequestUri: `/containers/${name}/start`, RequestBody: null, RequestHeaders: {} });
  let answer: { Allow?: unknown; Msg?: unknown };
  try {
    const r = await unixRequest(socket, 'POST', PLUGIN_PATHS.authzReq, { body: envelope, headers: { 'Content-Type': 'application/json' }, timeoutMs: 15_000 });
    answer = JSON.parse(r.body) as typeof answer;
  } catch (err) {
    return fail(id, `the plugin did not judge a lookup probe: ${(err as Error).message}`, 'journalctl -u userns-guard -e');
  }
  const msg = typeof answer.Msg === 'string' ? answer.Msg : '';
  if (answer.Allow === false && msg.includes('no such container')) {
    return ok(id, 'the plugin looks up containers on the engine (a probe start of a missing container was refused as missing)');
  }
  if (answer.Allow === false) {
    return fail(id, `the plugin cannot look things up on the engine: ${msg}`, 'check --engine-socket in the unit (systemctl cat userns-guard.service) and that the engine serves /run/docker.sock; until then starts, exec, attach and docker cp are refused');
  }
  return fail(id, `the plugin allowed a start of a container that does not exist (${msg || 'no message'})`, 'check that userns-guard, not another program, serves the plugin socket');
}

interface InspectedContainer {
  readonly Id: string;
  readonly Name: string;
  readonly HostConfig?: { UsernsMode?: string; RestartPolicy?: { Name?: string }; Binds?: string[] | null };
  readonly Mounts?: { Type?: string; Source?: string }[];
}

// Containers already on the engine that the plugin refuses to run, feed or
// start (host user namespace), and those whose restart policy will have the
// engine create a missing bind source as the remapped root with no API call.
export async function containerChecks(dockerHost: string, pathExists: (p: string) => boolean): Promise<Check[]> {
  const socket = unixSocketOf(dockerHost);
  if (socket === null) return [];
  let containers: InspectedContainer[];
  try {
    const list = await unixRequest(socket, 'GET', '/containers/json?all=1', { timeoutMs: 15_000 });
    if (list.status !== 200) throw new Error(`GET /containers/json answered ${list.status}: ${errorMessage(list.body)}`);
    const ids = (JSON.parse(list.body) as { Id: string }[]).map((c) => c.Id);
    containers = [];
    for (const cid of ids) {
      const r = await unixRequest(socket, 'GET', `/containers/${cid}/json`, { timeoutMs: 15_000 });
      if (r.status === 200) containers.push(JSON.parse(r.body) as InspectedContainer);
    }
  } catch (err) {
    const why = `cannot list the engine's containers: ${(err as Error).message}`;
    return [fail('engine.host-userns', why, 'journalctl -u docker -e'), fail('engine.bind-sources', why, 'journalctl -u docker -e')];
  }
  const label = (c: InspectedContainer) => `${c.Name.replace(/^\//, '')} (${c.Id.slice(0, 12)}, restart ${c.HostConfig?.RestartPolicy?.Name || 'no'})`;
  const host = containers.filter((c) => c.HostConfig?.UsernsMode === 'host');
  const checks: Check[] = [
    host.length === 0
      ? ok('engine.host-userns', `no container runs in the host user namespace (${containers.length} containers)`)
      : warn(
          'engine.host-userns',
          `${host.length} container(s) in the host user namespace, which userns-guard will not run, feed or start, but the engine restarts by itself by their restart policy: ${host.map(label).join(', ')}`,
          `docker rm -f ${host.map((c) => c.Id.slice(0, 12)).join(' ')}`,
        ),
  ];
  const restarting = containers.filter((c) => !['', 'no'].includes(c.HostConfig?.RestartPolicy?.Name ?? ''));
  const missing = restarting.flatMap((c) => {
    const sources = [
      ...(c.HostConfig?.Binds ?? []).map((b) => b.split(':')[0]!).filter((s) => s.startsWith('/')),
      ...(c.Mounts ?? []).filter((m) => m.Type === 'bind' && typeof m.Source === 'string').map((m) => m.Source!),
    ];
    return [...new Set(sources)].filter((s) => !pathExists(s)).map((s) => `${s} for ${label(c)}`);
  });
  checks.push(
    missing.length === 0
      ? ok('engine.bind-sources', `every bind source of the ${restarting.length} container(s) with a restart policy exists`)
      : warn(
          'engine.bind-sources',
          `the engine will create these missing bind sources as the containers' root when it restarts their containers by itself (no API call, so userns-guard cannot refuse it): ${missing.join('; ')}`,
          'create each directory first, owned as intended, or remove the container (docker rm -f NAME)',
        ),
  );
  return checks;
}
