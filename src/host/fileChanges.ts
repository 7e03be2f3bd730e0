// A plan of file changes that can be shown (--dry-run) or carried out. The
// whole plan is made before anything is touched, so a refusal (a daemon.json
// that does not parse, say) leaves the host exactly as it was.

import fs from 'node:fs';
import path from 'node:path';

export type FileChange =
  | {
      readonly kind: 'write';
      readonly path: string;
      readonly existed: boolean;
      readonly content: string;
      readonly mode: number;
      // Why, in a few words: `set "userns-remap": "default"`, `backup of ...`.
      readonly why: string;
      // Printed by --dry-run instead of the content (a backup is a copy).
      readonly summary?: string;
      // Keep the owner of the file this replaces.
      readonly owner?: { uid: number; gid: number };
    }
  | { readonly kind: 'copy'; readonly path: string; readonly existed: boolean; readonly from: string; readonly mode: number; readonly why: string }
  | { readonly kind: 'remove'; readonly path: string; readonly why: string }
  // Only when empty: a directory install created (docker.service.d).
  | { readonly kind: 'rmdir'; readonly path: string; readonly why: string };

export function readIfExists(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

// Symlinks followed: what install and doctor walk into.
export function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function describeChange(change: FileChange, dryRun: boolean): string {
  const verb = (done: string, planned: string) => (dryRun ? `would ${planned}` : done);
  switch (change.kind) {
    case 'write': {
      const head = `${change.existed ? verb('updated', 'update') : verb('created', 'create')} ${change.path} (${change.why})`;
      if (!dryRun) return head;
      const body = change.summary ?? change.content.replace(/\n$/, '').split('\n').map((l) => `    | ${l}`).join('\n');
      return `${head}, mode ${octal(change.mode)}:\n${body}`;
    }
    case 'copy':
      return `${change.existed ? verb('replaced', 'replace') : verb('created', 'create')} ${change.path} (${change.why}), mode ${octal(change.mode)}`;
    case 'remove':
      return `${verb('removed', 'remove')} ${change.path} (${change.why})`;
    case 'rmdir':
      return `${verb('removed', 'remove')} directory ${change.path} (${change.why})`;
  }
}

// Each file is replaced whole by rename, so a crash leaves the old or the new
// content, never half of one: the engine refuses to start on a torn daemon.json.
export function applyChange(change: FileChange): void {
  switch (change.kind) {
    case 'write':
      fs.mkdirSync(path.dirname(change.path), { recursive: true, mode: 0o755 });
      replaceAtomically(change.path, change.mode, change.owner, (tmp) => fs.writeFileSync(tmp, change.content, { mode: change.mode, flag: 'wx' }));
      return;
    case 'copy':
      fs.mkdirSync(path.dirname(change.path), { recursive: true, mode: 0o755 });
      replaceAtomically(change.path, change.mode, undefined, (tmp) => fs.copyFileSync(change.from, tmp, fs.constants.COPYFILE_EXCL));
      return;
    case 'remove':
      fs.rmSync(change.path, { force: true });
      return;
    case 'rmdir':
      try {
        fs.rmdirSync(change.path);
      } catch (err) {
        // Someone else's file in there: the directory is not only ours.
        if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      return;
  }
}

function replaceAtomically(target: string, mode: number, owner: { uid: number; gid: number } | undefined, fill: (tmp: string) => void): void {
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.userns-guard-${process.pid}.tmp`);
  fs.rmSync(tmp, { force: true });
  try {
    fill(tmp);
    fs.chmodSync(tmp, mode); // the umask trimmed the mode given at creation
    if (owner !== undefined) fs.chownSync(tmp, owner.uid, owner.gid);
    const fd = fs.openSync(tmp, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8)}`;
}
