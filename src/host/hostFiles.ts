// The host files install edits and doctor reads: /etc/docker/daemon.json,
// /etc/subuid, /etc/subgid, /etc/passwd, /etc/group. Pure functions: text in,
// decision out; reading and writing the files is the callers' job.

// ---------------------------------------------------------------------------
// daemon.json

export type DaemonConfig = Record<string, unknown>;

export type DaemonJsonRead =
  | { readonly kind: 'missing' }
  | { readonly kind: 'ok'; readonly config: DaemonConfig }
  | { readonly kind: 'invalid'; readonly why: string };

export const REMAP_KEY = 'userns-remap';
export const AUTHZ_KEY = 'authorization-plugins';

// JSON.rawJSON (Node 21+) lets numbers travel through parse and stringify
// with their exact text, so a rewrite never rounds a big integer.
const rawJSON = (JSON as unknown as { rawJSON?: (text: string) => unknown }).rawJSON;

export function readDaemonJson(text: string | null): DaemonJsonRead {
  if (text === null) return { kind: 'missing' };
  // dockerd starts with an empty (or blank) daemon.json as if it were {}.
  if (text.trim() === '') return { kind: 'ok', config: {} };
  let value: unknown;
  try {
    value = JSON.parse(text, function (this: unknown, _key: string, v: unknown, context?: { source?: string }) {
      return typeof v === 'number' && rawJSON !== undefined && context?.source !== undefined ? rawJSON(context.source) : v;
    } as (key: string, value: unknown) => unknown);
  } catch (err) {
    return { kind: 'invalid', why: (err as Error).message };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { kind: 'invalid', why: 'the top level is not a JSON object' };
  }
  return { kind: 'ok', config: value as DaemonConfig };
}

export function formatDaemonJson(config: DaemonConfig): string {
  return `${JSON.stringify(config, null, 2)}\n`;
}

export type ConfigEdit =
  | { readonly ok: true; readonly config: DaemonConfig; readonly changes: readonly string[] }
  | { readonly ok: false; readonly why: string };

// Adds the plugin and turns on remapping, touching nothing else: an existing
// userns-remap (another user, say) is the operator's choice and stays.
export function mergeForInstall(config: DaemonConfig, pluginName: string): ConfigEdit {
  const plugins = pluginList(config);
  if (!plugins.ok) return plugins;
  const remap = config[REMAP_KEY];
  if (remap !== undefined && typeof remap !== 'string') {
    return { ok: false, why: `"${REMAP_KEY}" is ${JSON.stringify(remap)}, not a string` };
  }
  const next: DaemonConfig = { ...config };
  const changes: string[] = [];
  if (remap === undefined || remap === '') {
    next[REMAP_KEY] = 'default';
    changes.push(`set "${REMAP_KEY}": "default"`);
  }
  if (!plugins.names.includes(pluginName)) {
    next[AUTHZ_KEY] = [...plugins.names, pluginName];
    changes.push(`add "${pluginName}" to "${AUTHZ_KEY}"`);
  }
  return { ok: true, config: next, changes };
}

// Takes the plugin out again; userns-remap stays, since containers and images
// created under it live in the remapped data root.
export function removeForUninstall(config: DaemonConfig, pluginName: string): ConfigEdit {
  const plugins = pluginList(config);
  if (!plugins.ok) return plugins;
  if (!plugins.names.includes(pluginName)) return { ok: true, config, changes: [] };
  const next: DaemonConfig = { ...config };
  const rest = plugins.names.filter((n) => n !== pluginName);
  if (rest.length === 0) delete next[AUTHZ_KEY];
  else next[AUTHZ_KEY] = rest;
  return { ok: true, config: next, changes: [`remove "${pluginName}" from "${AUTHZ_KEY}"`] };
}

export function pluginList(config: DaemonConfig): { ok: true; names: string[] } | { ok: false; why: string } {
  const value = config[AUTHZ_KEY];
  if (value === undefined || value === null) return { ok: true, names: [] };
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    return { ok: false, why: `"${AUTHZ_KEY}" is ${JSON.stringify(value)}, not a list of plugin names` };
  }
  return { ok: true, names: value as string[] };
}

// ---------------------------------------------------------------------------
// userns-remap: which user and group the engine maps container ids onto

export const DEFAULT_REMAP_USER = 'dockremap';

export interface RemapIdentity {
  readonly user: string;
  readonly group: string;
}

// moby's parseRemappedRoot: "default" means dockremap:dockremap, and a lone
// user name stands for the group of the same name.
export function remapIdentity(value: string): RemapIdentity {
  if (value === 'default') return { user: DEFAULT_REMAP_USER, group: DEFAULT_REMAP_USER };
  const [user = '', group] = value.split(':', 2);
  return { user, group: group === undefined || group === '' ? user : group };
}

// ---------------------------------------------------------------------------
// /etc/subuid and /etc/subgid

export interface SubIdRange {
  readonly owner: string; // a name, or a numeric id
  readonly start: number;
  readonly count: number;
}

export const REMAP_RANGE_SIZE = 65536;
// useradd's SUB_UID_MIN / SUB_GID_MIN: below it are the host's own ids.
export const FIRST_SUBORDINATE_ID = 100000;
const MAX_ID = 0xffffffff;

// Lines that do not read as name:start:count are skipped, as shadow does.
export function parseSubIds(text: string): SubIdRange[] {
  const out: SubIdRange[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const m = /^([^:]+):(\d+):(\d+)$/.exec(trimmed);
    if (m === null) continue;
    const start = Number(m[2]);
    const count = Number(m[3]);
    if (count > 0 && start + count - 1 <= MAX_ID) out.push({ owner: m[1]!, start, count });
  }
  return out;
}

export function rangesOwnedBy(ranges: readonly SubIdRange[], owners: ReadonlySet<string>): SubIdRange[] {
  return ranges.filter((r) => owners.has(r.owner));
}

export function overlaps(a: SubIdRange, b: SubIdRange): boolean {
  return a.start < b.start + b.count && b.start < a.start + a.count;
}

// The lowest free block at or above FIRST_SUBORDINATE_ID, found the way
// useradd does: try the floor, then the end of every existing range.
export function findFreeRange(ranges: readonly SubIdRange[], count = REMAP_RANGE_SIZE): number | null {
  const candidates = [FIRST_SUBORDINATE_ID, ...ranges.map((r) => r.start + r.count)]
    .filter((s) => s >= FIRST_SUBORDINATE_ID)
    .sort((a, b) => a - b);
  for (const start of candidates) {
    if (start + count - 1 > MAX_ID) break;
    const block = { owner: '', start, count };
    if (!ranges.some((r) => overlaps(r, block))) return start;
  }
  return null;
}

export function appendLine(text: string, line: string): string {
  return `${text === '' || text.endsWith('\n') ? text : `${text}\n`}${line}\n`;
}

// ---------------------------------------------------------------------------
// /etc/passwd and /etc/group: name <-> numeric id, so a subuid line keyed by
// uid counts for its user (newer engines accept both).

export function idsByName(text: string | null): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of (text ?? '').split('\n')) {
    const fields = line.split(':');
    if (fields.length >= 3 && fields[0] !== '' && /^\d+$/.test(fields[2]!)) out.set(fields[0]!, fields[2]!);
  }
  return out;
}

// Every spelling (name and numeric id) under which `who` may own ranges.
export function ownerAliases(who: string, ids: ReadonlyMap<string, string>): Set<string> {
  const aliases = new Set([who]);
  const id = ids.get(who);
  if (id !== undefined) aliases.add(id);
  if (/^\d+$/.test(who)) {
    for (const [name, num] of ids) if (num === who) aliases.add(name);
  }
  return aliases;
}

// ---------------------------------------------------------------------------
// dockerd flags set elsewhere: dockerd refuses to start when a directive is
// given both as a flag and in daemon.json, so install must not add a key that
// the engine's command line already sets.

export const FLAG_KEYS: Readonly<Record<string, string>> = {
  'userns-remap': REMAP_KEY,
  'authorization-plugin': AUTHZ_KEY,
};

// The daemon.json keys set by flags in one file (a unit, a drop-in,
// /etc/default/docker), ignoring comment lines.
export function keysSetByFlags(text: string): Set<string> {
  const keys = new Set<string>();
  for (const line of text.split('\n')) {
    if (/^\s*[#;]/.test(line)) continue;
    for (const m of line.matchAll(/(?:^|[\s"'])--(userns-remap|authorization-plugin)(?=[=\s"']|$)/g)) keys.add(FLAG_KEYS[m[1]!]!);
  }
  return keys;
}
