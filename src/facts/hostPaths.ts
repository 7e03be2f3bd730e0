// Examines a host path the way the engine's mkdir -p will meet it: component
// by component from /, following symlinks as the kernel does, noting every
// directory passed through. Reads only (lstat, readlink, stat, readdir);
// the answer says what the remapped root could do there itself.

import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import type { PathFacts, RemappedRoot } from '../policy/facts.ts';

// Subordinate ranges are 65536 ids by default; inodes owned inside the range
// are the containers' to change whatever their mode.
const RANGE = 65536;
const MAX_SYMLINKS = 40;

export async function examinePath(raw: string, root: RemappedRoot): Promise<PathFacts> {
  try {
    return await examine(raw, root);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { kind: 'unexaminable', why: e.code === 'EACCES' ? `permission denied (${e.path ?? raw})` : e.message };
  }
}

interface Step {
  readonly dir: string;
  readonly st: Stats;
}

async function examine(raw: string, root: RemappedRoot): Promise<PathFacts> {
  if (!raw.startsWith('/')) return { kind: 'unexaminable', why: 'not an absolute path' };
  const queue = raw.split('/').filter((c) => c !== '' && c !== '.');
  const lstatOf = lstatsAhead(queue);
  let cur = '/';
  const traversed: Step[] = [{ dir: '/', st: await stat('/') }];
  let links = 0;
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (name === '..') {
      cur = parentOf(cur);
      continue;
    }
    const next = cur === '/' ? `/${name}` : `${cur}/${name}`;
    let st: Stats;
    try {
      st = await lstatOf(next);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return missing(cur, 1 + queue.filter((c) => c !== '..').length, traversed, root);
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) return { kind: 'unexaminable', why: 'too many levels of symbolic links' };
      const target = await readlink(next);
      if (target.startsWith('/')) cur = '/';
      queue.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
      continue;
    }
    if (queue.length > 0 && !st.isDirectory()) return { kind: 'unexaminable', why: `${next} is not a directory` };
    cur = next;
    if (st.isDirectory()) traversed.push({ dir: cur, st });
    if (queue.length === 0) {
      const isDirectory = st.isDirectory();
      return {
        kind: 'exists',
        resolved: cur,
        isDirectory,
        isEmptyDirectory: isDirectory && (await readdir(cur)).length === 0,
        writableByRemappedRoot: isDirectory && reachable(traversed.slice(0, -1), root) && canWrite(st, root),
      };
    }
  }
  // The path named / itself, or ended in '..'.
  const st = await stat(cur);
  return {
    kind: 'exists',
    resolved: cur,
    isDirectory: st.isDirectory(),
    isEmptyDirectory: false,
    writableByRemappedRoot: st.isDirectory() && canWrite(st, root),
  };
}

// Each lstat is a round trip through libuv's thread pool. The walk above
// needs the path's prefixes one after the other, so they are all asked for
// at once, up to the first '..'; a prefix the walk does not reach as asked
// (a symlink sent it elsewhere) is looked at anew when it is reached.
function lstatsAhead(components: readonly string[]): (path: string) => Promise<Stats> {
  const ahead = new Map<string, Promise<Stats>>();
  let prefix = '';
  for (const c of components) {
    if (c === '..') break;
    prefix += `/${c}`;
    const pending = lstat(prefix);
    // Those past a missing level or a symlink are never awaited: their
    // errors must not surface as unhandled rejections.
    pending.catch(() => {});
    ahead.set(prefix, pending);
  }
  return (path) => {
    const pending = ahead.get(path);
    ahead.delete(path);
    return pending ?? lstat(path);
  };
}

async function missing(nearest: string, missingLevels: number, traversed: readonly Step[], root: RemappedRoot): Promise<PathFacts> {
  const last = traversed[traversed.length - 1]!;
  const above = traversed.slice(0, -1);
  return {
    kind: 'missing',
    nearest,
    missingLevels,
    nearestWritableByRemappedRoot: reachable(above, root) && canWrite(last.st, root),
    nearestProtectsSymlinks: last.st.uid === 0 && isStickyWorldWritable(last.st) && (await protectedSymlinks()),
    swappableAncestors: above.filter((s) => swappable(s.st)).map((s) => `${s.dir} (uid ${s.st.uid}, mode ${(s.st.mode & 0o7777).toString(8)})`),
  };
}

function parentOf(dir: string): string {
  const at = dir.lastIndexOf('/');
  return at <= 0 ? '/' : dir.slice(0, at);
}

function inRange(id: number, base: number): boolean {
  return id >= base && id < base + RANGE;
}

// What the mode bits grant the remapped root (uid/gid at the start of their
// ranges), or any permission at all for inodes the containers own.
function grants(st: Stats, root: RemappedRoot, bits: number): boolean {
  if (inRange(st.uid, root.uid) && inRange(st.gid, root.gid)) return true;
  const mode = st.mode;
  if (st.uid === root.uid) return ((mode >> 6) & bits) === bits;
  if (st.gid === root.gid) return ((mode >> 3) & bits) === bits;
  return (mode & bits) === bits;
}

function canWrite(st: Stats, root: RemappedRoot): boolean {
  return grants(st, root, 0o3);
}

function reachable(dirs: readonly Step[], root: RemappedRoot): boolean {
  return dirs.every((s) => grants(s.st, root, 0o1));
}

function isStickyWorldWritable(st: Stats): boolean {
  return (st.mode & 0o1000) !== 0 && (st.mode & 0o002) !== 0;
}

// Someone other than root can replace an entry of this directory: its owner
// (who can chmod it), its group if group-writable, or anyone if it is
// world-writable without the sticky bit.
function swappable(st: Stats): boolean {
  if (st.uid !== 0) return true;
  if ((st.mode & 0o020) !== 0 && st.gid !== 0) return true;
  return (st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0;
}

let protectedSymlinksValue: Promise<boolean> | undefined;

// fs.protected_symlinks=1: in a sticky world-writable directory, a symlink
// is followed only by its owner or when it belongs to the directory's owner.
function protectedSymlinks(): Promise<boolean> {
  protectedSymlinksValue ??= readFile('/proc/sys/fs/protected_symlinks', 'utf8').then(
    (v) => v.trim() === '1',
    () => false,
  );
  return protectedSymlinksValue;
}
