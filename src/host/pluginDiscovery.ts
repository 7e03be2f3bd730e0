// The plugins the engine discovers on its own (moby's pkg/plugins Scan):
// sockets in /run/docker/plugins and spec files in /etc/docker/plugins and
// /usr/lib/docker/plugins. Asked for a volume name it does not know, the
// engine activates every one of them to ask it, and waits about 15 s on one
// that does not answer. userns-guard looks a named volume up before a create
// may fill it, so on such a host it refuses `docker run -v NEWNAME:/data`
// once --lookup-timeout has passed. doctor finds those entries.

import fs from 'node:fs';
import path from 'node:path';
import { ok, warn, type Check } from './doctorChecks.ts';
import { isDirectory } from './fileChanges.ts';
import { activate } from './liveChecks.ts';

const SOCKETS_DIR = '/run/docker/plugins';
const SPEC_DIRS = ['/etc/docker/plugins', '/usr/lib/docker/plugins'];
const ACTIVATE_TIMEOUT_MS = 2_000;

export interface DiscoveredPlugin {
  readonly name: string;
  // The file the engine finds it by.
  readonly file: string;
  // A unix socket path; null when the address is not one doctor can dial.
  readonly socket: string | null;
  readonly address: string;
}

export type Answer = 'answers' | 'unchecked' | { readonly problem: string };

// `root` is doctor's --root; every path is read under it.
export function discoverPlugins(root: string): DiscoveredPlugin[] {
  const under = (p: string) => path.join(root, p);
  const found: DiscoveredPlugin[] = [];
  for (const entry of readDir(under(SOCKETS_DIR))) {
    const direct = path.join(under(SOCKETS_DIR), entry);
    const file = isDirectory(direct) ? path.join(direct, `${entry}.sock`) : direct;
    if (!isSocket(file)) continue;
    const name = path.basename(file).replace(/\.[^.]*$/, '');
    found.push({ name, file, socket: file, address: `unix://${file}` });
  }
  for (const dir of SPEC_DIRS.map(under)) {
    for (const entry of readDir(dir)) {
      let file = path.join(dir, entry);
      if (isDirectory(file)) {
        const inner = readDir(file).find((n) => n.replace(/\.[^.]*$/, '') === entry);
        if (inner === undefined) continue;
        file = path.join(file, inner);
      }
      const ext = path.extname(file);
      if (ext !== '.spec' && ext !== '.json') continue;
      found.push(specEntry(path.basename(file, ext), file, ext));
    }
  }
  return found;
}

function specEntry(name: string, file: string, ext: string): DiscoveredPlugin {
  let address = '';
  try {
    const text = fs.readFileSync(file, 'utf8');
    address = ext === '.json' ? String((JSON.parse(text) as { Addr?: unknown }).Addr ?? '') : text.trim();
  } catch {
    // unreadable or not JSON: no address, reported as such
  }
  const unix = /^unix:\/\/(.+)$/.exec(address);
  // Dialled as written, as the engine would: only the files are under --root.
  return { name, file, socket: unix === null ? null : unix[1]!, address };
}

// What the engine's first call to each plugin would get.
export async function probePlugins(plugins: readonly DiscoveredPlugin[]): Promise<Answer[]> {
  return Promise.all(plugins.map(async (p): Promise<Answer> => {
    if (p.socket === null) return p.address === '' || !/^tcp:\/\//.test(p.address) ? { problem: `no usable address (${JSON.stringify(p.address.slice(0, 80))})` } : 'unchecked';
    try {
      const r = await activate(p.socket, ACTIVATE_TIMEOUT_MS);
      return r.status === 200 ? 'answers' : { problem: `answers /Plugin.Activate with ${r.status}` };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { problem: `no socket at ${p.socket}` };
      if (code === 'ECONNREFUSED') return { problem: `nothing listens on ${p.socket}` };
      return { problem: (err as Error).message };
    }
  }));
}

export function pluginDiscoveryCheck(plugins: readonly DiscoveredPlugin[], answers: readonly Answer[], ownSocket: string): Check {
  const id = 'engine.plugin-discovery';
  const broken = plugins
    .map((p, i) => ({ p, a: answers[i]! }))
    .filter(({ p, a }) => typeof a === 'object' && p.socket !== ownSocket);
  if (broken.length === 0) {
    const others = plugins.filter((p) => p.socket !== ownSocket).length;
    return ok(id, others === 0 ? 'the engine discovers no other plugins' : `all ${others} other plugin(s) the engine discovers answer`);
  }
  const list = broken.map(({ p, a }) => `${p.file} (${(a as { problem: string }).problem})`).join('; ');
  return warn(
    id,
    `the engine discovers ${broken.length} plugin(s) that do not answer: ${list}. Asked for a volume name it does not know, the engine waits about 15 s on each, and userns-guard refuses such a create (docker run -v NEWNAME:/data) once --lookup-timeout has passed`,
    `remove the stale files (${broken.map(({ p }) => p.file).join(' ')}) or start their plugins`,
  );
}

function readDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function isSocket(p: string): boolean {
  try {
    return fs.statSync(p).isSocket();
  } catch {
    return false;
  }
}
