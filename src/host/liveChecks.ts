// The checks of `userns-guard doctor` that talk to running processes: the
// plugin on its socket, and the engine on the Docker API socket. The probe
// asks the engine for a host-userns container and must be refused; it never
// starts anything, and removes whatever the engine did create.

import { randomBytes } from 'node:crypto';
import { fail, ok, warn, type Check } from './doctorChecks.ts';
import { errorMessage, unixRequest } from '../engine/unixHttp.ts';
import { PLUGIN_PATHS } from '../engine/wire.ts';

export async function activateCheck(socket: string): Promise<Check> {
  const id = 'plugin.activate';
  let r;
  try {
    r = await unixRequest(socket, 'POST', PLUGIN_PATHS.activate, {
      body: '',
      headers: { Accept: 'application/vnd.docker.plugins.v1.2+json' },
      timeoutMs: 5_000,
    });
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
  checks.push(await probeCheck(socket, opts));
  return checks;
}

async function probeCheck(socket: string, opts: EngineCheckOptions): Promise<Check> {
  const id = 'engine.probe';
  const name = `userns-guard-doctor-probe-${randomBytes(6).toString('hex')}`;
  const image = opts.probeImage ?? `userns-guard-doctor-probe:absent-${randomBytes(6).toString('hex')}`;
  const body = JSON.stringify({
    Image: image,
    Cmd: ['true'],
    Labels: { 'userns-guard.doctor-probe': 'true' },
    HostConfig: { UsernsMode: 'host' },
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
    return ok(id, `a create with HostConfig.UsernsMode=host was refused: ${message}`);
  }
  if (r.status === 403) {
    return warn(id, `a create with HostConfig.UsernsMode=host was refused, but not by ${opts.pluginName}: ${message}`, `put "${opts.pluginName}" in "authorization-plugins" and check why the other plugin answered first`);
  }
  if (r.status === 201) {
    const removal = await removeProbe(socket, r.body, name);
    return fail(
      id,
      `THE ENGINE CREATED A CONTAINER IN THE HOST USER NAMESPACE: ${opts.pluginName} did not refuse it (${removal})`,
      `add "${opts.pluginName}" to "authorization-plugins", start userns-guard.socket and systemctl restart docker; then run doctor again`,
    );
  }
  if (r.status === 404) {
    return fail(
      id,
      `THE ENGINE ACCEPTED A CREATE IN THE HOST USER NAMESPACE: only the missing probe image stopped it (${message}); ${opts.pluginName} did not refuse it`,
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
