// `userns-guard doctor`: proves a host is set up the way the plugin needs,
// from the kernel to a refused probe on the live engine. One line per check,
// each failure with a one-line fix; exit 1 when anything failed.

import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_SOCKET } from '../plugin/cli.ts';
import { daemonJsonChecks, kernelCheck, remapOwners, socketCheck, subIdCheck, warn, type Check, type KernelFacts } from './doctorChecks.ts';
import { readIfExists } from './fileChanges.ts';
import { idsByName } from './hostFiles.ts';
import { PLUGIN_NAME } from './install.ts';
import { activateCheck, containerChecks, engineChecks, lookupCheck } from './liveChecks.ts';
import { discoverPlugins, pluginDiscoveryCheck, probePlugins } from './pluginDiscovery.ts';
import { absolutePath, exitQuietlyOnClosedStdout, parseSubcommandArgs } from './subcommandArgs.ts';

const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

export const DOCTOR_USAGE = `Usage: userns-guard doctor [options]

Checks that this host is protected: kernel user namespaces, daemon.json,
subordinate ids, the plugin socket, and the live engine, which must refuse a
probe create in the host user namespace (the probe never starts anything).
Exit code 0 when nothing failed, 1 otherwise.

Options:
  --docker-host URL     engine API socket (default ${DEFAULT_DOCKER_HOST})
  --daemon-json PATH    engine configuration (default /etc/docker/daemon.json)
  --socket PATH         plugin socket (default ${DEFAULT_SOCKET})
  --plugin-name NAME    name the engine knows the plugin by (default ${PLUGIN_NAME})
  --probe-image NAME    image named in the probe create (default: one that does
                        not exist, so a missed refusal creates nothing)
  --root DIR            read host files (/etc/..., the socket) under DIR;
                        the kernel is always the running one
  --json                print one JSON document instead of lines
  --help                print this help and exit
`;

interface DoctorFlags {
  'docker-host'?: string;
  'daemon-json'?: string;
  socket?: string;
  'plugin-name'?: string;
  'probe-image'?: string;
  root?: string;
  json?: boolean;
}

export async function doctorCommand(args: readonly string[]): Promise<number> {
  exitQuietlyOnClosedStdout();
  const parsed = parseSubcommandArgs<DoctorFlags>('doctor', DOCTOR_USAGE, args, {
    'docker-host': { type: 'string' },
    'daemon-json': { type: 'string' },
    socket: { type: 'string' },
    'plugin-name': { type: 'string' },
    'probe-image': { type: 'string' },
    root: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (parsed.kind === 'exit') return parsed.code;
  const v = parsed.values;
  const root = absolutePath('doctor', DOCTOR_USAGE, 'root', v.root, '/');
  if (typeof root !== 'string') return root.code;
  const under = (p: string) => path.join(root, p);
  const daemonJson = absolutePath('doctor', DOCTOR_USAGE, 'daemon-json', v['daemon-json'], under('/etc/docker/daemon.json'));
  if (typeof daemonJson !== 'string') return daemonJson.code;
  const socket = absolutePath('doctor', DOCTOR_USAGE, 'socket', v.socket, under(DEFAULT_SOCKET));
  if (typeof socket !== 'string') return socket.code;
  const pluginName = v['plugin-name'] ?? PLUGIN_NAME;

  const checks = await runChecks({
    root,
    daemonJson,
    socket,
    pluginName,
    dockerHost: v['docker-host'] ?? DEFAULT_DOCKER_HOST,
    probeImage: v['probe-image'],
  });
  const failed = checks.some((c) => c.status === 'fail');
  if (v.json) process.stdout.write(`${JSON.stringify({ ok: !failed, checks }, null, 2)}\n`);
  else process.stdout.write(formatChecks(checks));
  return failed ? 1 : 0;
}

interface DoctorInputs {
  readonly root: string;
  readonly daemonJson: string;
  readonly socket: string;
  readonly pluginName: string;
  readonly dockerHost: string;
  readonly probeImage: string | undefined;
}

async function runChecks(inp: DoctorInputs): Promise<Check[]> {
  const under = (p: string) => path.join(inp.root, p);
  const checks: Check[] = [kernelCheck(readKernelFacts())];

  const daemon = daemonJsonChecks({ path: inp.daemonJson, text: readIfExists(inp.daemonJson), pluginName: inp.pluginName });
  checks.push(...daemon.checks);

  const owners = remapOwners(daemon.remap);
  for (const [kind, owner, idsFile] of [['subuid', owners.user, '/etc/passwd'], ['subgid', owners.group, '/etc/group']] as const) {
    const check = subIdCheck({ kind, path: under(`/etc/${kind}`), text: readIfExists(under(`/etc/${kind}`)), owner, ids: idsByName(readIfExists(under(idsFile))) });
    // Without userns-remap the ranges are only what install would use.
    checks.push(owners.assumed && check.status === 'fail' ? warn(check.id, `${check.message} (checked for the default, userns-remap is not set)`, check.fix) : check);
  }

  // A socket with the wrong owner or mode still gets the call: whether the
  // plugin behind it works is worth knowing either way.
  const stat = statSocket(inp.socket);
  checks.push(socketCheck({ path: inp.socket, stat }));
  if (stat?.isSocket) {
    const activate = await activateCheck(inp.socket);
    checks.push(activate);
    if (activate.status === 'ok') checks.push(await lookupCheck(inp.socket));
  }

  const discovered = discoverPlugins(inp.root);
  checks.push(pluginDiscoveryCheck(discovered, await probePlugins(discovered), inp.socket));

  const engine = await engineChecks({ dockerHost: inp.dockerHost, pluginName: inp.pluginName, probeImage: inp.probeImage });
  checks.push(...engine);
  if (engine[0]?.status === 'ok') checks.push(...(await containerChecks(inp.dockerHost, fs.existsSync)));
  return checks;
}

// The kernel is the running one whatever --root says: /proc and /sys are not files of a tree.
function readKernelFacts(): KernelFacts {
  return {
    maxUserNamespaces: readIfExists('/proc/sys/user/max_user_namespaces'),
    hasUserNamespaces: fs.existsSync('/proc/self/ns/user'),
    enableParameter: readIfExists('/sys/module/user_namespace/parameters/enable'),
    cmdline: readIfExists('/proc/cmdline'),
  };
}

function statSocket(p: string): { isSocket: boolean; uid: number; mode: number } | null {
  try {
    const st = fs.lstatSync(p);
    return { isSocket: st.isSocket(), uid: st.uid, mode: st.mode };
  } catch {
    return null;
  }
}

const LABELS = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;

export function formatChecks(checks: readonly Check[]): string {
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${LABELS[c.status]} ${c.id}: ${c.message}`);
    if (c.status !== 'ok' && c.fix !== '') lines.push(`     fix: ${c.fix}`);
  }
  const count = (s: Check['status']) => checks.filter((c) => c.status === s).length;
  const failed = count('fail');
  lines.push('', `${checks.length} checks: ${count('ok')} ok, ${count('warn')} warn, ${failed} FAIL${failed > 0 ? ': this host is NOT protected as intended' : ''}`);
  return `${lines.join('\n')}\n`;
}
