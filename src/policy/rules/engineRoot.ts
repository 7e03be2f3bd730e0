// Calls on an existing container that make the engine itself act as host
// root for the caller. The rule behind both: the engine must not do for a
// container what the container's own (remapped) root could not do itself.
//
// - A container in the host user namespace runs as real root: whatever runs
//   in it, is fed to it, or starts it again acts as host root, whoever made
//   it (before the plugin ran, under --audit-only, or an exempt user).
// - docker cp is done by the engine as host root, through the container's
//   mounts: a bind or a host-backed volume lets it read and write host files
//   the container's root cannot.

import type { Asks, TargetAsk } from '../asks.ts';
import { isBindOptions } from '../asks.ts';
import type { ContainerFacts, Facts, Lookup, MountFact, VolumeFacts } from '../facts.ts';
import type { TargetAction } from '../routeTable.ts';
import type { Violation } from './types.ts';

const DOING: Record<TargetAction, string> = {
  run: 'run a process in it',
  input: 'feed input to its processes',
  start: 'start its processes',
  files: 'read or write its files',
  update: 'change how it is restarted',
  signal: 'signal it with something other than KILL (which can resume or restart it)',
};

export function targetLookup(target: TargetAsk, facts: Facts): Lookup<ContainerFacts> | undefined {
  return (target.kind === 'exec' ? facts.execs : facts.containers).get(target.ref);
}

export function engineRootViolation(asks: Asks, facts: Facts): Violation | null {
  const target = asks.target;
  if (target === null) return null;
  const what = target.kind === 'exec' ? `exec instance ${JSON.stringify(target.ref)}` : `container ${JSON.stringify(target.ref)}`;
  const found = targetLookup(target, facts);
  if (found === undefined || found.kind === 'unknown') {
    const why = found === undefined ? 'it was not looked up' : found.why;
    return {
      rule: 'lookup-failed',
      reason: `refused: userns-guard could not learn what ${what} is (${why}); it refuses calls that act on an existing container until it can look them up on the engine's socket (--engine-socket)`,
    };
  }
  if (found.kind === 'absent') {
    return { rule: 'no-such-container', reason: `refused: no such ${target.kind === 'exec' ? 'exec instance' : 'container'}: ${target.ref}` };
  }
  const c = found.value;
  if (c.usernsHost && !(target.actions.length === 1 && target.actions[0] === 'signal' && target.killsOutright)) {
    const doing = target.actions.map((a) => DOING[a]).join(' and ');
    return {
      rule: 'host-userns-container',
      reason: `refused: container ${label(c)} runs in the host user namespace, so the engine would ${doing} as real root; inspect, logs, stop, kill -s KILL, rename and rm stay allowed (remove it with: docker rm -f ${c.id.slice(0, 12)})`,
      container: c.id,
      detail: 'UsernsMode=host',
    };
  }
  if (target.actions.includes('files')) {
    for (const m of c.mounts) {
      const backing = hostBacking(m, facts.volumes.get(m.name));
      if (backing !== null) {
        return {
          rule: 'archive-host-mount',
          reason: `docker cp refused: container ${label(c)} has ${backing} at ${m.destination}, and the engine copies files as host root through it; copy from inside the container instead (docker exec ${c.id.slice(0, 12)} cat|tar ...), or use a plain named volume`,
          container: c.id,
          detail: `${m.destination}: ${backing}`,
        };
      }
    }
  }
  return null;
}

function label(c: ContainerFacts): string {
  return `${c.name} (${c.id.slice(0, 12)})`;
}

// What puts host files behind a mount, or null for mounts whose content
// only the container's own root could have reached anyway.
export function hostBacking(m: MountFact, volume: Lookup<VolumeFacts> | undefined): string | null {
  switch (m.type) {
    case 'bind':
      return `a bind mount of the host path ${JSON.stringify(m.source)}`;
    case 'tmpfs':
    case 'image':
      return null;
    case 'volume': {
      if (m.driver !== 'local') return `volume ${JSON.stringify(m.name)} of driver ${JSON.stringify(m.driver)}, whose backing userns-guard cannot judge`;
      if (volume === undefined || volume.kind !== 'found') {
        const why = volume === undefined ? 'not looked up' : volume.kind === 'absent' ? 'the engine does not know it' : volume.why;
        return `volume ${JSON.stringify(m.name)} that userns-guard could not look up (${why})`;
      }
      return volumeHostBacking(volume.value);
    }
    default:
      return `a mount of type ${JSON.stringify(m.type)}, whose backing userns-guard cannot judge`;
  }
}

// A local volume is plain when the driver keeps it in its own directory
// (no options), or mounts a tmpfs; any device, bind or other file system
// type puts something of the host's behind it.
export function volumeHostBacking(v: VolumeFacts): string | null {
  const o = v.options;
  if (isBindOptions(o)) return `volume ${JSON.stringify(v.name)} bound to the host path ${JSON.stringify(o.device ?? '')}`;
  const type = o.type ?? '';
  const device = o.device ?? '';
  if (type === '' && device === '') return null;
  if ((type === 'tmpfs' || type === 'ramfs') && (device === '' || device === type)) return null;
  return `volume ${JSON.stringify(v.name)} mounting type=${type || '(none)'} device=${device || '(none)'}`;
}
