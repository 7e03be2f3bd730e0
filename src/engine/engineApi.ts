// Read-only lookups on the engine's own API socket: the one way the plugin
// learns what an existing container, exec or volume is. Each lookup is
// itself an API call that the engine first sends to this plugin (a GET that
// needs no lookup, so it is answered at once), and each has a short
// deadline: a lookup that cannot be answered refuses the call it serves; it
// never holds the engine.

import type { ContainerFacts, Lookup, RemappedRoot, VolumeFacts } from '../policy/facts.ts';
import { containerFactsOf, execContainerOf, remappedRootOf, volumeFactsOf } from './inspect.ts';
import { createLookupClient, type LookupClient } from './lookupClient.ts';
import { errorMessage } from './engineError.ts';

export const DEFAULT_ENGINE_SOCKET = '/run/docker.sock';
export const DEFAULT_LOOKUP_TIMEOUT_MS = 3_000;

export interface EngineApi {
  container(ref: string): Promise<Lookup<ContainerFacts>>;
  // The full id of the container an exec instance runs in.
  execContainerId(id: string): Promise<Lookup<string>>;
  volume(name: string): Promise<Lookup<VolumeFacts>>;
  remappedRoot(): Promise<Lookup<RemappedRoot>>;
}

// Exec instances whose container is known: a few minutes of execs on a busy host.
const MAX_KNOWN_EXECS = 4096;

export function createEngineApi(socketPath: string, timeoutMs = DEFAULT_LOOKUP_TIMEOUT_MS): EngineApi {
  // Keep-alive: a lookup costs one round trip, not a connect as well.
  const client = createLookupClient(socketPath);
  const get = (path: string) => getJson(client, socketPath, path, timeoutMs);
  // Exec id -> the full id of its container. The one answer kept between
  // calls, because it cannot change: the engine finds an exec by its exact
  // id only (no names, no prefixes), gives every exec a random id of its
  // own, and an exec belongs to one container for its whole life. The
  // container itself is looked up on its own (src/facts/recentAnswers.ts).
  const execContainers = new Map<string, string>();
  const api: EngineApi = {
    async container(ref) {
      return interpret(await get(`/containers/${encodeParam(ref)}/json`), containerFactsOf, `container ${JSON.stringify(ref)}`);
    },
    async execContainerId(id) {
      const known = execContainers.get(id);
      if (known !== undefined) return { kind: 'found', value: known };
      const exec = interpret(await get(`/exec/${encodeParam(id)}/json`), execContainerOf, `exec instance ${JSON.stringify(id)}`);
      if (exec.kind !== 'found') return exec;
      if (execContainers.size >= MAX_KNOWN_EXECS) execContainers.delete(execContainers.keys().next().value!);
      execContainers.set(id, exec.value);
      return exec;
    },
    async volume(name) {
      return interpret(await get(`/volumes/${encodeParam(name)}`), volumeFactsOf, `volume ${JSON.stringify(name)}`);
    },
    async remappedRoot() {
      return interpret(await get('/info'), remappedRootOf, 'the engine info');
    },
  };
  return api;
}

type Answer = { readonly status: number; readonly body: string } | { readonly error: string };

function interpret<T>(
  answer: Answer,
  parse: (body: string) => { ok: true; value: T } | { ok: false; error: string },
  what: string,
): Lookup<T> {
  if ('error' in answer) return { kind: 'unknown', why: `the engine did not answer the lookup of ${what} (${answer.error})` };
  if (answer.status === 404) return { kind: 'absent' };
  if (answer.status !== 200) {
    return { kind: 'unknown', why: `the engine answered the lookup of ${what} with ${answer.status} ${errorMessage(answer.body)}` };
  }
  const parsed = parse(answer.body);
  return parsed.ok ? { kind: 'found', value: parsed.value } : { kind: 'unknown', why: parsed.error };
}

async function getJson(client: LookupClient, socketPath: string, path: string, timeoutMs: number): Promise<Answer> {
  try {
    return await client.get(path, timeoutMs);
  } catch (err) {
    return { error: describe(err as NodeJS.ErrnoException, socketPath) };
  }
}

function describe(err: NodeJS.ErrnoException, socketPath: string): string {
  if (err.code === 'ENOENT') return `no engine socket at ${socketPath}`;
  if (err.code === 'EACCES') return `permission denied on ${socketPath}`;
  if (err.code === 'ECONNREFUSED') return `nothing listens on ${socketPath}`;
  if (/^no answer within/.test(err.message)) return `${err.message}, --lookup-timeout`;
  return err.message;
}

// Route parameters reach the policy percent-decoded, one byte per character
// (see routes.ts); encoding every byte but the unreserved ones sends the
// engine back exactly the bytes its router matched.
export function encodeParam(param: string): string {
  let out = '';
  for (let i = 0; i < param.length; i++) {
    const c = param.charCodeAt(i);
    const ch = param[i]!;
    if (/[A-Za-z0-9._~-]/.test(ch)) out += ch;
    else if (c > 0xff) out += encodeURIComponent(ch); // never a valid name: the engine answers 404
    else out += `%${c.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
