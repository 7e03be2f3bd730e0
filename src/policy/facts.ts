// What the plugin learns from the engine and the host before it can judge a
// call on something that already exists. The policy only reads these; the
// gathering step (src/facts/) is the one place that does I/O for them.

// One mount of an existing container, as GET /containers/{id}/json lists it
// (inherited VolumesFrom mounts included).
export interface MountFact {
  readonly type: string; // bind, volume, tmpfs, npipe, cluster, image
  readonly source: string; // host path for binds; the volume's mountpoint for volumes
  readonly destination: string;
  readonly name: string; // volume name; '' for other types
  readonly driver: string; // volume driver; '' for other types
}

export interface ContainerFacts {
  readonly id: string;
  readonly name: string; // without the leading '/'
  readonly usernsHost: boolean;
  readonly restartPolicy: string;
  readonly mounts: readonly MountFact[];
  // Bind sources the engine creates at start when they are missing: every
  // HostConfig.Binds source, and Mounts of type bind that ask for
  // BindOptions.CreateMountpoint.
  readonly createdBindSources: readonly string[];
}

// A volume as GET /volumes/{name} shows it.
export interface VolumeFacts {
  readonly name: string;
  readonly driver: string;
  readonly options: Readonly<Record<string, string>>;
}

// The file system as seen at a host path, for the engine's mkdir -p of bind
// sources and copy-up into bind-backed volumes.
export type PathFacts =
  | {
      readonly kind: 'exists';
      // Where the path leads once symlinks are followed, and whether the
      // remapped root could write into it.
      readonly resolved: string;
      readonly isDirectory: boolean;
      readonly isEmptyDirectory: boolean;
      readonly writableByRemappedRoot: boolean;
    }
  | {
      readonly kind: 'missing';
      // The nearest directory on the way that exists, symlinks followed.
      readonly nearest: string;
      readonly missingLevels: number;
      readonly nearestWritableByRemappedRoot: boolean;
      // True when a symlink planted in `nearest` by someone else than root
      // would not be followed by the engine (sticky, world-writable, root
      // owned, with fs.protected_symlinks on): the usual /tmp.
      readonly nearestProtectsSymlinks: boolean;
      // Directories above `nearest` that a user other than root or the
      // remapped root could swap for a symlink, as "path (uid U, mode M)".
      readonly swappableAncestors: readonly string[];
    }
  | { readonly kind: 'unexaminable'; readonly why: string };

// The identity the engine maps a container's root to (--userns-remap).
export interface RemappedRoot {
  readonly uid: number;
  readonly gid: number;
}

// The answer to one lookup: found, known not to exist, or not learnable.
export type Lookup<T> =
  | { readonly kind: 'found'; readonly value: T }
  | { readonly kind: 'absent' }
  | { readonly kind: 'unknown'; readonly why: string };

// Everything gathered for one call, keyed by what was asked.
export interface Facts {
  readonly containers: ReadonlyMap<string, Lookup<ContainerFacts>>;
  // exec id -> the container it runs in
  readonly execs: ReadonlyMap<string, Lookup<ContainerFacts>>;
  readonly volumes: ReadonlyMap<string, Lookup<VolumeFacts>>;
  readonly paths: ReadonlyMap<string, PathFacts>;
}

export const NO_FACTS: Facts = {
  containers: new Map(),
  execs: new Map(),
  volumes: new Map(),
  paths: new Map(),
};

// What a call needs looked up before it can be judged.
export interface FactNeeds {
  readonly containers: readonly string[];
  readonly execs: readonly string[];
  readonly volumes: readonly string[];
  readonly paths: readonly string[];
}

export function needsNothing(n: FactNeeds): boolean {
  return n.containers.length === 0 && n.execs.length === 0 && n.volumes.length === 0 && n.paths.length === 0;
}
