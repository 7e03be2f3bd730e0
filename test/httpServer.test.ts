// The plugin's own HTTP/1.1 server: the request reader on bytes chosen
// here, split anywhere, and the server on a real unix socket, with the
// framings, orderings and misbehaving clients the engine's node:http
// predecessor handled for us.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { requestReader, type ReadStep, type RequestHead } from '../src/http/requestReader.ts';
import { answer, createHttpServer, type Answer, type HttpServerOptions } from '../src/http/server.ts';
import { makeTempDir } from './lib/plugin.ts';

interface Read {
  readonly heads: RequestHead[];
  readonly bodies: string[];
  readonly steps: ReadStep[];
}

// Feeds `raw` in pieces of `split` bytes, calling next() after each request.
function readAll(raw: string, split: number, maxHead = 16 * 1024): Read {
  const heads: RequestHead[] = [];
  const bodies: string[] = [];
  const steps: ReadStep[] = [];
  let parts: Buffer[] = [];
  const r = requestReader(maxHead, (head) => {
    heads.push(head);
    parts = [];
    return { data: (piece) => void parts.push(Buffer.from(piece)) };
  });
  const bytes = Buffer.from(raw, 'latin1');
  const settle = (first: ReadStep) => {
    for (let s = first; ; ) {
      steps.push(s);
      if (s !== 'request') return;
      bodies.push(Buffer.concat(parts).toString('latin1'));
      s = r.next();
    }
  };
  for (let i = 0; i < bytes.length && typeof steps.at(-1) !== 'object'; i += split) settle(r.push(bytes.subarray(i, i + split)));
  return { heads, bodies, steps };
}

const GO_HEAD = (path: string, length: number) =>
  `POST ${path} HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: ${length}\r\n` +
  'Accept: application/vnd.docker.plugins.v1.2+json\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n';

function chunked(body: string, size: number): string {
  let out = '';
  for (let i = 0; i < body.length; i += size) out += `${Math.min(size, body.length - i).toString(16)}\r\n${body.slice(i, i + size)}\r\n`;
  return `${out}0\r\n\r\n`;
}

test('the reader: Content-Length and chunked bodies, pipelined, split anywhere', () => {
  const body = '{"RequestMethod":"GET","RequestUri":"/v1.41/info"}';
  const raw =
    GO_HEAD('/AuthZPlugin.AuthZReq', body.length) +
    body +
    `POST /AuthZPlugin.AuthZRes HTTP/1.1\r\nHost: plugin\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(body, 7).replace('\r\n', ';ext=1\r\n').replace(/0\r\n\r\n$/, '0\r\nX-Trailer: t\r\n\r\n')}` +
    '\r\n' + // a stray blank line between requests is allowed
    'POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';
  for (const split of [1, 2, 3, 17, 64, raw.length]) {
    const r = readAll(raw, split);
    assert.deepEqual(
      r.heads.map((h) => [h.method, h.target, h.keepAlive]),
      [
        ['POST', '/AuthZPlugin.AuthZReq', true],
        ['POST', '/AuthZPlugin.AuthZRes', true],
        ['POST', '/Plugin.Activate', false],
      ],
      `split ${split}`,
    );
    assert.deepEqual(r.bodies, [body, body, ''], `split ${split}`);
    assert.equal(r.steps.at(-1), 'more');
  }
});

test('the reader: a request read whole waits for next(), keeping what follows', () => {
  const heads: string[] = [];
  const r = requestReader(1024, (h) => (heads.push(h.target), { data() {} }));
  assert.equal(r.phase, 'idle');
  assert.equal(r.push(Buffer.from('POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n')), 'more');
  assert.equal(r.phase, 'body');
  assert.equal(r.push(Buffer.from('okPOST /b HTTP/1.1\r\nHost: x\r\n\r\n')), 'request');
  assert.equal(r.phase, 'read');
  assert.equal(r.push(Buffer.from('POST /c HTTP/1.1\r\nHost: x\r\n\r\n')), 'more', 'nothing is read while a request waits for its answer');
  assert.deepEqual(heads, ['/a']);
  assert.ok(r.kept > 0);
  assert.equal(r.next(), 'request');
  assert.equal(r.next(), 'request');
  assert.deepEqual(heads, ['/a', '/b', '/c']);
  assert.equal(r.next(), 'more');
  assert.equal(r.phase, 'idle');
  assert.equal(r.kept, 0);
});

test('the reader: HTTP/1.0, Connection and Expect', () => {
  const heads = (raw: string) => readAll(raw, raw.length).heads[0]!;
  assert.equal(heads('POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
  assert.equal(heads('POST / HTTP/1.0\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n').keepAlive, true);
  assert.equal(heads('POST / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n').keepAlive, false);
  assert.equal(heads('POST / HTTP/1.1\r\nHost: x\r\nConnection: TE, Close\r\n\r\n').keepAlive, false);
  assert.equal(heads('POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx').expectContinue, true);
});

test('the reader: what it cannot frame with certainty is an error with a status, and stays one', () => {
  const cases: Array<[string, string, number]> = [
    ['not HTTP', 'SSH-2.0-OpenSSH\r\n\r\n', 400],
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400],
    ['space in the target', 'POST /a b HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['non-ASCII target', 'POST /\xe9 HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['no colon', 'POST / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n', 400],
    ['space before the colon', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 1\r\n\r\nx', 400],
    ['folded header', 'POST / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n', 400],
    ['bare LF in a value', 'POST / HTTP/1.1\r\nHost: x\r\nX-A: 1\n2\r\n\r\n', 400],
    ['NUL in a value', 'POST / HTTP/1.1\r\nHost: x\r\nX-A: 1\x002\r\n\r\n', 400],
    ['no Host', 'POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n', 400],
    ['two Hosts', 'POST / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n', 400],
    ['negative length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 400],
    ['length with a sign', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx', 400],
    ['two lengths, even equal', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx', 400],
    ['length and chunked', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['chunked and length', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n', 400],
    ['chunked not last', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 400],
    ['gzip', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501],
    ['chunked twice', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['bad chunk size', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400],
    ['chunk without CRLF', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n', 400],
    ['unknown expectation', 'POST / HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n', 417],
    ['headers too large', `POST / HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(2000)}\r\n\r\n`, 431],
    ['headers too large, unterminated', `POST / HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(2000)}`, 431],
  ];
  for (const [name, raw, status] of cases) {
    for (const split of [1, 5, raw.length]) {
      const r = readAll(raw, split, 1024);
      const last = r.steps.at(-1);
      assert.ok(typeof last === 'object', `${name} split ${split}: ${JSON.stringify(r.steps)}`);
      assert.equal(last.status, status, `${name}: ${last.why}`);
      assert.equal(r.bodies.length, 0, `${name}: a request was read`);
    }
  }
  const r = requestReader(1024, () => ({ data() {} }));
  const failed = r.push(Buffer.from('nonsense\r\n\r\n'));
  assert.equal(r.push(Buffer.from('POST / HTTP/1.1\r\nHost: x\r\n\r\n')), failed, 'after an error, nothing more is read');
  assert.equal(r.next(), failed);
});

// A server with the given handler on a fresh socket.
async function serve(
  t: { after: (fn: () => unknown) => void },
  handle: Parameters<typeof createHttpServer>[1],
  opts: Partial<HttpServerOptions> = {},
) {
  const dir = makeTempDir('ug-http-');
  const socket = path.join(dir, 's.sock');
  const server = createHttpServer(
    { headersTimeoutMs: 5_000, requestTimeoutMs: 30_000, idleTimeoutMs: 60_000, maxHeadBytes: 16 * 1024, checkEveryMs: 1_000, ...opts },
    handle,
  );
  await new Promise<void>((resolve) => server.listener.listen(socket, resolve));
  t.after(() => {
    server.closeAll();
    server.listener.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { server, socket };
}

// Echoes the target and body; answers after `delayMs` when the target asks.
function echo(head: RequestHead) {
  const parts: Buffer[] = [];
  return {
    data: (piece: Buffer) => void parts.push(Buffer.from(piece)),
    end: (): Answer | Promise<Answer> => {
      const a = answer(200, { 'Content-Type': 'text/plain' }, Buffer.from(`${head.target} ${Buffer.concat(parts).toString('latin1')}`));
      const delay = /delay=(\d+)/.exec(head.target);
      return delay === null ? a : new Promise((resolve) => setTimeout(() => resolve(a), Number(delay[1])));
    },
  };
}

interface Raw {
  readonly text: () => string;
  readonly closed: Promise<void>;
  readonly conn: net.Socket;
}

function rawConnection(socket: string): Raw {
  const conn = net.connect(socket);
  let text = '';
  conn.on('error', () => {});
  conn.setEncoding('latin1').on('data', (d: string) => (text += d));
  const closed = new Promise<void>((resolve) => conn.on('close', () => resolve()));
  return { text: () => text, closed, conn };
}

async function until(what: () => boolean, ms: number, why: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!what()) {
    if (Date.now() > deadline) assert.fail(why());
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('the server: pipelined requests are answered in order, an async answer holding back the next', async (t) => {
  const { socket } = await serve(t, echo);
  const c = rawConnection(socket);
  c.conn.write(
    'POST /first?delay=150 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nA' +
      'POST /second HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nB\r\n0\r\n\r\n' +
      'POST /third?delay=10 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nC',
  );
  await c.closed;
  const bodies = [...c.text().matchAll(/\r\n\r\n([^H]*)/g)].map((m) => m[1]);
  assert.deepEqual(bodies, ['/first?delay=150 A', '/second B', '/third?delay=10 C'], c.text());
  assert.equal((c.text().match(/Connection: close/g) ?? []).length, 1, 'only the last answer ends the connection');
});

test('the server: Expect 100-continue, a half-closed client, and a bad request', async (t) => {
  const { socket } = await serve(t, echo);
  const cont = rawConnection(socket);
  cont.conn.write('POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n');
  await until(() => cont.text().includes('100 Continue'), 2_000, () => `no 100 Continue: ${JSON.stringify(cont.text())}`);
  cont.conn.end('ok');
  await cont.closed;
  assert.match(cont.text(), /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[^]*\/c ok$/);

  // The client sends its request and closes its side at once: it still gets the answer.
  const half = rawConnection(socket);
  half.conn.end('POST /h?delay=50 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz');
  await half.closed;
  assert.match(half.text(), /^HTTP\/1\.1 200 OK\r\n[^]*\/h\?delay=50 z$/);

  const bad = rawConnection(socket);
  bad.conn.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n');
  await bad.closed;
  assert.match(bad.text(), /^HTTP\/1\.1 400 Bad Request\r\n[^]*Connection: close\r\n[^]*"Err":"both Content-Length and Transfer-Encoding"/);

  // And the server still answers, with node's own client.
  const r = await new Promise<string>((resolve, reject) => {
    const req = http.request({ socketPath: socket, path: '/after', method: 'POST', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end('fine');
  });
  assert.equal(r, '/after fine');
});

test('the server: a handler that throws answers 500 and the server goes on', async (t) => {
  const { socket } = await serve(t, (head) => {
    if (head.target === '/throw-head') throw new Error('at the head');
    return {
      data() {},
      end: () => {
        if (head.target === '/throw-end') throw new Error('at the end');
        if (head.target === '/reject') return Promise.reject(new Error('later'));
        return answer(200, {}, Buffer.from('fine'));
      },
    };
  });
  for (const [target, why] of [['/throw-head', 'at the head'], ['/throw-end', 'at the end'], ['/reject', 'later']]) {
    const c = rawConnection(socket);
    c.conn.write(`POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    await until(() => c.text().includes('}'), 2_000, () => `${target}: ${JSON.stringify(c.text())}`);
    assert.match(c.text(), new RegExp(`^HTTP/1\\.1 500 Internal Server Error\\r\\n[^]*"Err":"internal error: ${why}"`), target);
    assert.doesNotMatch(c.text(), /Connection: close/, `${target}: the connection is kept`);
    // And the same connection carries the next request.
    c.conn.write('POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
    await until(() => c.text().endsWith('fine'), 2_000, () => `${target}: ${JSON.stringify(c.text())}`);
    c.conn.destroy();
  }
});

test('the server: deadlines for headers, body and idle keep-alive', { timeout: 10_000 }, async (t) => {
  const { socket } = await serve(t, echo, { headersTimeoutMs: 300, requestTimeoutMs: 1_200, idleTimeoutMs: 400, checkEveryMs: 50 });
  const start = Date.now();
  const silent = rawConnection(socket);
  const partialHead = rawConnection(socket);
  partialHead.conn.write('POST / HTTP/1.1\r\nHost: x\r\n');
  const partialBody = rawConnection(socket);
  partialBody.conn.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc');
  const kept = rawConnection(socket);
  kept.conn.write('POST /k HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
  const slowAnswer = rawConnection(socket);
  slowAnswer.conn.write('POST /s?delay=1500 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');

  const at = async (c: Raw) => (await c.closed, Date.now() - start);
  const [silentMs, headMs, bodyMs, keptMs] = await Promise.all([at(silent), at(partialHead), at(partialBody), at(kept)]);
  assert.ok(silentMs >= 300 && silentMs < 1_000, `silent: ${silentMs} ms`);
  assert.ok(headMs >= 300 && headMs < 1_000, `partial head: ${headMs} ms`);
  assert.match(silent.text(), /^HTTP\/1\.1 408 /);
  assert.match(partialHead.text(), /^HTTP\/1\.1 408 /);
  assert.ok(bodyMs >= 1_200 && bodyMs < 2_500, `partial body: ${bodyMs} ms`);
  assert.match(partialBody.text(), /^HTTP\/1\.1 408 /);
  // Idle after its answer: closed without a word.
  assert.ok(keptMs >= 400 && keptMs < 1_200, `kept: ${keptMs} ms`);
  assert.match(kept.text(), /^HTTP\/1\.1 200 OK\r\n[^]*\/k $/);
  // An answer being worked out has no deadline here (the plugin bounds its lookups).
  await until(() => slowAnswer.text().includes('/s?delay=1500'), 3_000, () => slowAnswer.text());
  assert.doesNotMatch(slowAnswer.text(), /408/);
  slowAnswer.conn.destroy();
});

test('the server: closing gracefully ends idle connections at once and answers the one in flight last', async (t) => {
  const { server, socket } = await serve(t, echo);
  const idle = rawConnection(socket);
  idle.conn.write('POST /i HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
  await until(() => idle.text().endsWith('/i '), 2_000, () => idle.text());
  const busy = rawConnection(socket);
  busy.conn.write('POST /b?delay=200 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
  await new Promise((r) => setTimeout(r, 50));
  let done = false;
  server.closeGracefully(() => (done = true));
  await idle.closed;
  assert.equal(done, false, 'closed before the call in flight was answered');
  await busy.closed;
  assert.match(busy.text(), /^HTTP\/1\.1 200 OK\r\n[^]*Connection: close\r\n[^]*\/b\?delay=200 $/);
  await until(() => done, 2_000, () => 'the close callback never ran');
});

test('a request read to its end keeps nothing of the read it came in', async () => {
  // An empty view of a read keeps the whole read (a 64 KiB malloc) alive for
  // as long as the connection then idles, which engines do for hours.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // Fed from a function of its own: a suspended async function may keep its
  // last values alive itself.
  const feed = (): WeakRef<ArrayBuffer>[] => {
    const r = requestReader(1024, () => ({ data() {} }));
    const refs = ['POST /a HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\n\r\n', 'POST /b HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n\r\n{}', '\r\n'].map((text) => {
      const chunk = Buffer.alloc(text.length);
      chunk.write(text, 'latin1');
      if (r.push(chunk) === 'request') assert.equal(r.next(), 'more');
      return new WeakRef(chunk.buffer);
    });
    assert.equal(r.kept, 0);
    held.push(r);
    return refs;
  };
  const held: unknown[] = [];
  const refs = feed();
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  assert.deepEqual(refs.map((ref) => ref.deref() === undefined), [true, true, true]);
});
