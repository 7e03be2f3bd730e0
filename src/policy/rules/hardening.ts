// Opt-in rules for hosts shared by users who must not get root on the host.
//
// Each request is first reduced to what it asks the engine for (`Asks`), read
// with the same Go-faithful look-ups as the userns rule: every key that folds
// to a field counts, in every HostConfig object and in the deprecated
// top-level copy, and any hostile candidate refuses the call. The rules then
// judge those facts, so one rule covers every route that can ask for the same
// thing: container create, start below API 1.24 (which applies its body as
// HostConfig), exec, volume create, swarm services, and builds.

import { header, type Call } from '../../engine/envelope.ts';
import { fieldValues, isObject, objectsUnder, type JObject, type JValue } from '../../engine/goJson.ts';
import { readJsonBody } from '../../engine/requestBody.ts';
import { queryValues, type Route } from '../../engine/routes.ts';
import type { HardeningRuleId, RuleId, Violation } from './types.ts';

export type HardeningContext =
  | { readonly kind: 'create'; readonly body: JObject }
  // POST /containers/{id}/start below API 1.24: the body becomes the HostConfig.
  | { readonly kind: 'legacy-start'; readonly body: JObject }
  | { readonly kind: 'exec'; readonly body: JObject }
  | { readonly kind: 'volume-create'; readonly body: JObject }
  // POST /services/create and /services/{id}/update: the engine creates the
  // tasks' containers itself, where no authorization plugin sees them.
  | { readonly kind: 'service'; readonly body: JObject }
  | { readonly kind: 'build'; readonly query: string; readonly contentType: string | undefined }
  // POST /grpc: BuildKit's own API (buildx), tunnelled past authorization.
  | { readonly kind: 'buildkit-grpc' }
  | { readonly kind: 'swarm-join' };

// Rule id -> the flag that turned it on, quoted in refusals so an operator
// knows which switch to look at.
export type EnabledRules = ReadonlyMap<HardeningRuleId, string>;

export const HARDENING_RULES: readonly HardeningRuleId[] = [
  'privileged',
  'cap-add',
  'security-opt',
  'root-user',
  'host-namespaces',
  'devices',
  'docker-socket',
];

// What a request asks the engine for, as far as the rules care.
interface Asks {
  readonly privileged: boolean;
  readonly capAdd: readonly string[];
  readonly securityOpts: readonly string[];
  // HostConfig fields that replace the default masked / read-only /proc paths.
  readonly systemPaths: readonly string[];
  readonly user: UserAsk | null;
  readonly hostNamespaces: readonly string[];
  readonly devices: readonly string[];
  readonly bindSources: readonly string[];
  // Option maps of volumes the request creates (local driver: type, o, device).
  readonly volumeOptions: readonly JObject[];
}

interface UserAsk {
  // Every candidate in document order; Go ends with the last non-null one.
  readonly values: readonly JValue[];
  // What an empty user means: the image's USER (often root), or for exec the
  // container's own user, already judged at create.
  readonly emptyMeans: 'image-default' | 'container-user';
}

const NOTHING_ASKED: Asks = {
  privileged: false,
  capAdd: [],
  securityOpts: [],
  systemPaths: [],
  user: null,
  hostNamespaces: [],
  devices: [],
  bindSources: [],
  volumeOptions: [],
};

type Check = (asks: Asks) => string | null;

const CHECKS: Record<HardeningRuleId, Check> = {
  privileged: (a) => (a.privileged ? 'privileged mode is not allowed' : null),
  'cap-add': (a) => {
    const caps = a.capAdd.map(capabilityName).filter((c) => c !== '');
    return caps.length > 0 ? `adding capabilities is not allowed (${caps.join(', ')})` : null;
  },
  'security-opt': (a) => {
    const bad = [...a.securityOpts.filter((o) => !isBenignSecurityOpt(o)), ...a.systemPaths];
    return bad.length > 0
      ? `security options that disable or replace confinement are not allowed (${bad.map(quote).join(', ')})`
      : null;
  },
  'root-user': (a) => (a.user === null ? null : rootUserProblem(a.user)),
  'host-namespaces': (a) =>
    a.hostNamespaces.length > 0 ? `sharing host namespaces is not allowed (${a.hostNamespaces.join('; ')})` : null,
  devices: (a) => {
    const found = [...a.devices, ...a.volumeOptions.flatMap(filesystemMounts)];
    return found.length > 0 ? `host devices are not allowed (${found.join('; ')})` : null;
  },
  'docker-socket': (a) => {
    const binds = [...a.bindSources, ...a.volumeOptions.flatMap(bindDevices)].filter(exposesEngineSocket);
    const found = [...binds.map(quote), ...a.volumeOptions.flatMap(filesystemMounts)];
    return found.length > 0
      ? `mounting the Docker engine socket, a directory holding it, or a host filesystem that reaches it is not allowed (${found.join('; ')})`
      : null;
  },
};

// Which rules can object to a context at all; a route whose rules are all off
// is not even read, so its unreadable bodies are not refused for nothing.
const ALL: readonly HardeningRuleId[] = HARDENING_RULES;
const RULES_FOR: Record<HardeningContext['kind'], readonly HardeningRuleId[]> = {
  create: ALL,
  exec: ALL,
  'legacy-start': ALL.filter((r) => r !== 'root-user'),
  'volume-create': ['devices', 'docker-socket'],
  service: ALL.filter((r) => r !== 'privileged'),
  build: ['host-namespaces'],
  'buildkit-grpc': ['host-namespaces'],
  'swarm-join': ['host-namespaces'],
};

export function hardeningViolation(ctx: HardeningContext, enabled: EnabledRules): Violation | null {
  if (enabled.size === 0) return null;
  const asks = asksOf(ctx);
  for (const rule of RULES_FOR[ctx.kind]) {
    const flag = enabled.get(rule);
    if (flag === undefined) continue;
    const why = CHECKS[rule](asks);
    if (why !== null) return { rule, reason: `${why} (rule ${rule}, enabled by ${flag})` };
  }
  return null;
}

// A legacy start (below API 1.24) applies its body as HostConfig; whether a
// body the plugin cannot see may pass is the legacy-start rule's call.
export function legacyStartHardeningViolation(call: Call, enabled: EnabledRules): Violation | null {
  if (enabled.size === 0) return null;
  const body = readJsonBody(call);
  return body.kind === 'object' ? hardeningViolation({ kind: 'legacy-start', body: body.object }, enabled) : null;
}

export function buildHardeningViolation(call: Call, route: Route, enabled: EnabledRules): Violation | null {
  return hardeningViolation({ kind: 'build', query: route.query, contentType: header(call, 'Content-Type') }, enabled);
}

const WHAT: Record<'exec' | 'volume-create' | 'service', string> = {
  exec: 'exec create',
  'volume-create': 'volume create',
  service: 'service create or update',
};

// Bodies are read only when an enabled rule looks at the route; then one the
// plugin cannot see or parse is refused.
export function hardeningBodyViolation(call: Call, kind: 'exec' | 'volume-create' | 'service', enabled: EnabledRules): Violation | null {
  if (enabled.size === 0) return null;
  const on = RULES_FOR[kind].filter((r) => enabled.has(r));
  if (on.length === 0) return null;
  const body = readJsonBody(call);
  if (body.kind === 'object') return hardeningViolation({ kind, body: body.object }, enabled);
  const rule: RuleId = body.kind === 'not-visible' ? 'body-not-visible' : 'body-not-json';
  const state = body.kind === 'not-visible' ? 'was not visible to userns-guard' : 'is not a single JSON object';
  const flags = [...new Set(on.map((r) => enabled.get(r)!))].join(', ');
  return { rule, reason: `${WHAT[kind]} refused while hardening rules are on (${flags}): its body ${state} (${body.why})` };
}

// ---------------------------------------------------------------------------
// Reading requests into Asks

function asksOf(ctx: HardeningContext): Asks {
  switch (ctx.kind) {
    case 'create':
      return { ...hostConfigAsks(hostConfigViews(ctx.body)), user: { values: fieldValues(ctx.body, 'User'), emptyMeans: 'image-default' } };
    case 'legacy-start':
      return hostConfigAsks(hostConfigViews(ctx.body));
    case 'exec':
      return {
        ...NOTHING_ASKED,
        privileged: fieldValues(ctx.body, 'Privileged').includes(true),
        user: { values: fieldValues(ctx.body, 'User'), emptyMeans: 'container-user' },
      };
    case 'volume-create':
      return { ...NOTHING_ASKED, volumeOptions: objectsUnder(ctx.body, 'DriverOpts') };
    case 'service':
      return serviceAsks(ctx.body);
    case 'build':
      return { ...NOTHING_ASKED, hostNamespaces: buildNamespaces(ctx.query, ctx.contentType) };
    case 'buildkit-grpc':
      return {
        ...NOTHING_ASKED,
        hostNamespaces: ['the BuildKit API at /grpc (buildx) carries build requests authorization never sees, and they may ask for the host network'],
      };
    case 'swarm-join':
      return {
        ...NOTHING_ASKED,
        hostNamespaces: ['joining or creating a swarm: the engine then creates service containers itself, and a service can reach the host network by a network id'],
      };
  }
}

// The objects the engine may take HostConfig fields from: every object under
// a key folding to HostConfig (duplicates merge), and the body itself for the
// deprecated top-level fields.
function hostConfigViews(body: JObject): JObject[] {
  return [...objectsUnder(body, 'HostConfig'), body];
}

const NAMESPACE_FIELDS = ['PidMode', 'IpcMode', 'UTSMode', 'NetworkMode', 'CgroupnsMode'];
const DEVICE_FIELDS = ['Devices', 'DeviceCgroupRules', 'DeviceRequests'];
// An explicit list, even an empty one, replaces the engine's defaults; the
// CLI sends both empty for --security-opt systempaths=unconfined.
const SYSTEM_PATH_FIELDS = ['MaskedPaths', 'ReadonlyPaths'];

function hostConfigAsks(views: readonly JObject[]): Asks {
  const values = (field: string) => views.flatMap((v) => fieldValues(v, field));
  const mounts = mountObjects(values('Mounts'));
  return {
    ...NOTHING_ASKED,
    privileged: values('Privileged').includes(true),
    // CapAdd is a StrSlice: a bare string is one entry.
    capAdd: stringsIn(values('CapAdd'), true),
    securityOpts: stringsIn(values('SecurityOpt')),
    systemPaths: SYSTEM_PATH_FIELDS.filter((f) => values(f).some((v) => v !== null)),
    hostNamespaces: NAMESPACE_FIELDS.filter((f) => values(f).some(isHostMode)).map((f) => `${f}=host`),
    devices: DEVICE_FIELDS.filter((f) => values(f).some(isNonEmptyArray)),
    bindSources: [...bindsSources(stringsIn(values('Binds'))), ...mounts.flatMap(mountSources)],
    volumeOptions: mounts.flatMap(mountVolumeOptions),
  };
}

// The fields of a swarm ContainerSpec the engine turns into the task
// container's Config and HostConfig.
function serviceAsks(body: JObject): Asks {
  const tasks = objectsUnder(body, 'TaskTemplate');
  const specs = tasks.flatMap((t) => objectsUnder(t, 'ContainerSpec'));
  const values = (field: string) => specs.flatMap((s) => fieldValues(s, field));
  const mounts = mountObjects(values('Mounts'));
  const selinux = specs
    .flatMap((s) => objectsUnder(s, 'Privileges'))
    .flatMap((p) => objectsUnder(p, 'SELinuxContext'))
    .flatMap(selinuxOptions);
  const networks = [...tasks, body]
    .flatMap((o) => fieldValues(o, 'Networks'))
    .flatMap((v) => (Array.isArray(v) ? v.filter(isObject) : []))
    .flatMap((n) => fieldValues(n, 'Target'));
  return {
    ...NOTHING_ASKED,
    capAdd: stringsIn(values('CapabilityAdd')),
    securityOpts: selinux,
    user: specs.length > 0 ? { values: values('User'), emptyMeans: 'image-default' } : null,
    hostNamespaces: networks.some(isHostMode) ? ['a service network attachment to the host network'] : [],
    bindSources: mounts.flatMap(mountSources),
    volumeOptions: mounts.flatMap(mountVolumeOptions),
  };
}

// The engine turns a service's SELinux context into label options.
function selinuxOptions(ctx: JObject): string[] {
  const opts = fieldValues(ctx, 'Disable').includes(true) ? ['label=disable'] : [];
  for (const part of ['User', 'Role', 'Type', 'Level']) {
    for (const v of fieldValues(ctx, part)) {
      if (typeof v === 'string' && v !== '') opts.push(`label=${part.toLowerCase()}:${v}`);
    }
  }
  return opts;
}

// The engine reads build options with Go's FormValue: from the query, but
// from the body first when it is a form, which the plugin never sees.
function buildNamespaces(query: string, contentType: string | undefined): string[] {
  const found: string[] = [];
  if (queryValues(query, 'networkmode').some(isHostMode)) found.push('a build with networkmode=host');
  const media = contentType?.split(';', 1)[0]!.trim().toLowerCase();
  if (media === 'application/x-www-form-urlencoded' || media === 'multipart/form-data') {
    found.push(`build options in a ${media} body, which userns-guard cannot see`);
  }
  return found;
}

function isHostMode(v: JValue): boolean {
  return typeof v === 'string' && v.trim().toLowerCase() === 'host';
}

function isNonEmptyArray(v: JValue): boolean {
  return Array.isArray(v) && v.length > 0;
}

// Strings of []string fields; a bare string only where the engine's type
// (StrSlice) accepts one, elsewhere it fails the whole call.
function stringsIn(values: readonly JValue[], bareStringToo = false): string[] {
  return values.flatMap((v) => {
    if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
    return bareStringToo && typeof v === 'string' ? [v] : [];
  });
}

function capabilityName(cap: string): string {
  return cap.trim().toUpperCase().replace(/^CAP_/, '');
}

function quote(s: string): string {
  return JSON.stringify(s);
}

// ---------------------------------------------------------------------------
// security-opt

// moby's parseSecurityOpt: a bare "no-new-privileges" or "disable" (a label
// option), else "key=value", else the legacy "key:value". Only what keeps the
// default confinement is benign: a custom seccomp or AppArmor profile, any
// SELinux label option, and anything the engine would reject are not.
function isBenignSecurityOpt(opt: string): boolean {
  if (opt === 'no-new-privileges') return true;
  const sep = opt.includes('=') ? '=' : opt.includes(':') ? ':' : null;
  if (sep === null) return false;
  const at = opt.indexOf(sep);
  const key = opt.slice(0, at);
  const value = opt.slice(at + 1);
  switch (key) {
    case 'no-new-privileges':
      return true;
    case 'seccomp':
      // Empty is the default profile; "builtin" names it on newer engines.
      return value === '' || value === 'builtin';
    case 'apparmor':
      return value === '' || value === 'docker-default';
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// root-user

// Exact for Go: the effective user is the last non-null candidate, and every
// non-blank candidate is judged as well (a duplicate key cannot hide one).
function rootUserProblem(user: UserAsk): string | null {
  const root = user.values.find((u) => typeof u === 'string' && u.trim() !== '' && isRootUser(u));
  if (root !== undefined) return `running as root is not allowed (User ${quote(root as string)})`;
  if (user.emptyMeans === 'container-user') return null;
  const effective = [...user.values].reverse().find((v) => v !== null);
  if (typeof effective !== 'string' || effective.trim() === '') {
    return 'a container must name a non-root User: without one it runs as the image default, usually root';
  }
  return null;
}

// libcontainer's GetExecUser: the part before the first ':' is the user; a
// numeric one (strconv.Atoi: sign and leading zeros allowed) is a uid, and an
// empty one means uid 0.
function isRootUser(spec: string): boolean {
  const user = spec.trim().split(':', 1)[0]!.trim();
  return user === '' || user.toLowerCase() === 'root' || /^[+-]?0+$/.test(user);
}

// ---------------------------------------------------------------------------
// Mounts

function mountObjects(values: readonly JValue[]): JObject[] {
  return values.flatMap((v) => (Array.isArray(v) ? v.filter(isObject) : []));
}

// Binds are "src:dst[:mode]" (at most two colons); a lone entry is an
// anonymous volume at that container path, and a source that is not an
// absolute path names a volume.
function bindsSources(binds: readonly string[]): string[] {
  return binds.flatMap((b) => {
    const parts = b.split(':');
    if (parts.length < 2 || parts.length > 3) return [];
    return parts[0]!.startsWith('/') ? [parts[0]!] : [];
  });
}

// Every Source of a mount, whatever its Type says: a bind needs an absolute
// one, and volume and tmpfs mounts refuse one, so no benign mount has an
// absolute Source that is not a host path.
function mountSources(mount: JObject): string[] {
  return fieldValues(mount, 'Source').filter((s): s is string => typeof s === 'string' && s.startsWith('/'));
}

function mountVolumeOptions(mount: JObject): JObject[] {
  return objectsUnder(mount, 'VolumeOptions')
    .flatMap((o) => objectsUnder(o, 'DriverConfig'))
    .flatMap((d) => objectsUnder(d, 'Options'));
}

// Driver option maps are Go maps: keys are exact, and the local driver passes
// `o` to mount(2) through moby/sys/mount, whose flags are exact words.
function optionValues(options: JObject, key: string): string[] {
  return options.entries.filter(([k, v]) => k === key && typeof v === 'string').map(([, v]) => v as string);
}

function isBindMount(options: JObject): boolean {
  return optionValues(options, 'o').some((o) => o.split(',').some((w) => w === 'bind' || w === 'rbind'));
}

// With a bind flag the local driver bind-mounts `device`, a host path
// (relative to the engine's working directory, /).
function bindDevices(options: JObject): string[] {
  return isBindMount(options) ? optionValues(options, 'device') : [];
}

// Kernel file system types that mount nothing of the host's.
const HARMLESS_TYPES = new Set(['tmpfs', 'ramfs', 'nfs', 'nfs4', 'cifs', 'smb3']);

// A local volume with any other type mounts a host block device or a kernel
// file system (proc, sysfs, cgroup, overlay over host directories, ...) in
// the host's namespaces, which the container then gets.
function filesystemMounts(options: JObject): string[] {
  if (isBindMount(options)) return [];
  const types = optionValues(options, 'type');
  const devices = optionValues(options, 'device');
  if (types.length === 0 && devices.length === 0) return [];
  const bad = types.filter((t) => !HARMLESS_TYPES.has(t));
  if (bad.length === 0 && types.length > 0) return [];
  return [`a volume mounting type=${bad.join(',') || '(none)'} device=${devices.join(',') || '(none)'}`];
}

// ---------------------------------------------------------------------------
// Engine socket paths

// The engine socket, and the run-time directories of the engine and
// containerd, with everything under them: they hold containerd's socket
// (/run/docker/containerd/containerd.sock when the engine runs its own), and
// containerd's API is as good as root.
const ENGINE_SOCKETS = ['/run/docker.sock', '/var/run/docker.sock'];
const ENGINE_RUN_DIRS = ['/run/docker', '/var/run/docker', '/run/containerd', '/var/run/containerd'];

// True when the host path, after lexical clean-up, is the engine socket, a
// directory above it, inside the engine's run-time directories, or in procfs,
// where /proc/<pid>/root and /proc/<pid>/cwd lead to the host's root.
// Symbolic links on the host are not followed: the README says why.
export function exposesEngineSocket(source: string): boolean {
  const p = cleanPath(source);
  if (isWithin(p, '/proc')) return true;
  return [...ENGINE_SOCKETS, ...ENGINE_RUN_DIRS].some((s) => isWithin(s, p)) || ENGINE_RUN_DIRS.some((d) => isWithin(p, d));
}

// `path` is `dir` or below it; both clean and absolute.
function isWithin(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

// Go's path.Clean, made absolute: the engine cleans bind sources, and mount(2)
// resolves a relative device from the engine's working directory, /.
export function cleanPath(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join('/')}`;
}
