// A request reduced to what it asks the engine to do with things that
// already exist or that it names: which container or exec it acts on and how,
// which names it makes refer to something new, which host paths the engine
// would create, and which volumes it mounts. Pure: read from the call alone.

import { fieldValues, isObject, lastScalar, objectsUnder, type JObject, type JValue } from '../engine/goJson.ts';
import type { BodyResult } from '../engine/requestBody.ts';
import { isApiBelow, queryValues, type Route } from '../engine/routes.ts';
import type { FactNeeds } from './facts.ts';
import type { RouteMatch, TargetAction } from './routeTable.ts';

export interface TargetAsk {
  readonly kind: 'container' | 'exec';
  // As written in the path: a name, a full id or an id prefix (containers),
  // or an exec id.
  readonly ref: string;
  readonly actions: readonly TargetAction[];
  // For kill: the signal is SIGKILL (the default), which ends the container
  // for good whatever its restart policy.
  readonly killsOutright: boolean;
}

// A bind source the engine creates (mkdir -p, as host root, owned by the
// remapped root) when it is missing.
export interface BindAsk {
  readonly source: string;
  readonly from: string; // where in the request, for the refusal
}

// A volume a new container mounts; the engine copies the image's content at
// the mount point into it unless nocopy.
export interface VolumeAsk {
  // A named volume the engine looks up or creates; null for an anonymous one.
  readonly name: string | null;
  // Driver options given inline (Mounts[].VolumeOptions.DriverConfig); they
  // apply only when the engine creates the volume.
  readonly inlineOptions: readonly JObject[];
  readonly nocopy: boolean;
  readonly destination: string;
}

export interface Asks {
  readonly target: TargetAsk | null;
  // Container names this call makes refer to a container (create, rename).
  readonly claimsContainerNames: readonly string[];
  // Volume names this call creates or may create with options of its own.
  readonly claimsVolumeNames: readonly string[];
  readonly createdBindSources: readonly BindAsk[];
  readonly volumes: readonly VolumeAsk[];
}

export const NOTHING: Asks = {
  target: null,
  claimsContainerNames: [],
  claimsVolumeNames: [],
  createdBindSources: [],
  volumes: [],
};

export function asksOf(route: Route, match: RouteMatch | null, body: () => BodyResult): Asks {
  if (match === null) return NOTHING;
  const spec = match.spec;
  const target: TargetAsk | null =
    spec.target === null
      ? null
      : { kind: spec.target, ref: match.param, actions: spec.actions, killsOutright: spec.name === 'container-kill' && isKillSignal(route) };
  switch (spec.name) {
    case 'container-create': {
      const b = body();
      const names = createdNames(route);
      return b.kind === 'object' ? { ...createAsks(b.object), claimsContainerNames: names } : { ...NOTHING, claimsContainerNames: names };
    }
    case 'container-start': {
      // Below API 1.24 a start body is the container's new HostConfig: its
      // binds and volumes are set up by this very start.
      const b = isApiBelow(route, '1.24') ? body() : null;
      const legacy = b?.kind === 'object' ? createAsks(b.object) : NOTHING;
      return { ...NOTHING, target, createdBindSources: legacy.createdBindSources, volumes: legacy.volumes };
    }
    case 'container-rename':
      return { ...NOTHING, claimsContainerNames: queryValues(route.query, 'name').map(containerName).filter((n) => n !== '') };
    case 'build':
      // The classic builder runs each step in a container of its own, created
      // inside the engine under a generated name.
      return { ...NOTHING, claimsContainerNames: [GENERATED_NAME] };
    case 'volume-create': {
      const b = body();
      if (b.kind !== 'object') return NOTHING;
      const names = fieldValues(b.object, 'Name').filter((n): n is string => typeof n === 'string' && n !== '');
      return { ...NOTHING, claimsVolumeNames: names };
    }
    default:
      return { ...NOTHING, target };
  }
}

// moby's signal.ParseSignal: a number, or a name with or without SIG.
function isKillSignal(route: Route): boolean {
  const values = queryValues(route.query, 'signal');
  const first = values[0] ?? '';
  return first === '' || first === '9' || /^(?:SIG)?KILL$/i.test(first);
}

// Stands for whatever name the engine generates for a container created
// without one: such a call can give any free name of the generator's to a
// new container. Not a valid container name, so the engine refuses a call
// that writes it.
export const GENERATED_NAME = '(generated)';

// The engine reads the first name only (Go's Form.Get); an empty one has it
// generate a name.
function createdNames(route: Route): string[] {
  const names = queryValues(route.query, 'name');
  const rest = names.map(containerName).filter((n) => n !== '');
  return (names[0] ?? '') === '' ? [GENERATED_NAME, ...rest] : rest;
}

// The engine stores names with a leading '/' and accepts them with or without.
export function containerName(name: string): string {
  return name.replace(/^\//, '');
}

function createAsks(body: JObject): Omit<Asks, 'claimsContainerNames'> {
  const views = [...objectsUnder(body, 'HostConfig'), body];
  const values = (field: string) => views.flatMap((v) => fieldValues(v, field));
  const binds = values('Binds').flatMap((v) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []));
  const mounts = values('Mounts').flatMap((v) => (Array.isArray(v) ? v.filter(isObject) : []));

  const createdBindSources: BindAsk[] = [];
  const volumes: VolumeAsk[] = [];
  for (const bind of binds) {
    const parts = bind.split(':');
    if (parts.length < 2 || parts.length > 3) continue;
    const [source, destination, mode] = [parts[0]!, parts[1]!, parts[2] ?? ''];
    if (source.startsWith('/')) createdBindSources.push({ source, from: `HostConfig.Binds ${JSON.stringify(bind)}` });
    else if (source !== '') volumes.push({ name: source, inlineOptions: [], nocopy: mode.split(',').includes('nocopy'), destination });
  }
  for (const mount of mounts) {
    const type = lastString(mount, 'Type');
    const source = lastString(mount, 'Source') ?? '';
    const destination = lastString(mount, 'Target') ?? '';
    if (type === 'bind') {
      const createMountpoint = objectsUnder(mount, 'BindOptions').some((o) => fieldValues(o, 'CreateMountpoint').includes(true));
      if (createMountpoint && source.startsWith('/')) {
        createdBindSources.push({ source, from: `HostConfig.Mounts bind ${JSON.stringify(source)} with CreateMountpoint` });
      }
    } else if (type === 'volume') {
      const options = objectsUnder(mount, 'VolumeOptions');
      volumes.push({
        name: source === '' ? null : source,
        inlineOptions: options.flatMap((o) => objectsUnder(o, 'DriverConfig')).flatMap((d) => objectsUnder(d, 'Options')),
        nocopy: options.some((o) => fieldValues(o, 'NoCopy').includes(true)),
        destination,
      });
    }
  }
  return {
    target: null,
    claimsVolumeNames: volumes.filter((v) => v.name !== null && v.inlineOptions.length > 0).map((v) => v.name!),
    createdBindSources,
    volumes,
  };
}

function lastString(obj: JObject, name: string): string | undefined {
  const v: JValue | undefined = lastScalar(obj, name);
  return typeof v === 'string' ? v : undefined;
}

// What must be looked up before the call can be judged. Paths of a start's
// binds are known only once the container is, so they come in a second round
// (see needsAfter in decide.ts).
export function needsOf(asks: Asks): FactNeeds {
  return {
    containers: asks.target?.kind === 'container' ? [asks.target.ref] : [],
    execs: asks.target?.kind === 'exec' ? [asks.target.ref] : [],
    volumes: asks.volumes.flatMap((v) => (v.name !== null && v.inlineOptions.length === 0 && !v.nocopy ? [v.name] : [])),
    paths: [
      ...asks.createdBindSources.map((b) => b.source),
      ...asks.volumes.flatMap((v) => (v.nocopy ? [] : v.inlineOptions.map(optionsMap).flatMap(bindDevicesOf))),
    ],
  };
}

// Driver option maps are Go maps: exact keys, the last duplicate wins (a
// value that is not a string fails the engine's decoding of the call).
export function optionsMap(options: JObject): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of options.entries) if (typeof v === 'string') out[k] = v;
  return out;
}

// The local driver bind-mounts `device` when `o` has a bind flag.
export function isBindOptions(options: Readonly<Record<string, string>>): boolean {
  return (options.o ?? '').split(',').some((w) => w === 'bind' || w === 'rbind');
}

export function bindDevicesOf(options: Readonly<Record<string, string>>): string[] {
  return isBindOptions(options) && options.device ? [options.device] : [];
}
