// Host paths the engine prepares for a mount, as host root:
// - a missing bind source is created with mkdir -p when the container
//   starts, owned by the remapped root, wherever it is;
// - a volume bound to a host directory gets the image's files copied into
//   it, and its root chowned, on first use.
// Both are allowed only where the remapped root could have done the same
// itself: create the directory in the nearest existing one, or write into
// the bound directory.

import { fieldValues, isObject, objectsUnder, type JObject } from '../../engine/goJson.ts';
import type { Asks, BindAsk, VolumeAsk } from '../asks.ts';
import { bindDevicesOf, optionsMap } from '../asks.ts';
import type { ContainerFacts, Facts, PathFacts } from '../facts.ts';
import type { Violation } from './types.ts';

// At create, for the request's own binds and volumes; at start, for the
// binds the engine re-creates (`started`, from the container's facts) and
// those a legacy start body (below API 1.24) sets.
export function hostPathViolation(asks: Asks, facts: Facts, started: ContainerFacts | null): Violation | null {
  const binds: BindAsk[] = [
    ...asks.createdBindSources,
    ...(started?.createdBindSources ?? []).map((source) => ({ source, from: `the bind mount of ${JSON.stringify(source)} of container ${started!.name} (${started!.id.slice(0, 12)})` })),
  ];
  for (const bind of binds) {
    const v = bindCreationViolation(bind, facts.paths.get(bind.source), started?.id);
    if (v !== null) return v;
  }
  for (const volume of asks.volumes) {
    const v = copyUpViolation(volume, facts);
    if (v !== null) return v;
  }
  return null;
}

function bindCreationViolation(bind: BindAsk, path: PathFacts | undefined, container: string | undefined): Violation | null {
  const refuse = (why: string, fix: string): Violation => ({
    rule: 'bind-source-creation',
    reason: `refused: the engine would create the missing bind source ${JSON.stringify(bind.source)} (${bind.from}) as host root, and ${why}; ${fix}`,
    detail: bind.source,
    ...(container !== undefined ? { container } : {}),
  });
  if (path === undefined) return refuse('userns-guard did not examine it', 'create it first, owned as intended');
  switch (path.kind) {
    case 'exists':
      return null;
    case 'unexaminable':
      return refuse(`userns-guard cannot examine the path (${path.why})`, 'create it first, owned as intended');
    case 'missing': {
      const mkdir = `create it first, owned as intended (mkdir -p ${bind.source})`;
      if (!path.nearestWritableByRemappedRoot) {
        return refuse(`the containers' root could not create it in ${JSON.stringify(path.nearest)} itself`, mkdir);
      }
      if (path.swappableAncestors.length > 0) {
        return refuse(`a local user could swap a directory on the way for a symlink (${path.swappableAncestors.join('; ')})`, mkdir);
      }
      if (path.missingLevels > 1 && !path.nearestProtectsSymlinks) {
        // mkdir -p follows a symlink planted in the first new level; only
        // the last level is safe to leave to the engine.
        return refuse(`${path.missingLevels} levels are missing under ${JSON.stringify(path.nearest)}, where a container could plant a symlink the engine would follow`, mkdir);
      }
      return null;
    }
  }
}

function copyUpViolation(volume: VolumeAsk, facts: Facts): Violation | null {
  if (volume.nocopy) return null;
  let devices: string[];
  let what: string;
  if (volume.inlineOptions.length > 0) {
    devices = volume.inlineOptions.map(optionsMap).flatMap(bindDevicesOf);
    what = `the volume ${volume.name === null ? '(anonymous)' : JSON.stringify(volume.name)} declared inline`;
  } else {
    if (volume.name === null) return null;
    const found = facts.volumes.get(volume.name);
    // A volume the engine does not know yet is created plain.
    if (found === undefined || found.kind === 'absent') return null;
    if (found.kind === 'unknown') {
      return {
        rule: 'volume-copy-up',
        reason: `refused: userns-guard could not look up volume ${JSON.stringify(volume.name)} (${found.why}), which the engine may fill with the image's files as host root`,
        detail: volume.name,
      };
    }
    if (found.value.driver !== 'local') return null;
    devices = bindDevicesOf(found.value.options);
    what = `volume ${JSON.stringify(volume.name)}`;
  }
  for (const device of devices) {
    const path = facts.paths.get(device);
    const refuse = (why: string): Violation => ({
      rule: 'volume-copy-up',
      reason: `refused: ${what} is bound to the host directory ${JSON.stringify(device)}, into which the engine copies the image's files at ${JSON.stringify(volume.destination)} and which it chowns to the containers' root, and ${why}; mount it with nocopy (-v NAME:${volume.destination}:nocopy, or --mount ...,volume-nocopy), or chown the directory to the containers' root first`,
      detail: device,
    });
    if (path === undefined) return refuse('userns-guard did not examine it');
    if (path.kind === 'unexaminable') return refuse(`userns-guard cannot examine it (${path.why})`);
    // A missing device fails the mount: nothing is copied.
    if (path.kind === 'missing') continue;
    if (!path.isDirectory || path.writableByRemappedRoot || !path.isEmptyDirectory) continue;
    return refuse("the containers' root could not write into it itself");
  }
  return null;
}

// Each node's engine creates a service's task containers and volumes itself,
// on a file system the plugin on the manager cannot see, with no
// authorization call. Swarm refuses missing bind sources (CreateMountpoint is
// ignored there), so what remains to judge in the spec is copy-up into
// volumes it declares bound to a host directory.
export function serviceHostPathViolation(body: JObject): Violation | null {
  const mounts = objectsUnder(body, 'TaskTemplate')
    .flatMap((t) => objectsUnder(t, 'ContainerSpec'))
    .flatMap((s) => fieldValues(s, 'Mounts'))
    .flatMap((v) => (Array.isArray(v) ? v.filter(isObject) : []));
  for (const mount of mounts) {
    const options = objectsUnder(mount, 'VolumeOptions');
    if (options.some((o) => fieldValues(o, 'NoCopy').includes(true))) continue;
    const devices = options
      .flatMap((o) => objectsUnder(o, 'DriverConfig'))
      .flatMap((d) => objectsUnder(d, 'Options'))
      .map(optionsMap)
      .flatMap(bindDevicesOf);
    if (devices.length > 0) {
      return {
        rule: 'service-host-path',
        reason: `refused: the service mounts a volume bound to the host directory ${JSON.stringify(devices[0])} without nocopy; each node's engine would copy the image's files into it and chown it to the containers' root, on a host userns-guard cannot examine; set VolumeOptions.NoCopy (--mount ...,volume-nocopy)`,
        detail: devices[0]!,
      };
    }
  }
  return null;
}
