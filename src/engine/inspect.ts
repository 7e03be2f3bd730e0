// Reduces the engine's own inspect answers to the facts the policy judges.
// These bodies come from the engine's Go encoder, so plain JSON.parse reads
// them faithfully; anything unexpected is an error, never a default.

import type { ContainerFacts, MountFact, RemappedRoot, VolumeFacts } from '../policy/facts.ts';

type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

function parseObject(body: string, what: string): Record<string, unknown> | string {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return `${what} is not JSON`;
  }
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : `${what} is not a JSON object`;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

// GET /containers/{id}/json
export function containerFactsOf(body: string): Parsed<ContainerFacts> {
  const c = parseObject(body, 'container inspect answer');
  if (typeof c === 'string') return { ok: false, error: c };
  const id = str(c.Id);
  if (!/^[0-9a-f]{64}$/.test(id)) return { ok: false, error: 'container inspect answer has no container Id' };
  const host = obj(c.HostConfig);
  const mounts: MountFact[] = arr(c.Mounts).map((m) => {
    const o = obj(m);
    return { type: str(o.Type), source: str(o.Source), destination: str(o.Destination), name: str(o.Name), driver: str(o.Driver) };
  });
  return {
    ok: true,
    value: {
      id,
      name: str(c.Name).replace(/^\//, ''),
      usernsHost: str(host.UsernsMode) === 'host',
      restartPolicy: str(obj(host.RestartPolicy).Name),
      mounts,
      createdBindSources: createdBindSources(host, mounts),
    },
  };
}

// The engine re-creates missing sources of legacy Binds at every start (and
// every docker cp), of binds inherited through VolumesFrom, and of Mounts of
// type bind that ask for it; other Mounts binds fail the start instead, so
// judging every bind mount as created refuses nothing the engine would do.
function createdBindSources(host: Record<string, unknown>, mounts: readonly MountFact[]): string[] {
  const fromBinds = arr(host.Binds).flatMap((b) => {
    if (typeof b !== 'string') return [];
    const parts = b.split(':');
    return parts.length >= 2 && parts[0]!.startsWith('/') ? [parts[0]!] : [];
  });
  const fromMounts = arr(host.Mounts).flatMap((m) => {
    const o = obj(m);
    const create = obj(o.BindOptions).CreateMountpoint === true;
    return str(o.Type) === 'bind' && create && str(o.Source).startsWith('/') ? [str(o.Source)] : [];
  });
  const listed = mounts.filter((m) => m.type === 'bind' && m.source.startsWith('/')).map((m) => m.source);
  return [...new Set([...fromBinds, ...fromMounts, ...listed])];
}

// GET /exec/{id}/json: only the container it belongs to matters.
export function execContainerOf(body: string): Parsed<string> {
  const e = parseObject(body, 'exec inspect answer');
  if (typeof e === 'string') return { ok: false, error: e };
  const id = str(e.ContainerID);
  return /^[0-9a-f]{64}$/.test(id) ? { ok: true, value: id } : { ok: false, error: 'exec inspect answer has no ContainerID' };
}

// GET /volumes/{name}
export function volumeFactsOf(body: string): Parsed<VolumeFacts> {
  const v = parseObject(body, 'volume inspect answer');
  if (typeof v === 'string') return { ok: false, error: v };
  const options: Record<string, string> = {};
  for (const [k, val] of Object.entries(obj(v.Options))) if (typeof val === 'string') options[k] = val;
  return { ok: true, value: { name: str(v.Name), driver: str(v.Driver), options } };
}

// GET /info: under userns-remap the engine keeps its state in a directory
// named after the remapped root, DockerRootDir ".../<uid>.<gid>".
export function remappedRootOf(body: string): Parsed<RemappedRoot> {
  const info = parseObject(body, 'engine info answer');
  if (typeof info === 'string') return { ok: false, error: info };
  const userns = arr(info.SecurityOptions).some((o) => typeof o === 'string' && o.startsWith('name=userns'));
  const m = /\/([0-9]+)\.([0-9]+)$/.exec(str(info.DockerRootDir));
  if (!userns || m === null) return { ok: false, error: 'the engine does not run with userns-remap (no remapped DockerRootDir in GET /info)' };
  return { ok: true, value: { uid: Number(m[1]), gid: Number(m[2]) } };
}
