// The load generator: sends calls round-robin over N keep-alive connections
// to a plugin socket for a fixed time, the way the engine's plugin client
// does (HTTP/1.1, one call at a time per connection), and checks every
// answer: status 200, a JSON body, and Allow as expected.
//
// It speaks HTTP over node:net by hand rather than through node:http: on a
// 2-core machine the load generator shares the CPU with the plugin, and the
// less it spends per call the less it distorts the plugin's latency.
//
//   node bench/replay.ts --socket PATH [--seconds 5] [--concurrency 8] [--workload typical|large|all] [--no-deny-check]

import net from 'node:net';
import { parseArgs } from 'node:util';
import { perKind, workloadCalls, type BenchCall, type CallKind } from './traffic.ts';

export interface ReplayOptions {
  readonly socket: string;
  readonly calls: readonly BenchCall[];
  readonly concurrency: number;
  readonly durationMs: number;
  // false for a plugin that allows everything (the null plugin).
  readonly checkDenials: boolean;
}

export interface ReplayResult {
  readonly calls: number;
  readonly errors: number;
  // Calls refused as "retry": eight clients replaying one recording at once
  // create, rename and start the same names at the same time, and
  // userns-guard refuses a name change while a call on that name is in
  // flight (name-in-flux). Counted apart: it is the answer, not an error.
  readonly retried: number;
  // The first few errors, for the report.
  readonly errorSamples: string[];
  readonly elapsedMs: number;
  // Latency of every answered call, in microseconds, by kind of call.
  readonly latencyUs: Record<CallKind, number[]>;
}

// What the engine's plugin client (moby pkg/plugins) sends.
function requestHead(path: string, length: number): Buffer {
  return Buffer.from(
    `POST ${path} HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: ${length}\r\n` +
      'Accept: application/vnd.docker.plugins.v1.2+json\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n',
  );
}

interface Prepared {
  readonly call: BenchCall;
  readonly head: Buffer;
}

export async function replay(opts: ReplayOptions): Promise<ReplayResult> {
  const prepared: Prepared[] = opts.calls.map((call) => ({ call, head: requestHead(call.path, call.body.length) }));
  const latencyUs = perKind((): number[] => []);
  const errorSamples: string[] = [];
  let next = 0;
  let calls = 0;
  let errors = 0;
  let retried = 0;
  const start = performance.now();
  const deadline = start + opts.durationMs;

  const fail = (what: string) => {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(what);
  };

  async function worker(): Promise<void> {
    let conn: Connection | null = null;
    while (performance.now() < deadline) {
      const p = prepared[next++ % prepared.length]!;
      if (conn === null) {
        try {
          conn = await connect(opts.socket);
        } catch (err) {
          fail(`connect: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, 10));
          continue;
        }
      }
      const t0 = performance.now();
      let answer: Answer;
      try {
        answer = await conn.exchange(p.head, p.call.body);
      } catch (err) {
        fail(`${p.call.label}: ${(err as Error).message}`);
        conn.close();
        conn = null;
        continue;
      }
      const us = (performance.now() - t0) * 1000;
      calls++;
      latencyUs[p.call.kind].push(us);
      const problem = checkAnswer(answer, p.call, opts.checkDenials);
      if (problem === RETRY) retried++;
      else if (problem !== null) fail(`${p.call.label}: ${problem}`);
    }
    conn?.close();
  }

  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return { calls, errors, retried, errorSamples, elapsedMs: performance.now() - start, latencyUs };
}

const RETRY = 'retry';
// The name-in-flux refusal's wording (src/plugin/pipeline.ts).
const NAME_IN_FLUX = /retry once it is done/;

function checkAnswer(answer: Answer, call: BenchCall, checkDenials: boolean): string | null {
  if (answer.status !== 200) return `status ${answer.status}: ${answer.body.toString('utf8', 0, 200)}`;
  let value: unknown;
  try {
    value = JSON.parse(answer.body.toString('utf8'));
  } catch {
    return `answer is not JSON: ${answer.body.toString('utf8', 0, 200)}`;
  }
  const allow = (value as { Allow?: unknown } | null)?.Allow;
  if (typeof allow !== 'boolean') return `answer has no boolean Allow: ${answer.body.toString('utf8', 0, 200)}`;
  if (!checkDenials && !call.expectAllow) return null;
  if (call.expectAllow && !allow && NAME_IN_FLUX.test((value as { Msg?: string }).Msg ?? '')) return RETRY;
  if (allow !== call.expectAllow) return `expected Allow:${call.expectAllow}, got ${answer.body.toString('utf8', 0, 200)}`;
  return null;
}

interface Answer {
  readonly status: number;
  readonly body: Buffer;
}

interface Connection {
  exchange(head: Buffer, body: Buffer): Promise<Answer>;
  close(): void;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /^content-length:[ \t]*(\d+)[ \t]*$/im;
const CHUNKED = /^transfer-encoding:[ \t]*chunked[ \t]*$/im;

// One keep-alive connection, one call in flight. Answers must carry a
// Content-Length (both plugins send one; the parser stays small).
function connect(socketPath: string): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(socketPath);
    let buffered: Buffer = Buffer.alloc(0);
    let pending: { resolve: (a: Answer) => void; reject: (e: Error) => void } | null = null;
    let broken: Error | null = null;

    const settle = (err: Error | null, answer?: Answer) => {
      const p = pending;
      pending = null;
      if (p === null) return;
      if (err !== null) p.reject(err);
      else p.resolve(answer!);
    };

    const tryParse = () => {
      const end = buffered.indexOf(HEADER_END);
      if (end < 0) return;
      const head = buffered.toString('latin1', 0, end);
      const status = Number(head.slice(9, 12));
      const len = CONTENT_LENGTH.exec(head);
      if (len === null) {
        const why = CHUNKED.test(head) ? 'chunked answer (not supported by the replayer)' : 'answer without Content-Length';
        broken = new Error(why);
        sock.destroy();
        settle(broken);
        return;
      }
      const total = end + 4 + Number(len[1]);
      if (buffered.length < total) return;
      const body = buffered.subarray(end + 4, total);
      buffered = buffered.subarray(total);
      settle(null, { status, body });
    };

    sock.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (pending !== null) tryParse();
    });
    sock.on('error', (err) => {
      broken = err;
      settle(err);
      reject(err);
    });
    sock.on('close', () => {
      broken ??= new Error('connection closed by the plugin');
      settle(broken);
    });
    sock.once('connect', () =>
      resolve({
        exchange(head, body) {
          if (broken !== null) return Promise.reject(broken);
          return new Promise<Answer>((res, rej) => {
            pending = { resolve: res, reject: rej };
            sock.cork();
            sock.write(head);
            sock.write(body);
            sock.uncork();
          });
        },
        close() {
          sock.destroy();
        },
      }),
    );
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      socket: { type: 'string' },
      seconds: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '1' },
      workload: { type: 'string', default: 'typical' },
      'no-deny-check': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.socket === undefined) {
    process.stderr.write('usage: node bench/replay.ts --socket PATH [--seconds 5] [--concurrency 1] [--workload typical|large|all] [--no-deny-check]\n');
    process.exit(2);
  }
  const r = await replay({
    socket: values.socket,
    calls: workloadCalls(values.workload),
    concurrency: Number(values.concurrency),
    durationMs: Number(values.seconds) * 1000,
    checkDenials: !values['no-deny-check'],
  });
  const all = Object.values(r.latencyUs).flat().sort((a, b) => a - b);
  const pct = (q: number) => all[Math.min(all.length - 1, Math.floor(q * all.length))]?.toFixed(0);
  process.stdout.write(
    `${r.calls} calls in ${(r.elapsedMs / 1000).toFixed(1)} s: ${((r.calls * 1000) / r.elapsedMs).toFixed(0)} calls/s, ` +
      `p50 ${pct(0.5)} µs, p99 ${pct(0.99)} µs, ${r.errors} errors\n${r.errorSamples.join('\n')}\n`,
  );
  process.exit(r.errors === 0 ? 0 : 1);
}
