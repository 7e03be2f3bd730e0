// Builds and drives test/gojson, the reference decoder for differential tests:
// a stdlib-only Go program that decodes request bodies exactly the way Docker
// Engine 20.10 does (encoding/json into the engine's wrapper layout) and
// reports the effective HostConfig.
//
// The binary is always built into a fresh directory under os.tmpdir(), never
// into the repository, and that directory is removed when the process exits.

import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

const SOURCE_DIR = fileURLToPath(new URL('../gojson/', import.meta.url));
const FALLBACK_GO = '/usr/bin/go';
const BUILD_TIMEOUT_MS = 5 * 60 * 1000;

export interface GoDecoded {
  ok: boolean;
  // Set when ok is false: the error json.Decoder.Decode returned.
  error?: string;
  usernsMode?: string;
  privileged?: boolean;
  capAdd?: string[];
  securityOpt?: string[];
  user?: string;
  pidMode?: string;
  ipcMode?: string;
  utsMode?: string;
  networkMode?: string;
  cgroupnsMode?: string;
  devices?: number;
  deviceCgroupRules?: number;
  binds?: string[];
  mountSources?: { type: string; source: string }[];
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findGo(): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'go');
    if (isExecutableFile(candidate)) return candidate;
  }
  return isExecutableFile(FALLBACK_GO) ? FALLBACK_GO : null;
}

// null when a Go toolchain is available; otherwise why the Go tests skip.
export function goDecoderSkipReason(): string | null {
  return findGo() === null ? `no Go toolchain: no "go" on PATH and no ${FALLBACK_GO}` : null;
}

// An existing, writable directory: a cache or GOPATH Go can use as is. When
// there is none, the build gets a scratch directory instead, so that nothing
// new is left behind in HOME.
function usableDir(dir: string | undefined): dir is string {
  if (dir === undefined || dir === '' || dir === 'off' || !path.isAbsolute(dir)) return false;
  try {
    if (!statSync(dir).isDirectory()) return false;
    accessSync(dir, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function defaultGoCache(): string | undefined {
  if (process.env.GOCACHE) return process.env.GOCACHE;
  if (process.env.XDG_CACHE_HOME) return path.join(process.env.XDG_CACHE_HOME, 'go-build');
  if (process.env.HOME) return path.join(process.env.HOME, '.cache', 'go-build');
  return undefined;
}

function defaultGoPath(): string | undefined {
  if (process.env.GOPATH) return process.env.GOPATH.split(path.delimiter)[0];
  if (process.env.HOME) return path.join(process.env.HOME, 'go');
  return undefined;
}

function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env, timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      } else {
        resolve();
      }
    });
  });
}

let built: Promise<string> | null = null;

async function build(): Promise<string> {
  const go = findGo();
  if (go === null) throw new Error(goDecoderSkipReason() ?? 'no Go toolchain');

  const root = mkdtempSync(path.join(os.tmpdir(), 'userns-guard-gojson-'));
  process.once('exit', () => {
    rmSync(root, { recursive: true, force: true });
  });

  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.GOFLAGS; // e.g. a stray -mod=mod must not reach the build
  env.GO111MODULE = 'on';
  env.GOTOOLCHAIN = 'local';
  env.GOPROXY = 'off';
  env.GOENV = 'off'; // ignore the user's go/env file: no GOFLAGS or proxy from there
  env.GOWORK = 'off'; // ignore any go.work above the repository
  env.CGO_ENABLED = '0'; // no C toolchain needed; the program is pure Go

  const cache = defaultGoCache();
  const gopath = defaultGoPath();
  const scratch: string[] = [];
  if (usableDir(cache)) {
    env.GOCACHE = cache;
  } else {
    env.GOCACHE = path.join(root, 'gocache');
    scratch.push(env.GOCACHE);
  }
  if (usableDir(gopath)) {
    env.GOPATH = gopath;
  } else {
    env.GOPATH = path.join(root, 'gopath');
    scratch.push(env.GOPATH);
  }
  delete env.GOMODCACHE;

  const binary = path.join(root, 'gojson');
  try {
    await run(go, ['build', '-trimpath', '-o', binary, '.'], SOURCE_DIR, env);
  } finally {
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  }
  return binary;
}

// Builds test/gojson once per process and returns the binary's path.
export function buildGoDecoder(): Promise<string> {
  if (built === null) {
    built = build();
    built.catch(() => {
      built = null; // let a later call retry
    });
  }
  return built;
}

function* encodeLines(bodies: readonly Uint8Array[]): Generator<string> {
  for (const body of bodies) yield `${Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64')}\n`;
}

interface RawLine extends GoDecoded {
  harnessError?: boolean;
}

// Decodes every body with the reference decoder in one process: base64 lines
// in, JSON lines out, results in input order. 'start' decodes as the legacy
// POST /containers/{id}/start body.
export async function goDecodeAll(
  binary: string,
  bodies: Buffer[],
  mode: 'create' | 'start' = 'create',
): Promise<GoDecoded[]> {
  const child = spawn(binary, mode === 'start' ? ['-start'] : [], { stdio: ['pipe', 'pipe', 'pipe'] });

  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const fed = pipeline(Readable.from(encodeLines(bodies)), child.stdin).then(
    () => null,
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );

  const results: GoDecoded[] = [];
  const problems: string[] = [];
  for await (const line of createInterface({ input: child.stdout, crlfDelay: Infinity })) {
    let parsed: RawLine;
    try {
      parsed = JSON.parse(line) as RawLine;
    } catch {
      problems.push(`unparsable output line ${results.length}: ${line.slice(0, 200)}`);
      results.push({ ok: false, error: 'unparsable output' });
      continue;
    }
    if (parsed.harnessError) {
      problems.push(`input ${results.length}: ${parsed.error ?? 'harness error'}`);
    }
    delete parsed.harnessError;
    results.push(parsed);
  }

  const feedError = await fed;
  const exit = await exited;
  if (exit.error) problems.push(`spawn: ${exit.error.message}`);
  if (exit.code !== 0) problems.push(`exit code ${exit.code ?? 'none'}${exit.signal ? `, signal ${exit.signal}` : ''}`);
  if (feedError) problems.push(`writing stdin: ${feedError.message}`);
  if (results.length !== bodies.length) problems.push(`${bodies.length} bodies in, ${results.length} results out`);
  if (problems.length > 0) {
    throw new Error(`reference decoder ${binary} failed: ${problems.join('; ')}${stderr ? `\nstderr: ${stderr}` : ''}`);
  }
  return results;
}
