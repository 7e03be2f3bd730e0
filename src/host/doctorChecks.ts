// The host-side checks of `userns-guard doctor`: facts in, verdicts out.
// Reading the facts (files, /proc, stat) is doctor.ts's job.

import {
  AUTHZ_KEY, DEFAULT_REMAP_USER, findFreeRange, overlaps, ownerAliases, parseSubIds, pluginList, rangesOwnedBy,
  readDaemonJson, REMAP_KEY, REMAP_RANGE_SIZE, remapIdentity, type SubIdRange,
} from './hostFiles.ts';

export type Status = 'ok' | 'warn' | 'fail';

export interface Check {
  readonly id: string;
  readonly status: Status;
  readonly message: string;
  // One line an operator can act on; empty when there is nothing to do.
  readonly fix: string;
}

export function ok(id: string, message: string): Check {
  return { id, status: 'ok', message, fix: '' };
}
export function warn(id: string, message: string, fix: string): Check {
  return { id, status: 'warn', message, fix };
}
export function fail(id: string, message: string, fix: string): Check {
  return { id, status: 'fail', message, fix };
}

// ---------------------------------------------------------------------------
// Kernel

export interface KernelFacts {
  readonly maxUserNamespaces: string | null; // /proc/sys/user/max_user_namespaces
  readonly hasUserNamespaces: boolean; // /proc/self/ns/user exists
  readonly enableParameter: string | null; // /sys/module/user_namespace/parameters/enable (RHEL 7 kernels)
  readonly cmdline: string | null; // /proc/cmdline
}

// dockerd runs as root, so kernel.unprivileged_userns_clone (Debian, Ubuntu)
// does not matter here: it only gates namespaces made by unprivileged users.
export function kernelCheck(f: KernelFacts): Check {
  const id = 'kernel.userns';
  if (f.maxUserNamespaces === null && !f.hasUserNamespaces) {
    return fail(id, 'this kernel has no user namespaces (built without CONFIG_USER_NS)', 'boot a kernel built with CONFIG_USER_NS=y');
  }
  const bootParam = /(?:^|\s)user_namespace\.enable=(\S*)/.exec(f.cmdline ?? '')?.[1];
  const gated = f.enableParameter !== null || bootParam !== undefined;
  const enabled = f.enableParameter !== null ? /^[y1]/i.test(f.enableParameter.trim()) : bootParam === undefined || /^[y1]/i.test(bootParam);
  if (gated && !enabled) {
    return fail(
      id,
      `user namespaces are switched off at boot (user_namespace.enable=${f.enableParameter?.trim() ?? bootParam})`,
      'grubby --args="user_namespace.enable=1" --update-kernel=ALL, set user.max_user_namespaces (sysctl) and reboot',
    );
  }
  const max = Number((f.maxUserNamespaces ?? '').trim());
  const gateNote = gated ? ' (this kernel also gates them behind user_namespace.enable=1 on its command line)' : '';
  if (f.maxUserNamespaces !== null && (!Number.isInteger(max) || max <= 0)) {
    return fail(
      id,
      `user.max_user_namespaces is ${f.maxUserNamespaces.trim()}: no user namespace can be created${gateNote}`,
      "echo 'user.max_user_namespaces = 15000' > /etc/sysctl.d/90-userns.conf && sysctl --system",
    );
  }
  const detail = f.maxUserNamespaces === null ? '' : ` (user.max_user_namespaces=${max}${gated ? ', user_namespace.enable=1' : ''})`;
  return ok(id, `user namespaces are available${detail}`);
}

// ---------------------------------------------------------------------------
// daemon.json

export interface DaemonJsonFacts {
  readonly path: string;
  readonly text: string | null;
  readonly pluginName: string;
}

export interface DaemonJsonVerdict {
  readonly checks: Check[];
  // The userns-remap value when set: which subordinate ids matter.
  readonly remap: string | null;
}

export function daemonJsonChecks(f: DaemonJsonFacts): DaemonJsonVerdict {
  const restart = 'then systemctl restart docker';
  const read = readDaemonJson(f.text);
  if (read.kind === 'missing') {
    return {
      remap: null,
      checks: [fail('daemon-json', `${f.path} does not exist: the engine runs without userns-remap and without the plugin`, `userns-guard install, ${restart}`)],
    };
  }
  if (read.kind === 'invalid') {
    return {
      remap: null,
      checks: [fail('daemon-json', `${f.path} is not valid JSON (${read.why}): the engine will not start with it`, `fix the syntax by hand (jq . ${f.path} shows where)`)],
    };
  }
  const checks: Check[] = [ok('daemon-json', `${f.path} is valid JSON`)];
  const remap = read.config[REMAP_KEY];
  let remapValue: string | null = null;
  if (typeof remap === 'string' && remap !== '') {
    remapValue = remap;
    const who = remapIdentity(remap);
    checks.push(ok('daemon-json.userns-remap', `"${REMAP_KEY}": ${JSON.stringify(remap)} (container ids map onto the subordinate ids of ${who.user}:${who.group})`));
  } else {
    checks.push(
      fail(
        'daemon-json.userns-remap',
        remap === undefined ? `"${REMAP_KEY}" is not set: containers share the host's user ids` : `"${REMAP_KEY}" is ${JSON.stringify(remap)}, not a user`,
        `set "${REMAP_KEY}": "default" in ${f.path} (userns-guard install does), ${restart}`,
      ),
    );
  }
  const plugins = pluginList(read.config);
  if (!plugins.ok) {
    checks.push(fail('daemon-json.authorization-plugins', plugins.why, `make "${AUTHZ_KEY}" a list that contains "${f.pluginName}", ${restart}`));
  } else if (plugins.names.includes(f.pluginName)) {
    checks.push(ok('daemon-json.authorization-plugins', `"${AUTHZ_KEY}" contains "${f.pluginName}"`));
  } else {
    checks.push(
      fail(
        'daemon-json.authorization-plugins',
        `"${AUTHZ_KEY}" does not contain "${f.pluginName}" (${plugins.names.length === 0 ? 'none set' : plugins.names.join(', ')}): the engine will not ask the plugin`,
        `add "${f.pluginName}" to "${AUTHZ_KEY}" in ${f.path} (userns-guard install does), ${restart}`,
      ),
    );
  }
  return { checks, remap: remapValue };
}

// ---------------------------------------------------------------------------
// /etc/subuid and /etc/subgid

export interface SubIdFacts {
  readonly kind: 'subuid' | 'subgid';
  readonly path: string;
  readonly text: string | null;
  readonly owner: string; // the remap user (subuid) or group (subgid)
  readonly ids: ReadonlyMap<string, string>; // name -> numeric id from passwd or group
}

export function subIdCheck(f: SubIdFacts): Check {
  const id = f.kind;
  const ranges = parseSubIds(f.text ?? '');
  const aliases = ownerAliases(f.owner, f.ids);
  const own = rangesOwnedBy(ranges, aliases);
  const addFix = () => {
    const start = findFreeRange(ranges);
    return start === null
      ? `free a block of ${REMAP_RANGE_SIZE} ids in ${f.path} for ${f.owner}`
      : `echo '${f.owner}:${start}:${REMAP_RANGE_SIZE}' >> ${f.path}, then systemctl restart docker`;
  };
  if (f.text === null) return fail(id, `${f.path} does not exist: the engine has no ids to map ${f.owner} onto`, addFix());
  if (own.length === 0) return fail(id, `${f.path} has no range for ${f.owner}`, addFix());
  const total = own.reduce((sum, r) => sum + r.count, 0);
  if (total < REMAP_RANGE_SIZE) {
    return fail(id, `${f.owner} has ${total} ids in ${f.path}, fewer than ${REMAP_RANGE_SIZE}: files owned by high ids in images cannot be mapped`, addFix());
  }
  for (const mine of own) {
    const clash = ranges.find((r) => !aliases.has(r.owner) && overlaps(mine, r));
    if (clash !== undefined) {
      return fail(
        id,
        `${f.owner}'s range ${span(mine)} overlaps ${clash.owner}'s ${span(clash)} in ${f.path}: container ids would be ${clash.owner}'s ids too`,
        `give ${f.owner} a block no one else has in ${f.path} (for example ${addFixRange(ranges, f.owner)}), then systemctl restart docker`,
      );
    }
  }
  return ok(id, `${f.owner} has ${own.map(span).join(', ')} (${total} ids), overlapping no one`);
}

// The remap user's account and group names, as doctor should check them.
export function remapOwners(remap: string | null): { user: string; group: string; assumed: boolean } {
  if (remap === null) return { user: DEFAULT_REMAP_USER, group: DEFAULT_REMAP_USER, assumed: true };
  return { ...remapIdentity(remap), assumed: false };
}

function addFixRange(ranges: readonly SubIdRange[], owner: string): string {
  const start = findFreeRange(ranges);
  return start === null ? `${owner}:<start>:${REMAP_RANGE_SIZE}` : `${owner}:${start}:${REMAP_RANGE_SIZE}`;
}

function span(r: SubIdRange): string {
  return `${r.start}-${r.start + r.count - 1}`;
}

// ---------------------------------------------------------------------------
// The plugin socket file

export interface SocketFacts {
  readonly path: string;
  readonly stat: { isSocket: boolean; uid: number; mode: number } | null;
}

export function socketCheck(f: SocketFacts): Check {
  const id = 'plugin.socket';
  if (f.stat === null) {
    return fail(id, `${f.path} does not exist: the engine cannot reach the plugin`, 'systemctl enable --now userns-guard.socket');
  }
  if (!f.stat.isSocket) return fail(id, `${f.path} is not a socket`, `remove ${f.path}, then systemctl restart userns-guard.socket`);
  const problems: string[] = [];
  if (f.stat.uid !== 0) problems.push(`owned by uid ${f.stat.uid}, not root`);
  const mode = f.stat.mode & 0o7777;
  if (mode !== 0o600) problems.push(`mode 0${mode.toString(8)}, not 0600${mode & 0o066 ? ': other users can talk to the plugin' : ''}`);
  if (problems.length > 0) {
    return fail(id, `${f.path} is ${problems.join(' and ')}`, `chown root:root ${f.path} && chmod 0600 ${f.path}; keep SocketUser=root and SocketMode=0600 in userns-guard.socket`);
  }
  return ok(id, `${f.path} is a socket owned by root, mode 0600`);
}
