// Entry point: parse the command line, then serve until SIGTERM or SIGINT.

import { createAuditLog, type AuditLog } from './plugin/audit.ts';
import { parseServeArgs, USAGE, UsageError, type ServeOptions } from './plugin/cli.ts';
import { listen, listenTarget, ListenError } from './plugin/listen.ts';
import { createPluginServer } from './plugin/server.ts';
import { createInFlight } from './plugin/inFlight.ts';
import { createEngineApi } from './engine/engineApi.ts';
import { createKnownFacts } from './facts/recentAnswers.ts';
import { VERSION } from './version.ts';

// ps and journald show this instead of the runtime's name.
process.title = 'userns-guard';

// Subcommands own their own flags; each resolves to an exit code. No
// prototype, so `userns-guard constructor` is not a subcommand. Loaded only
// when run: they pull in node:crypto, node:child_process and with them some
// 30 more of Node's modules, which the daemon would otherwise compile at
// start and keep in memory for its whole life (~1.5 MiB of heap and file
// pages at idle).
const SUBCOMMANDS: Record<string, (args: string[]) => Promise<number>> = Object.assign(Object.create(null), {
  install: async (args: string[]) => (await import('./host/install.ts')).installCommand(args),
  uninstall: async (args: string[]) => (await import('./host/install.ts')).uninstallCommand(args),
  doctor: async (args: string[]) => (await import('./host/doctor.ts')).doctorCommand(args),
});

// Past this the process exits on SIGTERM even if a call is still open.
const SHUTDOWN_GRACE_MS = 800;

async function main(argv: string[]): Promise<number> {
  const sub = argv[0] !== undefined ? SUBCOMMANDS[argv[0]] : undefined;
  if (sub !== undefined) return sub(argv.slice(1));

  let parsed;
  try {
    parsed = parseServeArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`userns-guard: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  switch (parsed.kind) {
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'version':
      process.stdout.write(`${VERSION}\n`);
      return 0;
    case 'serve':
      return serve(parsed.options);
  }
}

async function serve(options: ServeOptions): Promise<number> {
  // Small Buffers (each call's envelope, decoded bodies, audit lines) would
  // otherwise be slices of shared 8 KiB pools. A pool that lives through two
  // young-generation GCs is freed only by a full GC, rare in a heap this
  // small: under sustained load dead pools took private memory from ~30 to
  // ~90 MiB (bench/). Unpooled, each Buffer dies young with its call, at no
  // measurable CPU cost.
  Buffer.poolSize = 0;
  const log = createAuditLog(process.stderr, options.debug);
  // Stay up whatever happens in a callback: each call is decided on its own
  // and fails closed, and a dead plugin blocks the whole Docker API.
  process.on('uncaughtException', (err) => log.event('error', 'uncaught exception', { error: String(err?.stack ?? err) }));

  const target = listenTarget(options.socket, process.env, process.pid);
  if (target.kind === 'activated') {
    log.event('debug', 'socket activation: serving the inherited fd 3; --socket is ignored', { socket: options.socket });
  }
  // The packed runtime honours NODE_OPTIONS and friends; nothing it starts
  // should inherit them, nor the activation variables meant for us alone.
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('NODE_') || name.startsWith('LISTEN_')) delete process.env[name];
  }

  const server = createPluginServer({
    policy: options.policy,
    log,
    sources: {
      engine: createEngineApi(options.engineSocket, options.lookupTimeoutMs),
      deadlineMs: options.lookupTimeoutMs,
      known: createKnownFacts(),
    },
    inFlight: createInFlight(),
  });
  let listening;
  try {
    listening = await listen(server.listener, target);
  } catch (err) {
    const msg = err instanceof ListenError ? err.message : `cannot listen on ${options.socket}: ${(err as Error).message}`;
    process.stderr.write(`userns-guard: ${msg}\n`);
    return 1;
  }
  // The handlers go in before the startup line: whoever waits for that line
  // (systemd's journal reader, a test) may signal the moment it appears.
  const stopped = new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      log.event('info', `received ${signal}; shutting down`);
      listening.release();
      server.closeGracefully(() => resolve(0));
      setTimeout(() => {
        server.closeAll();
        resolve(0);
      }, SHUTDOWN_GRACE_MS).unref();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  logStartup(log, options, target.kind === 'activated');
  if (options.policy.auditOnly) log.event('warn', 'audit-only mode: nothing is enforced; refusals are only logged as would-deny');
  return stopped;
}

function logStartup(log: AuditLog, options: ServeOptions, activated: boolean): void {
  const p = options.policy;
  log.event('info', 'userns-guard started', {
    version: VERSION,
    socket: activated ? 'socket activation' : options.socket,
    engineSocket: options.engineSocket,
    options: {
      allowPluginInstall: p.allowPluginInstall,
      auditOnly: p.auditOnly,
      allowUsers: [...p.allowUsers],
      deny: [...p.deny.keys()],
      debug: options.debug,
    },
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`userns-guard: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
