// The plugin's HTTP side: three POST endpoints on a unix socket. The engine
// sets no timeout on plugin calls, so a stuck call here stalls the whole
// Docker API: every read is bounded in size and time.

import type { AuditLog } from './audit.ts';
import { refuseEnvelope, type Decision } from '../policy/decide.ts';
import { ACTIVATE_RESPONSE, MAX_AUTHZREQ_BYTES, PLUGIN_PATHS } from '../engine/wire.ts';
import { callOfResponse, decideNow, type Pipeline } from './pipeline.ts';
import { releaseScratch, type Chunks } from '../engine/byteChunks.ts';
import { answer, createHttpServer, type Answer, type Exchange, type HttpServer } from '../http/server.ts';
import type { RequestHead } from '../http/requestReader.ts';

export interface ServerOptions extends Pipeline {
  readonly log: AuditLog;
}

// How much of an AuthZRes is read to learn which call it ends.
const RESPONSE_PREFIX_BYTES = 64 << 10;

// The engine writes a whole call at once; these only stop peers that do not.
export const LIMITS = {
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  maxHeadBytes: 16 * 1024,
  checkEveryMs: 1_000,
} as const;

const JSON_HEADERS = { 'Content-Type': 'application/vnd.docker.plugins.v1.2+json' };
const ACTIVATE_ANSWER = answer(200, JSON_HEADERS, Buffer.from(JSON.stringify(ACTIVATE_RESPONSE)));
const ALLOW_ANSWER = answer(200, JSON_HEADERS, Buffer.from(JSON.stringify({ Allow: true, Msg: '' })));

function jsonAnswer(status: number, value: unknown, extra?: Record<string, string>): Answer {
  return answer(status, extra === undefined ? JSON_HEADERS : { ...JSON_HEADERS, ...extra }, Buffer.from(JSON.stringify(value)));
}

export function createPluginServer(opts: ServerOptions): HttpServer {
  return createHttpServer(LIMITS, (head) => route(head, opts));
}

function route(head: RequestHead, opts: ServerOptions): Exchange {
  const q = head.target.indexOf('?');
  const path = q < 0 ? head.target : head.target.slice(0, q);
  if (head.method !== 'POST') return drained(() => jsonAnswer(405, { Err: `plugin calls are POST, not ${head.method}` }, { Allow: 'POST' }));
  switch (path) {
    case PLUGIN_PATHS.activate:
      return drained(() => ACTIVATE_ANSWER);
    case PLUGIN_PATHS.authzReq:
      return readBounded(MAX_AUTHZREQ_BYTES, (body, size) => {
        const decided = answerRequest(body, size, opts);
        if (size >= LARGE_CALL_BYTES) collectSoon();
        return decided instanceof Promise ? decided.then(authzAnswer) : authzAnswer(decided);
      });
    case PLUGIN_PATHS.authzRes:
      // The action has already happened: nothing to decide. Only the start,
      // which names the call, is read (it ends the call's in-flight hold);
      // the response, possibly huge, is drained unread.
      return readPrefix(RESPONSE_PREFIX_BYTES, (prefix, size) => {
        const key = callOfResponse(prefix);
        if (key !== null) opts.inFlight.release(key);
        if (size >= LARGE_CALL_BYTES) collectSoon();
        return ALLOW_ANSWER;
      });
    default:
      return drained(() => jsonAnswer(404, { Err: `unknown plugin call ${path}` }));
  }
}

function authzAnswer(decided: true | string): Answer {
  return decided === true ? ALLOW_ANSWER : jsonAnswer(200, { Allow: false, Msg: decided });
}

// A call this large (a create near the engine's 1 MiB forwarding limit, the
// AuthZRes of a big inspect) leaves megabytes behind: the envelope text, the
// decoded body, its parse tree. With a 1 MiB young generation (build.mjs)
// most of it is promoted before it dies, and V8 collects the old generation
// only when it has grown well past its live size; the pages it frees then
// stay in V8's page pool, resident, until a memory-reducing GC, which V8
// starts only when the process has been idle after a full GC. Large calls
// took the plugin from 30 to 200+ MiB, and it stayed there.
// So while large calls keep coming, a full GC (incremental, so no call waits
// on it) runs at most once a second; once they have stopped for a second, a
// memory-reducing one hands the pages back. That costs ~5-20 ms of CPU a
// second of large calls, spread over the 50-100 calls in it. gc is there
// when the binary's runtime flags (build.mjs) include --expose-gc; run from
// source (the tests) it is not, and nothing is scheduled.
export const LARGE_CALL_BYTES = 256 * 1024;
// Chunks this big come from a body that fills the socket's reads.
const LARGE_CHUNK_BYTES = 16 * 1024;
const COLLECT_EVERY_MS = 1_000;
const collectGarbage = typeof globalThis.gc === 'function' ? globalThis.gc : undefined;
let lastLargeCall = 0;
let collector: NodeJS.Timeout | null = null;

// Every socket read takes a 64 KiB Buffer from malloc, which goes back only
// when a GC finds the Buffer dead. Reading a large body allocates little else
// in the heap, so GCs are rare while the Buffers pile up outside it: a bare
// node:http server draining 1 MiB bodies at c=8 reached 100+ MiB, and malloc's heap,
// once grown, does not shrink. A call's chunks are kept until its envelope is
// read (readBounded), long enough to be promoted, so a scavenge does not free
// them: after every 16 MiB of large bodies (about eleven 1 MiB creates) an
// incremental full GC lets malloc reuse the same few blocks instead.
const COLLECT_EVERY_BYTES = 16 << 20;
let largeBytes = 0;

function noteLargeChunk(bytes: number): void {
  if (collectGarbage === undefined) return;
  largeBytes += bytes;
  if (largeBytes >= COLLECT_EVERY_BYTES) {
    largeBytes = 0;
    void collectGarbage({ type: 'major', execution: 'async' });
  }
}

function collectSoon(): void {
  if (collectGarbage === undefined) return;
  lastLargeCall = performance.now();
  collector ??= setTimeout(collect, COLLECT_EVERY_MS).unref();
}

function collect(): void {
  if (performance.now() - lastLargeCall < COLLECT_EVERY_MS) {
    void collectGarbage!({ type: 'major', execution: 'async' });
    collector = setTimeout(collect, COLLECT_EVERY_MS).unref();
  } else {
    collector = null;
    releaseScratch();
    collectGarbage!({ type: 'major', flavor: 'last-resort' });
  }
}

// true to allow, else the denial's Msg; a promise for the calls that need
// facts looked up first.
function answerRequest(body: Chunks | null, size: number, opts: ServerOptions): true | string | Promise<true | string> {
  const failed = (err: unknown): string => {
    // A bug must not become an allow.
    opts.log.event('error', 'policy failed; call denied', { error: String((err as Error)?.stack ?? err) });
    return 'userns-guard internal error; call denied';
  };
  const outcome = (decision: Decision): true | string => {
    opts.log.decision(decision);
    return decision.allow ? true : decision.reason;
  };
  let decision: Decision | Promise<Decision>;
  try {
    decision =
      body === null
        ? refuseEnvelope(`call envelope of ${size} bytes is over the ${MAX_AUTHZREQ_BYTES}-byte limit`, opts.policy)
        : decideNow(body, opts);
  } catch (err) {
    return failed(err);
  }
  return decision instanceof Promise ? decision.then(outcome, failed) : outcome(decision);
}

// Reads a body of up to `limit` bytes, as the chunks the socket gave;
// past the limit, keeps draining without keeping anything and hands over
// null with the full size. readEnvelope reads the chunks where they are:
// joining them would take a malloc of the envelope's size (1.4 MiB for a
// 1 MiB create), and malloc'd blocks that size, freed, fragment the process
// heap, which does not shrink.
function readBounded(limit: number, done: (body: Chunks | null, size: number) => Answer | Promise<Answer>): Exchange {
  let chunks: Buffer[] = [];
  let size = 0;
  return {
    data(chunk) {
      size += chunk.length;
      if (chunk.length >= LARGE_CHUNK_BYTES) noteLargeChunk(chunk.length);
      if (size > limit) chunks = [];
      else chunks.push(chunk);
    },
    end: () => done(size > limit ? null : chunks, size),
  };
}

// Keeps the first `limit` bytes as text and drains the rest.
function readPrefix(limit: number, done: (prefix: string, size: number) => Answer): Exchange {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    data(chunk) {
      if (chunk.length >= LARGE_CHUNK_BYTES) noteLargeChunk(chunk.length);
      if (size < limit) chunks.push(chunk.length > limit - size ? chunk.subarray(0, limit - size) : chunk);
      size += chunk.length;
    },
    end: () => done(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'), size),
  };
}

function drained(then: () => Answer): Exchange {
  return { data() {}, end: then };
}
