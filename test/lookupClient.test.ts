// The lookup client and its response reader (and the engine API on top) against a server that writes
// answers byte by byte as chosen here: every framing the engine's Go server
// uses, split anywhere, and the ways a connection goes wrong.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { responseReader } from '../src/http/responseReader.ts';
import { createEngineApi } from '../src/engine/engineApi.ts';
import { createLookupClient } from '../src/engine/lookupClient.ts';
import { makeTempDir } from './lib/plugin.ts';

const JSON_BODY = JSON.stringify({ Id: 'a'.repeat(64), Name: '/ünïcode', Mounts: [] });

function chunked(body: string, size: number): string {
  const bytes = Buffer.from(body);
  let out = '';
  for (let i = 0; i < bytes.length; i += size) {
    const piece = bytes.subarray(i, i + size);
    out += `${piece.length.toString(16)}\r\n${piece.toString('latin1')}\r\n`;
  }
  return `${out}0\r\n\r\n`;
}

function readAll(raw: string, splitEvery: number, maxBody = 1 << 20): ReturnType<ReturnType<typeof responseReader>['push']> {
  const r = responseReader(maxBody);
  const bytes = Buffer.from(raw, 'latin1');
  let last: ReturnType<typeof r.push> = { kind: 'more' };
  for (let i = 0; i < bytes.length && last.kind === 'more'; i += splitEvery) last = r.push(bytes.subarray(i, i + splitEvery));
  return last.kind === 'more' ? r.end() : last;
}

test('the reader: Content-Length, chunked (with extensions and trailers), close-delimited, split anywhere', () => {
  const body = Buffer.from(JSON_BODY).toString('latin1');
  const cases: Array<[string, string, boolean]> = [
    ['length', `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(JSON_BODY)}\r\n\r\n${body}`, true],
    ['chunked', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(JSON_BODY, 7)}`, true],
    ['chunked, extension and trailer', `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${chunked(JSON_BODY, 64).replace('\r\n', ';ext=1\r\n').replace(/0\r\n\r\n$/, '0\r\nX-Trailer: t\r\n\r\n')}`, true],
    ['connection close', `HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(JSON_BODY)}\r\n\r\n${body}`, false],
    ['until close', `HTTP/1.1 200 OK\r\n\r\n${body}`, false],
    ['interim 100 first', `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(JSON_BODY)}\r\n\r\n${body}`, true],
  ];
  for (const [name, raw, reusable] of cases) {
    for (const split of [1, 3, 17, raw.length]) {
      const s = readAll(raw, split);
      assert.equal(s.kind, 'done', `${name} split ${split}: ${JSON.stringify(s)}`);
      if (s.kind !== 'done') continue;
      assert.equal(s.response.status, 200);
      assert.equal(s.response.body.toString('utf8'), JSON_BODY, `${name} split ${split}`);
      assert.equal(s.response.reusable, reusable, name);
    }
  }
  const notFound = readAll('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n', 5);
  assert.ok(notFound.kind === 'done' && notFound.response.status === 404 && notFound.response.body.length === 0);
  const noContent = readAll('HTTP/1.1 204 No Content\r\n\r\n', 100);
  assert.ok(noContent.kind === 'done' && noContent.response.reusable);
});

test('the reader: malformed, oversized, truncated and trailing bytes are errors or not reusable', () => {
  const errors: Array<[string, string]> = [
    ['not HTTP', 'SSH-2.0-OpenSSH\r\n\r\n'],
    ['bad status', 'HTTP/1.1 2000 OK\r\n\r\n'],
    ['bad header', 'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n'],
    ['bad length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'],
    ['two lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'],
    ['gzip', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n'],
    ['bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['chunk without CRLF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n'],
    ['truncated', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'],
    ['truncated chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab'],
    ['nothing', ''],
  ];
  for (const [name, raw] of errors) assert.equal(readAll(raw, 4).kind, 'error', name);
  assert.equal(readAll(`HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n${'x'.repeat(2000)}`, 100, 1000).kind, 'error', 'over the size bound');
  assert.equal(readAll(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked('y'.repeat(2000), 300)}`, 100, 1000).kind, 'error', 'chunked over the size bound');
  const announced = responseReader(1000).push(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffff\r\nxx'));
  assert.equal(announced.kind, 'error', 'a chunk announced over the bound is refused before it arrives');
  const excess = readAll('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n', 1000);
  assert.ok(excess.kind === 'done' && !excess.response.reusable, 'bytes after the answer: the connection is not reused');
});

// A server whose answer to each request is chosen by the test.
function scriptedServer(socket: string, answer: (req: string, conn: net.Socket, onConnection: number) => void): Promise<{ close: () => Promise<void>; connections: () => number }> {
  let connections = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((conn) => {
    connections++;
    open.add(conn);
    conn.on('close', () => open.delete(conn));
    let buf = '';
    let requests = 0;
    conn.on('error', () => {});
    conn.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const req = buf.slice(0, end);
        buf = buf.slice(end + 4);
        answer(req, conn, ++requests);
      }
    });
  });
  // The client's kept connections would hold server.close() open.
  const close = () => new Promise<void>((resolve) => {
    server.close(() => resolve());
    for (const c of open) c.destroy();
  });
  return new Promise((resolve) => server.listen(socket, () => resolve({ close, connections: () => connections })));
}

test('the client: keeps connections, retries a kept one the engine closed, and bounds every lookup', async (t) => {
  const dir = makeTempDir('ug-lookup-client-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socket = path.join(dir, 'engine.sock');
  let mode: 'ok' | 'close-after' | 'drop-kept' | 'hang' | 'huge' | 'garbage' = 'ok';
  const { close, connections } = await scriptedServer(socket, (req, conn, onConnection) => {
    assert.match(req, /^GET \/containers\/x%2Fy\/json HTTP\/1\.1\r\nHost: docker\r\n/);
    if (mode === 'hang') return;
    // As if the engine had dropped the kept connection just as the request went out.
    if (mode === 'drop-kept' && onConnection > 1) return void conn.destroy();
    if (mode === 'garbage') return void conn.end('nonsense\r\n\r\n');
    if (mode === 'huge') return void conn.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked('z'.repeat(5000), 1000)}`);
    // chunked() gives bytes as latin1 characters.
    conn.write(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(JSON_BODY, 10)}`, 'latin1'));
    if (mode === 'close-after') conn.end();
  });
  t.after(close);
  const client = createLookupClient(socket, { maxBody: 4096 });
  const get = () => client.get('/containers/x%2Fy/json', 1000);

  for (let i = 0; i < 20; i++) assert.deepEqual(await get(), { status: 200, body: JSON_BODY });
  assert.equal(connections(), 1, 'one kept connection for sequential lookups');
  const parallel = await Promise.all(Array.from({ length: 6 }, get));
  assert.ok(parallel.every((a) => a.body === JSON_BODY));

  // The engine closes each connection after its answer: the next lookup
  // finds the kept one dead and sends again on a new one.
  mode = 'close-after';
  const before = connections();
  for (let i = 0; i < 5; i++) assert.equal((await get()).body, JSON_BODY);
  assert.ok(connections() > before);

  mode = 'drop-kept';
  for (let i = 0; i < 5; i++) assert.equal((await get()).body, JSON_BODY, 'sent again on a new connection');

  mode = 'hang';
  const started = Date.now();
  await assert.rejects(get(), /no answer within 1000 ms/);
  assert.ok(Date.now() - started < 1500, 'the deadline holds');
  mode = 'huge';
  await assert.rejects(get(), /answer larger than 4096 bytes/);
  mode = 'garbage';
  await assert.rejects(get(), /not an HTTP\/1\.x answer/);
  mode = 'ok';
  assert.equal((await get()).body, JSON_BODY, 'still works after every failure');
});

test('the client: no engine at the socket path says so, with the error code; a path that would end the request line is refused', async () => {
  const client = createLookupClient('/nonexistent/userns-guard-test.sock');
  await assert.rejects(client.get('/info', 500), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
  for (const bad of ['/info HTTP/1.1\r\nX: y', '/a b', 'info', '/\u00e9']) await assert.rejects(client.get(bad, 500), /not a request path/);
});

test('the engine API: an exec found once is not looked up again; its container is, every time', async (t) => {
  const dir = makeTempDir('ug-engine-api-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socket = path.join(dir, 'engine.sock');
  const containerId = 'c'.repeat(64);
  const asked: string[] = [];
  const server = http.createServer((req, res) => {
    asked.push(req.url!);
    const answers: Record<string, object> = {
      '/exec/e1/json': { ID: 'e1', ContainerID: containerId },
      [`/containers/${containerId}/json`]: { Id: containerId, Name: '/web', HostConfig: { UsernsMode: '' }, Mounts: [] },
    };
    const body = answers[req.url!];
    res.writeHead(body === undefined ? 404 : 200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body ?? { message: 'No such exec instance' }));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.after(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
  const api = createEngineApi(socket, 2_000);

  for (let i = 0; i < 3; i++) assert.deepEqual(await api.execContainerId('e1'), { kind: 'found', value: containerId });
  assert.deepEqual(asked, ['/exec/e1/json']);
  // The container itself is asked about every time (what is kept of it, and
  // how briefly, is for src/facts/recentAnswers.ts).
  for (let i = 0; i < 2; i++) assert.equal((await api.container(containerId)).kind, 'found');
  assert.deepEqual(asked, ['/exec/e1/json', ...Array(2).fill(`/containers/${containerId}/json`)]);

  asked.length = 0;
  for (let i = 0; i < 2; i++) assert.equal((await api.execContainerId('e2')).kind, 'absent');
  assert.deepEqual(asked, ['/exec/e2/json', '/exec/e2/json'], 'an exec the engine does not know is asked about again');
});
