// The serving command line. Every option is a flag, so the unit's ExecStart
// line is the whole policy.

import { parseArgs } from 'node:util';
import { DEFAULT_ENGINE_SOCKET, DEFAULT_LOOKUP_TIMEOUT_MS } from '../engine/engineApi.ts';
import type { PolicyOptions } from '../policy/decide.ts';
import { HARDENING_RULES, type EnabledRules } from '../policy/rules/hardening.ts';
import type { HardeningRuleId } from '../policy/rules/types.ts';

export const DEFAULT_SOCKET = '/run/docker/plugins/userns-guard.sock';

export const USAGE = `Usage: userns-guard [options]
       userns-guard install [--dry-run] [--prefix DIR] [--root DIR]
       userns-guard uninstall [--dry-run] [--prefix DIR] [--root DIR]
       userns-guard doctor [--docker-host URL] [--daemon-json PATH]
                           [--socket PATH] [--plugin-name NAME]
                           [--probe-image NAME] [--root DIR] [--json]

Docker Engine authorization plugin that refuses every request that would put a
container in the host user namespace.

Options:
  --socket PATH            listen on PATH; ignored under systemd socket
                           activation. Default:
                           ${DEFAULT_SOCKET}
  --engine-socket PATH     the engine's API socket, for read-only lookups of
                           the containers, execs and volumes a call acts on.
                           Default: ${DEFAULT_ENGINE_SOCKET}
  --lookup-timeout MS      refuse a call whose lookups take longer than MS
                           milliseconds in all. Default: ${DEFAULT_LOOKUP_TIMEOUT_MS}
  --allow-plugin-install   allow pulling, creating, upgrading and configuring
                           managed plugins (they run as root on the host)
  --audit-only             evaluate every rule and log would-deny, but allow all
  --allow-user NAME        exempt calls authenticated as NAME (TLS client
                           certificate CN) from every rule; repeatable
  --deny RULE[,RULE...]    turn on hardening rules; repeatable. Rules:
${wrap(HARDENING_RULES.join(', '), 27, 80)}
  --harden                 turn on every hardening rule
  --debug                  log allowed calls too
  --version                print the version and exit
  --help                   print this help and exit

Subcommands (each takes --help):
  install      copy this binary, the systemd units, daemon.json entries and
               subordinate ids into place; prints the commands that remain
  uninstall    remove what install added (keeps userns-remap and the ids)
  doctor       check the host and the live engine; exit 1 if anything failed

Exit status: 0 after SIGTERM or SIGINT, 1 when it cannot listen (another
process serves the socket, the path is not a socket), 2 for a bad command line.
`;

// Fills `text` into lines of at most `width` columns, each indented by
// `indent` spaces, breaking after the commas of a list.
function wrap(text: string, indent: number, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines.map((l) => ' '.repeat(indent) + l).join('\n');
}

export interface ServeOptions {
  readonly socket: string;
  readonly engineSocket: string;
  readonly lookupTimeoutMs: number;
  readonly debug: boolean;
  readonly policy: PolicyOptions;
}

export type ParsedCommand =
  | { readonly kind: 'serve'; readonly options: ServeOptions }
  | { readonly kind: 'help' }
  | { readonly kind: 'version' };

export class UsageError extends Error {}

export function parseServeArgs(args: readonly string[]): ParsedCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        socket: { type: 'string' },
        'engine-socket': { type: 'string' },
        'lookup-timeout': { type: 'string' },
        'allow-plugin-install': { type: 'boolean' },
        'audit-only': { type: 'boolean' },
        'allow-user': { type: 'string', multiple: true },
        deny: { type: 'string', multiple: true },
        harden: { type: 'boolean' },
        debug: { type: 'boolean' },
        version: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };

  const socket = values.socket ?? DEFAULT_SOCKET;
  if (!socket.startsWith('/')) throw new UsageError(`--socket must be an absolute path, got ${JSON.stringify(socket)}`);

  const engineSocket = values['engine-socket'] ?? DEFAULT_ENGINE_SOCKET;
  if (!engineSocket.startsWith('/')) {
    throw new UsageError(`--engine-socket must be an absolute path, got ${JSON.stringify(engineSocket)}`);
  }
  const timeoutText = values['lookup-timeout'] ?? String(DEFAULT_LOOKUP_TIMEOUT_MS);
  const lookupTimeoutMs = Number(timeoutText);
  if (!/^[0-9]+$/.test(timeoutText) || lookupTimeoutMs < 100 || lookupTimeoutMs > 60_000) {
    throw new UsageError(`--lookup-timeout takes milliseconds from 100 to 60000, got ${JSON.stringify(timeoutText)}`);
  }

  const allowUsers = values['allow-user'] ?? [];
  for (const user of allowUsers) {
    if (user.trim() === '') throw new UsageError('--allow-user needs a non-empty name');
  }

  return {
    kind: 'serve',
    options: {
      socket,
      engineSocket,
      lookupTimeoutMs,
      debug: values.debug ?? false,
      policy: {
        allowPluginInstall: values['allow-plugin-install'] ?? false,
        auditOnly: values['audit-only'] ?? false,
        allowUsers: new Set(allowUsers),
        deny: enabledRules(values.deny ?? [], values.harden ?? false),
      },
    },
  };
}

function enabledRules(denyFlags: readonly string[], harden: boolean): EnabledRules {
  const enabled = new Map<HardeningRuleId, string>();
  for (const flag of denyFlags) {
    for (const name of flag.split(',').map((s) => s.trim())) {
      if (!isHardeningRule(name)) {
        throw new UsageError(`--deny: unknown rule ${JSON.stringify(name)} (rules: ${HARDENING_RULES.join(', ')})`);
      }
      enabled.set(name, `--deny ${name}`);
    }
  }
  if (harden) for (const rule of HARDENING_RULES) enabled.set(rule, '--harden');
  return enabled;
}

function isHardeningRule(name: string): name is HardeningRuleId {
  return (HARDENING_RULES as readonly string[]).includes(name);
}
