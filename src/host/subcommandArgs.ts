// Flag parsing shared by the subcommands: strict, no positionals, --help, and
// a bad flag becomes one line plus the usage on stderr and exit code 2.

import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

export type Parsed<T> = { readonly kind: 'values'; readonly values: T } | { readonly kind: 'exit'; readonly code: number };

export function parseSubcommandArgs<T>(command: string, usage: string, args: readonly string[], options: ParseArgsOptionsConfig): Parsed<T> {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: [...args], strict: true, allowPositionals: false, options: { ...options, help: { type: 'boolean' } } }));
  } catch (err) {
    return usageError(command, usage, (err as Error).message);
  }
  if (values.help === true) {
    process.stdout.write(usage);
    return { kind: 'exit', code: 0 };
  }
  return { kind: 'values', values: values as T };
}

export function usageError(command: string, usage: string, message: string): { kind: 'exit'; code: number } {
  process.stderr.write(`userns-guard ${command}: ${message}\n\n${usage}`);
  return { kind: 'exit', code: 2 };
}

// Paths given on the command line must be absolute: relative ones would
// depend on where sudo happened to be run.
export function absolutePath(command: string, usage: string, flag: string, value: string | undefined, fallback: string): string | { kind: 'exit'; code: number } {
  const v = value ?? fallback;
  if (!v.startsWith('/')) return usageError(command, usage, `--${flag} must be an absolute path, got ${JSON.stringify(v)}`);
  return v;
}

// `userns-guard install --dry-run | head` closes stdout early; that is the
// reader's choice, not an error worth a stack trace.
export function exitQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}
