// The catalogue of hostile requests: every shape in which the Docker engine
// (20.10, --userns-remap) can be asked for the host user namespace or for a
// managed plugin, which runs as host root. Plain data, so the end-to-end test,
// the benchmark and unit tests all send the same requests.
//
// Each entry says what an engine WITHOUT userns-guard does with it (`bare`,
// proven against a real engine by test/e2e-userns.test.ts) and what
// userns-guard must answer (`guard`). Targets and bodies hold placeholders
// that resolveAttack() fills in for one engine run.

import type { RuleId } from '../../src/policy/rules/types.ts';

export type AttackClass =
  | 'key-folding'
  | 'duplicate-keys'
  | 'top-level-field'
  | 'trailing-data'
  | 'body-not-forwarded'
  | 'route-encoding'
  | 'legacy-start'
  | 'plugin-install'
  | 'exact-host';

export type Effect =
  // A container named {name} is created with HostConfig.UsernsMode "host".
  | 'host-userns-container'
  // The existing container {container} starts in the host user namespace.
  | 'host-userns-start'
  // A managed plugin is installed or reconfigured; enabled, it runs as host root.
  | 'plugin-host-root'
  // A look-alike: the container {name} is created, in a remapped user namespace.
  | 'private-userns';

// What must exist before the request is sent: a stopped container named
// {container} (created with a benign body), an installed, disabled managed
// plugin named {plugin}, or swarm mode (on an engine run with --experimental,
// which the plugin runtime of swarm services needs).
export type Setup = 'none' | 'container' | 'plugin' | 'swarm';

export type GuardAnswer =
  | { readonly allow: true }
  // Any of `rules` is right: some engines forward chunked bodies, some do not.
  | { readonly allow: false; readonly rules: readonly RuleId[] };

// Stands for the tar body of POST /plugins/create, built per run because the
// plugin's config names host paths.
export const PLUGIN_TAR = { fill: 'plugin-tar' } as const;

export interface Attack {
  // Unique; also the name of the container or plugin it makes.
  readonly name: string;
  readonly class: AttackClass;
  // One line: the trick.
  readonly what: string;
  readonly method: 'POST';
  // Request-target as it goes on the request line. Placeholders: {name},
  // {container}, {plugin}, {registry}. An entry naming {registry} pulls the
  // image {registry}/probe/{name}:latest.
  readonly target: string;
  readonly headers: Readonly<Record<string, string>>;
  // Placeholders: {image}, {privileges} (a JSON array), {outDir}.
  readonly body: string | typeof PLUGIN_TAR | null;
  // Transfer-Encoding: chunked instead of Content-Length.
  readonly chunked: boolean;
  // Must be written as raw bytes: node:http will not send this request line
  // or this header combination.
  readonly raw: boolean;
  readonly setup: Setup;
  readonly bare: Effect;
  readonly guard: GuardAnswer;
}

const JSON_TYPE = { 'Content-Type': 'application/json' };
const TAR_TYPE = { 'Content-Type': 'application/x-tar' };
const ENGINE_FORWARD_LIMIT = 1 << 20;

const CREATE = '/v1.41/containers/create?name={name}';

// A create body whose container prints its own uid_map: the proof of where
// it runs, should it ever be started.
function createBody(fields: string): string {
  return `{"Image":"{image}","Cmd":["cat","/proc/self/uid_map"],${fields}}`;
}
const HOST_BODY = createBody('"HostConfig":{"UsernsMode":"host"}');

const denied = (...rules: RuleId[]): GuardAnswer => ({ allow: false, rules });
const USERNS = denied('userns-host');

type Partial_ = Omit<Attack, 'method' | 'headers' | 'chunked' | 'raw' | 'setup'> &
  Partial<Pick<Attack, 'headers' | 'chunked' | 'raw' | 'setup'>>;

function attack(a: Partial_): Attack {
  return { method: 'POST', headers: JSON_TYPE, chunked: false, raw: false, setup: 'none', ...a };
}

function hostCreate(name: string, cls: AttackClass, what: string, body: string, guard = USERNS): Attack {
  return attack({ name, class: cls, what, target: CREATE, body, bare: 'host-userns-container', guard });
}

function routeCreate(name: string, what: string, target: string, raw = false): Attack {
  return attack({ name, class: 'route-encoding', what, target, body: HOST_BODY, raw, bare: 'host-userns-container', guard: USERNS });
}

function legacyStart(name: string, what: string, opts: Partial<Attack> & { body: string }, guard: GuardAnswer): Attack {
  return attack({
    name,
    class: 'legacy-start',
    what,
    target: '/v1.23/containers/{container}/start',
    setup: 'container',
    bare: 'host-userns-start',
    guard,
    ...opts,
  });
}

// Leading white space Go skips, enough to pass the engine's forwarding limit.
const PAD = ' '.repeat(ENGINE_FORWARD_LIMIT + 1024);

export const ATTACKS: readonly Attack[] = [
  // 1. Go matches keys to fields case-insensitively, with Unicode folding.
  hostCreate('fold-lower', 'key-folding', 'both keys lower case', createBody('"hostconfig":{"usernsmode":"host"}')),
  hostCreate('fold-upper', 'key-folding', 'both keys upper case', createBody('"HOSTCONFIG":{"USERNSMODE":"host"}')),
  hostCreate('fold-longs-escaped', 'key-folding', 'UsernsMode with U+017F (long s) as a \\u escape', createBody('"HostConfig":{"Usern\\u017fMode":"host"}')),
  hostCreate('fold-longs-raw', 'key-folding', 'UsernsMode with U+017F (long s) as raw UTF-8', createBody('"HostConfig":{"Usern\u017fMode":"host"}')),
  hostCreate('fold-outer-longs-escaped', 'key-folding', 'HostConfig spelled Ho\\u017ftConfig', createBody('"Ho\\u017ftConfig":{"UsernsMode":"host"}')),
  hostCreate('fold-outer-longs-raw', 'key-folding', 'HostConfig spelled with a raw U+017F', createBody('"Ho\u017ftConfig":{"usern\u017fmode":"host"}')),
  hostCreate('fold-top-level', 'key-folding', 'deprecated top-level field, lower case with U+017F', createBody('"u\u017fernsmode":"host"')),
  hostCreate('escaped-key-letter', 'key-folding', 'key letters as \\u escapes', createBody('"Host\\u0043onfig":{"Userns\\u004dode":"host"}')),
  hostCreate('escaped-value', 'key-folding', 'the value "host" written with \\u escapes', createBody('"HostConfig":{"UsernsMode":"\\u0068\\u006fst"}')),

  // 2. Duplicate keys: the last one wins, objects under HostConfig merge.
  hostCreate('dup-last-wins', 'duplicate-keys', 'empty UsernsMode, then host', createBody('"HostConfig":{"UsernsMode":"","UsernsMode":"host"}')),
  hostCreate('dup-folded-last-wins', 'duplicate-keys', 'UsernsMode, then usernsmode', createBody('"HostConfig":{"UsernsMode":"","usernsmode":"host"}')),
  hostCreate('dup-host-then-null', 'duplicate-keys', 'host, then null (null leaves a Go string alone)', createBody('"HostConfig":{"UsernsMode":"host","UsernsMode":null}')),
  hostCreate('dup-hostconfig-merged', 'duplicate-keys', 'two HostConfig objects decoded into one struct', createBody('"HostConfig":{"UsernsMode":"host"},"HostConfig":{"Memory":0}')),
  hostCreate('dup-hostconfig-folded-merged', 'duplicate-keys', 'HostConfig and hostconfig objects merged', createBody('"HostConfig":{"UsernsMode":"host"},"hostconfig":{"Privileged":false}')),
  hostCreate('dup-hostconfig-nulled', 'duplicate-keys', 'a HostConfig object nulled again, so the top level counts', createBody('"UsernsMode":"host","HostConfig":{"UsernsMode":""},"HostConfig":null')),

  // 3. Deprecated top-level HostConfig fields.
  hostCreate('top-level-no-hostconfig', 'top-level-field', 'UsernsMode at the top level, no HostConfig', createBody('"UsernsMode":"host"')),
  hostCreate('top-level-hostconfig-null', 'top-level-field', 'UsernsMode at the top level, HostConfig null', createBody('"UsernsMode":"host","HostConfig":null')),

  // 4. The engine decodes the first JSON value and ignores the rest.
  hostCreate('trailing-garbage', 'trailing-data', 'garbage after the object', `${HOST_BODY} garbage`, denied('body-not-json')),
  hostCreate('trailing-second-value', 'trailing-data', 'a second, harmless object after the first', `${HOST_BODY}{"HostConfig":{"UsernsMode":""}}`, denied('body-not-json')),
  hostCreate('trailing-bracket', 'trailing-data', 'a stray ] after the object', `${HOST_BODY}]`, denied('body-not-json')),

  // 5. Bodies the engine does not forward to plugins, or forwards under an odd type.
  // 20.10 does not forward these; 26.1 and 28.5 forward bodies up to 4 MiB.
  hostCreate('over-limit-whitespace', 'body-not-forwarded', 'over 1 MiB of leading white space', `${PAD}${HOST_BODY}`, denied('body-not-visible', 'userns-host')),
  hostCreate('over-limit-label', 'body-not-forwarded', 'over 1 MiB in a label value', createBody(`"Labels":{"pad":"${'x'.repeat(ENGINE_FORWARD_LIMIT)}"},"HostConfig":{"UsernsMode":"host"}`), denied('body-not-visible', 'userns-host')),
  attack({
    name: 'chunked-create', class: 'body-not-forwarded', what: 'chunked transfer encoding, no Content-Length',
    target: CREATE, body: HOST_BODY, chunked: true, bare: 'host-userns-container',
    // Engines before the CVE-2024-41110 fix drop chunked bodies; fixed ones forward them.
    guard: denied('body-not-visible', 'userns-host'),
  }),
  attack({
    name: 'chunked-decoy-length', class: 'body-not-forwarded', what: 'chunked with a decoy Content-Length: 2 that Go drops',
    target: CREATE, headers: { ...JSON_TYPE, 'Content-Length': '2' }, body: HOST_BODY, chunked: true, raw: true,
    bare: 'host-userns-container', guard: denied('body-not-visible', 'userns-host'),
  }),
  attack({
    name: 'type-charset', class: 'body-not-forwarded', what: 'Content-Type application/json; charset=utf-8 (forwarded)',
    target: CREATE, headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: HOST_BODY, bare: 'host-userns-container', guard: USERNS,
  }),
  attack({
    name: 'type-odd-case', class: 'body-not-forwarded', what: 'Content-Type Application/JSON (forwarded)',
    target: CREATE, headers: { 'Content-Type': 'Application/JSON' }, body: HOST_BODY, bare: 'host-userns-container', guard: USERNS,
  }),
  attack({
    name: 'query-ends-auth', class: 'body-not-forwarded', what: 'query ending in /auth: the engine skips the body',
    target: `${CREATE}&x=/auth`, body: HOST_BODY, bare: 'host-userns-container',
    // The CVE-2024-41110 fix tests the path, not the raw URI, and so forwards this one.
    guard: denied('body-not-visible', 'userns-host'),
  }),

  // 6. The router matches the decoded path; the version prefix is optional and loose.
  routeCreate('route-pct-create', '%63reate', '/v1.41/containers/%63reate?name={name}'),
  routeCreate('route-pct-slash', 'containers%2Fcreate', '/v1.41/containers%2Fcreate?name={name}'),
  routeCreate('route-pct-version', '/v1%2E41 and /%76 prefix', '/%761%2E41/containers/create?name={name}'),
  routeCreate('route-no-version', 'no version prefix', '/containers/create?name={name}'),
  routeCreate('route-three-part-version', '/v1.41.0/', '/v1.41.0/containers/create?name={name}'),
  routeCreate('route-leading-zero-version', '/v01.041/', '/v01.041/containers/create?name={name}'),
  routeCreate('route-older-version', '/v1.40.99/', '/v1.40.99/containers/create?name={name}'),
  routeCreate('route-oldest-version', '/v1.12/, the oldest the engine takes', '/v1.12/containers/create?name={name}'),
  routeCreate('route-extra-query', 'extra query parameters around name', '/v1.41/containers/create?a=1&name={name}&b=/containers/x'),
  routeCreate('route-absolute-form', 'absolute-form request-target', 'http://localhost/v1.41/containers/create?name={name}', true),
  routeCreate('route-absolute-upper-scheme', 'absolute form, upper-case scheme', 'HTTP://docker/v1.41/containers/create?name={name}', true),
  routeCreate('route-absolute-userinfo', 'absolute form with userinfo and port', 'http://u@docker:1/v1.41/containers/%63reate?name={name}', true),
  routeCreate('route-scheme-no-authority', 'a scheme and no authority', 'x:/v1.41/containers/create?name={name}', true),

  // 7. Below API 1.24, start applies its body as the container's HostConfig.
  legacyStart('start-plain', 'top-level UsernsMode', { body: '{"UsernsMode":"host"}' }, USERNS),
  legacyStart('start-hostconfig', 'HostConfig-wrapped', { body: '{"HostConfig":{"UsernsMode":"host"}}' }, USERNS),
  legacyStart('start-folded', 'case-folded keys with U+017F', { body: '{"hostconfig":{"Usern\\u017fmode":"host"}}' }, USERNS),
  legacyStart('start-oldest-version', 'API 1.12', { target: '/v1.12/containers/{container}/start', body: '{"UsernsMode":"host"}' }, USERNS),
  legacyStart('start-zero-padded-version', '/v1.023/ reads as 1.23', { target: '/v1.023/containers/{container}/start', body: '{"UsernsMode":"host"}' }, USERNS),
  legacyStart('start-pct-path', 'percent-encoded path', { target: '/v1.23/containers/{container}/%73tart', body: '{"UsernsMode":"host"}' }, USERNS),
  legacyStart('start-type-charset', 'Content-Type Application/JSON; charset=utf-8', { headers: { 'Content-Type': 'Application/JSON; charset=utf-8' }, body: '{"UsernsMode":"host"}' }, USERNS),
  legacyStart('start-chunked', 'chunked body', { chunked: true, body: '{"UsernsMode":"host"}' }, denied('legacy-start-body', 'userns-host')),
  legacyStart('start-chunked-decoy-length', 'chunked with a decoy Content-Length: 2', {
    chunked: true, raw: true, headers: { ...JSON_TYPE, 'Content-Length': '2' }, body: '{"UsernsMode":"host"}',
  }, denied('legacy-start-body', 'userns-host')),
  legacyStart('start-query-auth', 'query ending in /auth', { target: '/v1.23/containers/{container}/start?x=/auth', body: '{"UsernsMode":"host"}' }, denied('legacy-start-body', 'userns-host')),
  legacyStart('start-over-limit', 'over 1 MiB of leading white space', { body: `${PAD}{"UsernsMode":"host"}` }, denied('legacy-start-body', 'userns-host')),
  legacyStart('start-trailing', 'garbage after the object', { body: '{"UsernsMode":"host"} garbage' }, denied('legacy-start-body')),

  // 8. Managed plugins run as root in the host user namespace.
  attack({
    name: 'plugin-create', class: 'plugin-install', what: 'POST /plugins/create with a local tar',
    target: '/v1.41/plugins/create?name={name}:latest', headers: TAR_TYPE, body: PLUGIN_TAR, bare: 'plugin-host-root', guard: denied('plugin-install'),
  }),
  attack({
    name: 'plugin-create-pct', class: 'plugin-install', what: 'plugins/%63reate, no version prefix',
    target: '/plugins/%63reate?name={name}:latest', headers: TAR_TYPE, body: PLUGIN_TAR, bare: 'plugin-host-root', guard: denied('plugin-install'),
  }),
  attack({
    name: 'plugin-create-absolute', class: 'plugin-install', what: 'plugin create in absolute form',
    target: 'http://docker/v1.41/plugins/create?name={name}:latest', headers: TAR_TYPE, body: PLUGIN_TAR, raw: true,
    bare: 'plugin-host-root', guard: denied('plugin-install'),
  }),
  attack({
    name: 'plugin-pull', class: 'plugin-install', what: 'POST /plugins/pull from a registry',
    target: '/v1.41/plugins/pull?remote={registry}/probe/{name}:latest&name={name}:latest', body: '{privileges}',
    bare: 'plugin-host-root', guard: denied('plugin-install'),
  }),
  attack({
    name: 'plugin-upgrade', class: 'plugin-install', what: 'POST /plugins/{name}/upgrade to another image',
    target: '/v1.41/plugins/{plugin}/upgrade?remote={registry}/probe/{name}:latest', body: '{privileges}', setup: 'plugin',
    bare: 'plugin-host-root', guard: denied('plugin-install'),
  }),
  attack({
    name: 'plugin-set', class: 'plugin-install', what: 'POST /plugins/{name}/set pointing a mount at another host path',
    target: '/v1.41/plugins/{plugin}/set', body: '["out.source={outDir}"]', setup: 'plugin',
    bare: 'plugin-host-root', guard: denied('plugin-install'),
  }),
  // A swarm service with the plugin runtime installs and enables a plugin on
  // every node, without any /plugins call (experimental engines only).
  attack({
    name: 'plugin-swarm-service', class: 'plugin-install', what: 'POST /services/create with the plugin runtime',
    target: '/v1.41/services/create', setup: 'swarm',
    body: '{"Name":"{name}","TaskTemplate":{"Runtime":"plugin","PluginSpec":{"Name":"{name}:latest","Remote":"{registry}/probe/{name}:latest","Privileges":{privileges}}}}',
    bare: 'plugin-host-root', guard: denied('plugin-install'),
  }),
  attack({
    name: 'plugin-swarm-folded', class: 'plugin-install', what: 'plugin-runtime service, keys folded (U+017F, Kelvin sign U+212A)',
    target: '/services/create', setup: 'swarm',
    body: '{"name":"{name}","Ta\u017f\u212atemplate":{"runtime":"plugin","pluginspec":{"name":"{name}:latest","remote":"{registry}/probe/{name}:latest","privileges":{privileges}}}}',
    bare: 'plugin-host-root', guard: denied('plugin-install'),
  }),
  attack({
    name: 'plugin-swarm-text-plain', class: 'plugin-install', what: 'plugin-runtime service sent as text/plain: not forwarded, still decoded',
    target: '/v1.41/services/create', setup: 'swarm', headers: { 'Content-Type': 'text/plain' },
    body: '{"Name":"{name}","TaskTemplate":{"Runtime":"plugin","PluginSpec":{"Name":"{name}:latest","Remote":"{registry}/probe/{name}:latest","Privileges":{privileges}}}}',
    bare: 'plugin-host-root', guard: denied('plugin-install'),
  }),

  // 9. Only the exact string "host" selects the host user namespace.
  attack({
    name: 'exact-host-upper', class: 'exact-host', what: 'UsernsMode HOST: a private namespace',
    target: CREATE, body: createBody('"HostConfig":{"UsernsMode":"HOST"}'), bare: 'private-userns', guard: { allow: true },
  }),
  attack({
    name: 'exact-host-title', class: 'exact-host', what: 'UsernsMode Host: a private namespace',
    target: CREATE, body: createBody('"HostConfig":{"UsernsMode":"Host"}'), bare: 'private-userns', guard: { allow: true },
  }),
];

// ---------------------------------------------------------------------------
// Turning an entry into bytes for one run

export interface RunValues {
  readonly image: string;
  // The container or plugin the entry acts on (setup 'container' / 'plugin').
  readonly container?: string;
  readonly plugin?: string;
  // host:port of a registry holding the probe plugin images.
  readonly registry?: string;
  // JSON array the engine requires with pull and upgrade.
  readonly privileges?: string;
  // A host directory, for plugin-set.
  readonly outDir?: string;
  // The tar for entries whose body is PLUGIN_TAR.
  readonly pluginTar?: Buffer;
  // Appended to the entry's name, so one engine can run the catalogue twice.
  readonly suffix?: string;
}

export interface ResolvedAttack {
  readonly attack: Attack;
  // The container or plugin name the request creates.
  readonly name: string;
  readonly target: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer | null;
}

export function resolveAttack(a: Attack, v: RunValues): ResolvedAttack {
  const name = `${a.name}${v.suffix ?? ''}`;
  const values: Record<string, string | undefined> = {
    name,
    image: v.image,
    container: v.container,
    plugin: v.plugin,
    registry: v.registry,
    privileges: v.privileges,
    outDir: v.outDir,
  };
  const fill = (s: string) =>
    s.replace(/\{(name|image|container|plugin|registry|privileges|outDir)\}/g, (_, key: string) => {
      const value = values[key];
      if (value === undefined) throw new Error(`attack ${a.name} needs a value for {${key}}`);
      return value;
    });
  let body: Buffer | null = null;
  if (a.body === PLUGIN_TAR) {
    if (v.pluginTar === undefined) throw new Error(`attack ${a.name} needs a plugin tar`);
    body = v.pluginTar;
  } else if (typeof a.body === 'string') {
    body = Buffer.from(fill(a.body), 'utf8');
  }
  return { attack: a, name, target: fill(a.target), headers: a.headers, body };
}

// The request exactly as it goes on the wire, for entries that need raw bytes
// (and usable for all). Connection: close makes the engine end the exchange.
export function rawRequest(r: ResolvedAttack): Buffer {
  const { head, body } = rawParts(r, false);
  return Buffer.concat([head, body]);
}

// Head and (encoded) body apart, for senders that wait for the engine's
// "100 Continue" before the body: an engine that refuses a request it has not
// read the body of answers and closes, and a body written meanwhile fails.
export function rawParts(r: ResolvedAttack, expectContinue: boolean): { head: Buffer; body: Buffer } {
  const lines = [`${r.attack.method} ${r.target} HTTP/1.1`, 'Host: docker'];
  for (const [k, v] of Object.entries(r.headers)) lines.push(`${k}: ${v}`);
  const body = r.body ?? Buffer.alloc(0);
  if (r.attack.chunked) lines.push('Transfer-Encoding: chunked');
  else if (!('Content-Length' in r.headers)) lines.push(`Content-Length: ${body.length}`);
  if (expectContinue) lines.push('Expect: 100-continue');
  lines.push('Connection: close', '', '');
  const head = Buffer.from(lines.join('\r\n'), 'latin1');
  if (!r.attack.chunked) return { head, body };
  const mid = Math.floor(body.length / 2);
  const chunk = (b: Buffer) => (b.length === 0 ? [] : [Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]);
  return { head, body: Buffer.concat([...chunk(body.subarray(0, mid)), ...chunk(body.subarray(mid)), Buffer.from('0\r\n\r\n')]) };
}

// The AuthZReq envelope the engine sends for this request. Docker 20.10
// forwards the body only when its Content-Type parses to application/json,
// it has a Content-Length under 1 MiB, and the request URI does not end in
// /auth. Engines with the CVE-2024-41110 fix (`cveFixed`, Debian's 20.10.24
// among them) also forward chunked bodies under the limit and test /auth on
// the path, not the raw URI. Go drops Content-Length and Transfer-Encoding
// from the headers of a chunked request.
export function engineEnvelope(r: ResolvedAttack, opts: { cveFixed?: boolean } = {}): object {
  const a = r.attack;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers)) {
    if (k.toLowerCase() === 'content-length' && a.chunked) continue;
    headers[canonicalHeader(k)] = v;
  }
  const length = r.body?.length ?? 0;
  if (!a.chunked && !('Content-Length' in headers)) headers['Content-Length'] = String(length);
  const type = (headers['Content-Type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  const authTarget = opts.cveFixed ? r.target.split('?', 1)[0]! : r.target;
  const forwarded =
    r.body !== null &&
    (opts.cveFixed || !a.chunked) &&
    length > 0 &&
    length < ENGINE_FORWARD_LIMIT &&
    type === 'application/json' &&
    !authTarget.endsWith('/auth');
  return {
    User: '',
    UserAuthNMethod: '',
    RequestMethod: a.method,
    RequestUri: r.target,
    RequestBody: forwarded ? r.body!.toString('base64') : null,
    RequestHeaders: headers,
    RequestPeerCertificates: null,
  };
}

function canonicalHeader(k: string): string {
  return k.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase());
}
