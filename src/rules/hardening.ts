// Opt-in rules for hosts shared by users who must not get root on the host.
// They read the body with the same Go-faithful look-ups as the userns rule:
// every key that folds to a field counts, in HostConfig objects and in the
// deprecated top-level copy, and any hostile candidate refuses the call.

import { fieldValues, isObject, lastScalar, objectsUnder, type JObject, type JValue } from '../goJson.ts';
import type { HardeningRuleId, Violation } from './types.ts';

export type HardeningContext =
  | { readonly kind: 'create'; readonly body: JObject }
  | { readonly kind: 'exec'; readonly body: JObject }
  | { readonly kind: 'volume-create'; readonly body: JObject };

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

type Check = (ctx: HardeningContext) => string | null;

const CHECKS: Record<HardeningRuleId, Check> = {
  privileged: (ctx) => {
    const views = ctx.kind === 'create' ? hostConfigViews(ctx.body) : ctx.kind === 'exec' ? [ctx.body] : [];
    return valuesOf(views, 'Privileged').includes(true) ? 'privileged mode is not allowed' : null;
  },
  'cap-add': (ctx) => {
    if (ctx.kind !== 'create') return null;
    const caps = stringsIn(valuesOf(hostConfigViews(ctx.body), 'CapAdd')).map(capabilityName).filter((c) => c !== '');
    return caps.length > 0 ? `adding capabilities is not allowed (CapAdd: ${caps.join(', ')})` : null;
  },
  'security-opt': (ctx) => {
    if (ctx.kind !== 'create') return null;
    const bad = stringsIn(valuesOf(hostConfigViews(ctx.body), 'SecurityOpt')).filter(weakensConfinement);
    return bad.length > 0 ? `security options that disable or replace confinement are not allowed (${bad.join(', ')})` : null;
  },
  'root-user': (ctx) => {
    if (ctx.kind === 'create') {
      const users = fieldValues(ctx.body, 'User');
      const root = users.find((u) => typeof u === 'string' && isRootUser(u));
      if (root !== undefined) return `running as root is not allowed (User: ${JSON.stringify(root)})`;
      const effective = lastScalar(ctx.body, 'User');
      if (typeof effective !== 'string' || effective.trim() === '' || userPart(effective) === '') {
        return 'a container must name a non-root User: the image default is usually root';
      }
      return null;
    }
    if (ctx.kind === 'exec') {
      const root = fieldValues(ctx.body, 'User').find((u) => typeof u === 'string' && u.trim() !== '' && isRootUser(u));
      return root !== undefined ? `exec as root is not allowed (User: ${JSON.stringify(root)})` : null;
    }
    return null;
  },
  'host-namespaces': (ctx) => {
    if (ctx.kind !== 'create') return null;
    const views = hostConfigViews(ctx.body);
    const shared = ['PidMode', 'IpcMode', 'UTSMode', 'NetworkMode', 'CgroupnsMode'].filter((field) =>
      valuesOf(views, field).some((v) => typeof v === 'string' && v.trim().toLowerCase() === 'host'),
    );
    return shared.length > 0 ? `sharing host namespaces is not allowed (${shared.map((f) => `${f}=host`).join(', ')})` : null;
  },
  devices: (ctx) => {
    if (ctx.kind !== 'create') return null;
    const views = hostConfigViews(ctx.body);
    const devices = valuesOf(views, 'Devices').some((v) => Array.isArray(v) && v.length > 0);
    const rules = valuesOf(views, 'DeviceCgroupRules').some((v) => Array.isArray(v) && v.length > 0);
    if (!devices && !rules) return null;
    return `host devices are not allowed (${[devices && 'Devices', rules && 'DeviceCgroupRules'].filter(Boolean).join(', ')})`;
  },
  'docker-socket': (ctx) => {
    const sources = ctx.kind === 'create' ? hostPathsOfCreate(ctx.body) : ctx.kind === 'volume-create' ? hostPathsOfVolume(ctx.body) : [];
    const exposed = sources.filter(exposesEngineSocket);
    return exposed.length > 0 ? `mounting the Docker engine socket or a directory holding it is not allowed (${exposed.join(', ')})` : null;
  },
};

export function hardeningViolation(ctx: HardeningContext, enabled: EnabledRules): Violation | null {
  if (enabled.size === 0) return null;
  for (const rule of HARDENING_RULES) {
    const flag = enabled.get(rule);
    if (flag === undefined) continue;
    const why = CHECKS[rule](ctx);
    if (why !== null) return { rule, reason: `${why} (rule ${rule}, enabled by ${flag})` };
  }
  return null;
}

// The objects the engine may take HostConfig fields from: every object under
// a key folding to HostConfig, and the create body itself for the
// deprecated top-level fields.
function hostConfigViews(body: JObject): JObject[] {
  return [...objectsUnder(body, 'HostConfig'), body];
}

function valuesOf(views: readonly JObject[], field: string): JValue[] {
  return views.flatMap((v) => fieldValues(v, field));
}

function stringsIn(values: readonly JValue[]): string[] {
  return values.flatMap((v) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []));
}

function capabilityName(cap: string): string {
  return cap.trim().toUpperCase().replace(/^CAP_/, '');
}

// moby's parseSecurityOpt: "key=value", the legacy "key:value", or a bare
// "disable" (a label option). Keys are compared loosely on purpose: a key the
// engine does not know fails the call anyway.
function weakensConfinement(opt: string): boolean {
  const o = opt.trim();
  if (o.toLowerCase() === 'disable') return true;
  const sep = o.includes('=') ? '=' : o.includes(':') ? ':' : null;
  if (sep === null) return false;
  const key = o.slice(0, o.indexOf(sep)).trim().toLowerCase();
  const value = o.slice(o.indexOf(sep) + 1).trim();
  const v = value.toLowerCase();
  switch (key) {
    case 'seccomp':
      // Anything but the built-in profile is unconfined or a custom profile.
      return v !== 'builtin';
    case 'apparmor':
      return v !== 'docker-default';
    case 'label':
      return v === 'disable' || v.startsWith('type:') || v.startsWith('type=');
    case 'systempaths':
      return true;
    default:
      return false;
  }
}

// runc treats a numeric user (as strconv.Atoi reads it: signs and leading
// zeros allowed) as a uid, and an empty user part as the runtime's, uid 0.
function userPart(spec: string): string {
  return spec.trim().split(':', 1)[0]!.trim();
}

function isRootUser(spec: string): boolean {
  const user = userPart(spec);
  return user === '' || user.toLowerCase() === 'root' || /^[+-]?0+$/.test(user);
}

// Host paths a create mounts: Binds sources ("src:dst[:opts]", absolute
// sources only; others name volumes), Mounts of type bind, and Mounts of
// type volume whose local-driver options bind a host directory.
function hostPathsOfCreate(body: JObject): string[] {
  const views = hostConfigViews(body);
  const binds = stringsIn(valuesOf(views, 'Binds'))
    .map((b) => b.split(':', 1)[0]!)
    .filter((src) => src.startsWith('/'));
  const mounts = valuesOf(views, 'Mounts').flatMap((v) => (Array.isArray(v) ? v.filter(isObject) : []));
  const fromMounts = mounts.flatMap((m) => {
    const type = lastScalar(m, 'Type');
    const source = lastScalar(m, 'Source');
    const paths: string[] = [];
    if (typeof type === 'string' && type.trim().toLowerCase() === 'bind' && typeof source === 'string') paths.push(source);
    for (const volumeOptions of objectsUnder(m, 'VolumeOptions')) {
      for (const driver of objectsUnder(volumeOptions, 'DriverConfig')) {
        for (const options of objectsUnder(driver, 'Options')) paths.push(...bindDevices(options));
      }
    }
    return paths;
  });
  return [...binds, ...fromMounts];
}

// POST /volumes/create with the local driver's "o=bind,device=/path".
function hostPathsOfVolume(body: JObject): string[] {
  return objectsUnder(body, 'DriverOpts').flatMap(bindDevices);
}

// The local volume driver mounts `device` with mount(2); any device path
// given with a bind option is a host directory.
function bindDevices(options: JObject): string[] {
  const o = options.entries.filter(([k]) => k === 'o').map(([, v]) => v);
  const binds = o.some((v) => typeof v === 'string' && v.split(',').some((x) => ['bind', 'rbind'].includes(x.trim())));
  if (!binds) return [];
  return options.entries
    .filter(([k, v]) => k === 'device' && typeof v === 'string')
    .map(([, v]) => v as string);
}

// The engine socket, and the directories of the engine's and containerd's
// own sockets (containerd's API is as good as root).
const SOCKETS = [
  '/run/docker.sock',
  '/var/run/docker.sock',
  '/run/docker',
  '/var/run/docker',
  '/run/containerd',
  '/var/run/containerd',
];

// True when the host path is the engine socket or a directory above it,
// after lexical clean-up, or when it reaches the host's root through /proc.
export function exposesEngineSocket(source: string): boolean {
  const p = cleanPath(source);
  if (/^\/proc\/[^/]+\/root(\/|$)/.test(p)) return true;
  return SOCKETS.some((sock) => sock === p || sock.startsWith(p === '/' ? '/' : `${p}/`));
}

// Go's path.Clean for absolute paths, with a trailing slash dropped.
export function cleanPath(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join('/')}`;
}
