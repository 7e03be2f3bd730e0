// `userns-guard install` and `uninstall`: put the running binary, the
// embedded systemd units, the daemon.json entries and the dockremap
// subordinate ids in place (or take them out again). Both only write files:
// restarting the engine is left to the operator, who gets the commands.

import fs from 'node:fs';
import path from 'node:path';
import { isSea } from 'node:sea';
import { DEFAULT_SOCKET } from '../plugin/cli.ts';
import { applyChange, describeChange, isDirectory, readIfExists, type FileChange } from './fileChanges.ts';
import {
  appendLine, AUTHZ_KEY, DEFAULT_REMAP_USER, findFreeRange, formatDaemonJson, idsByName, keysSetByFlags, mergeForInstall, ownerAliases,
  parseSubIds, rangesOwnedBy, readDaemonJson, REMAP_KEY, REMAP_RANGE_SIZE, removeForUninstall, type DaemonConfig,
} from './hostFiles.ts';
import { absolutePath, exitQuietlyOnClosedStdout, parseSubcommandArgs } from './subcommandArgs.ts';
import { embeddedUnits, socketUnitName, topLevelUnitNames, withBinaryPath, type Units } from './units.ts';

export const PLUGIN_NAME = 'userns-guard';
export const DEFAULT_PREFIX = '/usr/local/sbin';

export const INSTALL_USAGE = `Usage: userns-guard install [--dry-run] [--prefix DIR] [--root DIR]

Copies this binary to DIR/userns-guard, writes the systemd units, adds
"userns-remap" and the authorization plugin to /etc/docker/daemon.json (other
keys are kept; the old file is backed up next to it) and gives dockremap a free
range in /etc/subuid and /etc/subgid. Never restarts the engine: it prints the
commands that remain. Running it again changes nothing.

Options:
  --dry-run      print every file it would write or change, change nothing
  --prefix DIR   where the binary goes (default ${DEFAULT_PREFIX})
  --root DIR     operate on the tree under DIR instead of /
  --help         print this help and exit
`;

export const UNINSTALL_USAGE = `Usage: userns-guard uninstall [--dry-run] [--prefix DIR] [--root DIR]

Removes the systemd units, the binary in DIR and the plugin entry in
/etc/docker/daemon.json (backed up first). Leaves "userns-remap" and the
subordinate ids alone: containers and images made under remapping need them.

Options:
  --dry-run      print every file it would remove or change, change nothing
  --prefix DIR   where the binary was installed (default ${DEFAULT_PREFIX})
  --root DIR     operate on the tree under DIR instead of /
  --help         print this help and exit
`;

interface Layout {
  readonly root: string;
  readonly binary: string; // as the host sees it: what ExecStart runs
  readonly binaryFile: string; // the file this run writes (under --root)
  readonly unitDir: string;
  readonly daemonJson: string;
  readonly subuid: string;
  readonly subgid: string;
  readonly passwd: string;
  readonly group: string;
}

type Plan = { readonly ok: true; readonly changes: FileChange[]; readonly remapTurnedOn: boolean } | { readonly ok: false; readonly why: string };

interface CommonFlags {
  'dry-run'?: boolean;
  prefix?: string;
  root?: string;
}

const FLAGS = {
  'dry-run': { type: 'boolean' },
  prefix: { type: 'string' },
  root: { type: 'string' },
} as const;

export async function installCommand(args: readonly string[]): Promise<number> {
  exitQuietlyOnClosedStdout();
  const flags = parseFlags('install', INSTALL_USAGE, args);
  if ('code' in flags) return flags.code;
  const { layout, dryRun } = flags;
  if (!isSea()) {
    process.stderr.write('userns-guard install: run the packed binary (dist/userns-guard): install copies the running executable, and this is the Node runtime\n');
    return 1;
  }
  const units = embeddedUnits();
  if (topLevelUnitNames(units).length === 0) {
    process.stderr.write('userns-guard install: this binary carries no systemd units (it was built without systemd/); rebuild it\n');
    return 1;
  }
  const plan = planInstall(layout, units, process.execPath);
  return carryOut('install', plan, layout, dryRun, installSteps);
}

export async function uninstallCommand(args: readonly string[]): Promise<number> {
  exitQuietlyOnClosedStdout();
  const flags = parseFlags('uninstall', UNINSTALL_USAGE, args);
  if ('code' in flags) return flags.code;
  const { layout, dryRun } = flags;
  return carryOut('uninstall', planUninstall(layout, embeddedUnits()), layout, dryRun, uninstallSteps);
}

function parseFlags(command: string, usage: string, args: readonly string[]): { layout: Layout; dryRun: boolean } | { code: number } {
  const parsed = parseSubcommandArgs<CommonFlags>(command, usage, args, FLAGS);
  if (parsed.kind === 'exit') return parsed;
  const prefix = absolutePath(command, usage, 'prefix', parsed.values.prefix, DEFAULT_PREFIX);
  if (typeof prefix !== 'string') return prefix;
  const root = absolutePath(command, usage, 'root', parsed.values.root, '/');
  if (typeof root !== 'string') return root;
  if (!isDirectory(root)) {
    process.stderr.write(`userns-guard ${command}: --root ${root} is not a directory\n`);
    return { code: 1 };
  }
  return { layout: layoutFor(path.resolve(root), path.posix.resolve(prefix)), dryRun: parsed.values['dry-run'] ?? false };
}

function layoutFor(root: string, prefix: string): Layout {
  const under = (p: string) => path.join(root, p);
  const binary = path.posix.join(prefix, 'userns-guard');
  return {
    root,
    binary,
    binaryFile: under(binary),
    unitDir: under('/etc/systemd/system'),
    daemonJson: under('/etc/docker/daemon.json'),
    subuid: under('/etc/subuid'),
    subgid: under('/etc/subgid'),
    passwd: under('/etc/passwd'),
    group: under('/etc/group'),
  };
}

// ---------------------------------------------------------------------------
// Plans

// Refusals come first, before the 120 MiB binary is even compared; the
// changes are applied in list order, daemon.json last, so the engine is never
// configured for a plugin whose files are not in place yet.
function planInstall(layout: Layout, units: Units, executable: string): Plan {
  const daemonText = readIfExists(layout.daemonJson);
  const daemon = readDaemonJson(daemonText);
  if (daemon.kind === 'invalid') return refuseDaemonJson(layout, daemon.why);
  const current = daemon.kind === 'ok' ? daemon.config : {};
  const merged = mergeForInstall(current, PLUGIN_NAME);
  if (!merged.ok) return refuseDaemonJson(layout, merged.why);
  const clash = flagClash(layout, current, merged.config);
  if (clash !== null) return clash;

  // Ranges only for the user install itself names; a remap user the operator
  // chose is theirs to provision (doctor checks it either way).
  const subIds: FileChange[] = [];
  if (merged.config[REMAP_KEY] === 'default') {
    for (const [file, ids] of [[layout.subuid, layout.passwd], [layout.subgid, layout.group]] as const) {
      const change = subIdChange(file, ids);
      if (change === null) continue;
      if (!change.ok) return change;
      subIds.push(change.change);
    }
  }

  const changes: FileChange[] = [];
  if (!sameFile(executable, layout.binaryFile, 0o755)) {
    changes.push({ kind: 'copy', path: layout.binaryFile, existed: fs.existsSync(layout.binaryFile), from: executable, mode: 0o755, why: `copy of ${executable}` });
  }
  for (const [rel, content] of Object.entries(units)) {
    changes.push(...writeIfDifferent(path.join(layout.unitDir, rel), withBinaryPath(content, layout.binary), 0o644, 'systemd unit'));
  }
  changes.push(...subIds);
  if (merged.changes.length > 0) changes.push(...daemonJsonChanges(layout, daemonText, merged.config, merged.changes));
  return { ok: true, changes, remapTurnedOn: merged.changes.some((c) => c.includes(REMAP_KEY)) };
}

function planUninstall(layout: Layout, units: Units): Plan {
  const daemonText = readIfExists(layout.daemonJson);
  const daemon = readDaemonJson(daemonText);
  if (daemon.kind === 'invalid') return refuseDaemonJson(layout, daemon.why);

  const changes: FileChange[] = [];
  if (daemon.kind === 'ok') {
    const edited = removeForUninstall(daemon.config, PLUGIN_NAME);
    if (!edited.ok) return refuseDaemonJson(layout, edited.why);
    if (edited.changes.length > 0) changes.push(...daemonJsonChanges(layout, daemonText, edited.config, edited.changes));
  }

  const removed = new Set<string>();
  for (const rel of Object.keys(units)) {
    const file = path.join(layout.unitDir, rel);
    if (exists(file)) {
      changes.push({ kind: 'remove', path: file, why: 'systemd unit' });
      removed.add(file);
    }
  }
  // What `systemctl enable` linked: left behind, they would point at nothing.
  for (const name of topLevelUnitNames(units)) {
    for (const link of enablementLinks(layout.unitDir, name)) {
      changes.push({ kind: 'remove', path: link, why: 'link made by systemctl enable' });
      removed.add(link);
    }
  }
  // Drop-in directories (docker.service.d) go too once nothing else is in them.
  const dirs = new Set(Object.keys(units).filter((rel) => rel.includes('/')).map((rel) => path.dirname(path.join(layout.unitDir, rel))));
  for (const dir of dirs) {
    if (isDirectory(dir) && fs.readdirSync(dir).every((e) => removed.has(path.join(dir, e)))) {
      changes.push({ kind: 'rmdir', path: dir, why: 'empty drop-in directory' });
    }
  }

  if (exists(layout.binaryFile)) changes.push({ kind: 'remove', path: layout.binaryFile, why: 'the userns-guard binary' });
  return { ok: true, changes, remapTurnedOn: false };
}

function writeIfDifferent(file: string, content: string, mode: number, why: string): FileChange[] {
  const current = readIfExists(file);
  if (current === content && (fs.statSync(file).mode & 0o7777) === mode) return [];
  return [{ kind: 'write', path: file, existed: current !== null, content, mode, why }];
}

function subIdChange(file: string, idsFile: string): { ok: true; change: FileChange } | { ok: false; why: string } | null {
  const text = readIfExists(file);
  const ranges = parseSubIds(text ?? '');
  const owners = ownerAliases(DEFAULT_REMAP_USER, idsByName(readIfExists(idsFile)));
  const have = rangesOwnedBy(ranges, owners).reduce((sum, r) => sum + r.count, 0);
  if (have >= REMAP_RANGE_SIZE) return null;
  const start = findFreeRange(ranges);
  if (start === null) return { ok: false, why: `${file} has no free block of ${REMAP_RANGE_SIZE} ids left for ${DEFAULT_REMAP_USER}` };
  const line = `${DEFAULT_REMAP_USER}:${start}:${REMAP_RANGE_SIZE}`;
  return {
    ok: true,
    change: { kind: 'write', path: file, existed: text !== null, content: appendLine(text ?? '', line), mode: text === null ? 0o644 : modeOf(file), why: `add ${line}`, ...ownerOf(file) },
  };
}

function daemonJsonChanges(layout: Layout, oldText: string | null, config: DaemonConfig, what: readonly string[]): FileChange[] {
  const content = formatDaemonJson(config);
  const changes: FileChange[] = [];
  const mode = oldText === null ? 0o644 : modeOf(layout.daemonJson);
  if (oldText !== null) {
    const backup = backupPath(layout.daemonJson);
    changes.push({ kind: 'write', path: backup, existed: false, content: oldText, mode, why: `backup of ${layout.daemonJson}`, summary: `    (the current ${path.basename(layout.daemonJson)}, byte for byte)`, ...ownerOf(layout.daemonJson) });
  }
  changes.push({ kind: 'write', path: layout.daemonJson, existed: oldText !== null, content, mode, why: what.join(', '), ...ownerOf(layout.daemonJson) });
  return changes;
}

// The first backup keeps its plain name; later ones never overwrite it, since
// it holds the file as it was before userns-guard ever touched it.
function backupPath(file: string): string {
  const plain = `${file}.userns-guard.bak`;
  if (!exists(plain)) return plain;
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  let candidate = `${file}.userns-guard.${stamp}.bak`;
  for (let n = 2; exists(candidate); n++) candidate = `${file}.userns-guard.${stamp}-${n}.bak`;
  return candidate;
}

// Where dockerd's command line is put together on the common distributions.
const DOCKERD_COMMAND_LINES = [
  '/lib/systemd/system/docker.service',
  '/usr/lib/systemd/system/docker.service',
  '/etc/systemd/system/docker.service',
  '/etc/default/docker',
  '/etc/sysconfig/docker',
];

function flagClash(layout: Layout, before: DaemonConfig, after: DaemonConfig): Plan | null {
  const added = [REMAP_KEY, AUTHZ_KEY].filter((k) => before[k] === undefined && after[k] !== undefined);
  if (added.length === 0) return null;
  const dropIns = path.join(layout.unitDir, 'docker.service.d');
  const files = [
    ...DOCKERD_COMMAND_LINES.map((f) => path.join(layout.root, f)),
    ...(isDirectory(dropIns) ? fs.readdirSync(dropIns).filter((n) => n.endsWith('.conf')).map((n) => path.join(dropIns, n)) : []),
  ];
  for (const file of files) {
    const keys = keysSetByFlags(readIfExists(file) ?? '');
    const key = added.find((k) => keys.has(k));
    if (key === undefined) continue;
    const flag = key === REMAP_KEY ? '--userns-remap' : '--authorization-plugin';
    return {
      ok: false,
      why:
        `${file} starts dockerd with ${flag}, and dockerd refuses to start when "${key}" is also in daemon.json. ` +
        `Remove ${flag} there and run install again (it puts the setting in ${layout.daemonJson}); nothing was changed`,
    };
  }
  return null;
}

function refuseDaemonJson(layout: Layout, why: string): Plan {
  return { ok: false, why: `refusing to edit ${layout.daemonJson}: ${why}. Fix the file by hand (the engine would not start with it either); nothing was changed` };
}

function enablementLinks(unitDir: string, unitName: string): string[] {
  if (!isDirectory(unitDir)) return [];
  const out: string[] = [];
  for (const e of fs.readdirSync(unitDir, { withFileTypes: true })) {
    if (!e.isDirectory() || !/\.(wants|requires|upholds)$/.test(e.name)) continue;
    const link = path.join(unitDir, e.name, unitName);
    try {
      if (fs.lstatSync(link).isSymbolicLink()) out.push(link);
    } catch {
      // not linked here
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Carrying out

function carryOut(command: string, plan: Plan, layout: Layout, dryRun: boolean, steps: (layout: Layout, plan: Plan & { ok: true }) => string): number {
  if (!plan.ok) {
    process.stderr.write(`userns-guard ${command}: ${plan.why}\n`);
    return 1;
  }
  if (plan.changes.length === 0) {
    if (command === 'install') {
      process.stdout.write(`Nothing to do: userns-guard is already installed${rootNote(layout)}.\n`);
      process.stdout.write(steps(layout, plan));
    } else {
      process.stdout.write(`Nothing to do: nothing of userns-guard is left to remove${rootNote(layout)}.\n`);
    }
    return 0;
  }
  if (!dryRun && layout.root === '/' && process.getuid?.() !== 0) {
    process.stderr.write(`userns-guard ${command}: must run as root (sudo userns-guard ${command}); nothing was changed\n`);
    return 1;
  }
  for (const change of plan.changes) {
    if (dryRun) {
      process.stdout.write(`${describeChange(change, true)}\n`);
      continue;
    }
    try {
      applyChange(change);
    } catch (err) {
      process.stderr.write(`userns-guard ${command}: ${change.path}: ${(err as Error).message}; the changes listed above were made, the rest were not\n`);
      return 1;
    }
    process.stdout.write(`${describeChange(change, false)}\n`);
  }
  if (dryRun) {
    process.stdout.write(`\nDry run: nothing was changed.\n`);
    return 0;
  }
  process.stdout.write(steps(layout, plan));
  return 0;
}

function installSteps(layout: Layout, plan: Plan & { ok: true }): string {
  const units = embeddedUnits();
  const lines = [
    '',
    'Remaining steps, as root (install never restarts the engine):',
    '  systemctl daemon-reload',
    `  systemctl enable --now ${socketUnitName(units)}`,
    '  systemctl restart docker',
    `  ${layout.binary} doctor`,
    '',
    `dockerd creates the ${DEFAULT_REMAP_USER} user itself when it starts with "userns-remap": "default"; install creates no users.`,
    'Restarting docker stops running containers unless "live-restore" is on.',
  ];
  if (plan.remapTurnedOn) {
    lines.push(
      'userns-remap is new on this host: the engine starts over in a separate data directory (/var/lib/docker/<uid>.<gid>),',
      'so images and containers made before stay hidden until remapping is turned off; load or pull images again.',
    );
  }
  return `${lines.join('\n')}\n`;
}

function uninstallSteps(layout: Layout): string {
  const names = topLevelUnitNames(embeddedUnits());
  return [
    '',
    'Remaining steps, as root, in this order (the engine refuses every API call while',
    'an authorization plugin it was started with is gone, so restart it before stopping the plugin):',
    '  systemctl daemon-reload',
    '  systemctl restart docker',
    `  systemctl stop ${names.length > 0 ? names.join(' ') : 'userns-guard.socket userns-guard.service'}`,
    // After daemon-reload the stopped socket no longer knows RemoveOnStop=.
    `  rm -f ${DEFAULT_SOCKET}`,
    '',
    `"userns-remap" and the ${DEFAULT_REMAP_USER} ranges in /etc/subuid and /etc/subgid stay${rootNote(layout)}: containers and images made under remapping need them.`,
    '',
  ].join('\n');
}

function rootNote(layout: Layout): string {
  return layout.root === '/' ? '' : ` (under ${layout.root})`;
}

// ---------------------------------------------------------------------------
// Small file helpers

function exists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

function modeOf(file: string): number {
  return fs.statSync(file).mode & 0o7777;
}

function ownerOf(file: string): { owner?: { uid: number; gid: number } } {
  try {
    const st = fs.statSync(file);
    return { owner: { uid: st.uid, gid: st.gid } };
  } catch {
    return {};
  }
}

// Byte for byte, in blocks: the binary is over 100 MiB.
function sameFile(a: string, b: string, mode: number): boolean {
  let sb: fs.Stats;
  try {
    sb = fs.statSync(b);
  } catch {
    return false;
  }
  const sa = fs.statSync(a);
  if (!sb.isFile() || sa.size !== sb.size || (sb.mode & 0o7777) !== mode) return false;
  if (sa.dev === sb.dev && sa.ino === sb.ino) return true;
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.alloc(1 << 20);
    const bb = Buffer.alloc(1 << 20);
    for (;;) {
      const na = fs.readSync(fa, ba, 0, ba.length, null);
      const nb = fs.readSync(fb, bb, 0, bb.length, null);
      if (na !== nb) return false;
      if (na === 0) return true;
      if (!ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}
