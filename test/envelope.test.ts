// readEnvelope checks RequestBody by decoding it (faster than a regular
// expression on a 1.4 MiB string). This pins that check to the plain
// definition, so a Node upgrade that changes its base64 decoder shows here.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readEnvelope, readEnvelopeInPlace } from '../src/engine/envelope.ts';

const STD_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\u00e9\u017f';

// Deterministic, so a failure reproduces.
function prng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
}

function accepted(body: string): boolean {
  return readEnvelope(JSON.stringify({ RequestMethod: 'POST', RequestUri: '/containers/create', RequestBody: body })).ok;
}

test('RequestBody is accepted exactly when it is padded standard base64', () => {
  const rnd = prng(20261123);
  for (let i = 0; i < 50_000; i++) {
    const len = Math.floor(rnd() * 13);
    let s = '';
    for (let j = 0; j < len; j++) {
      // Mostly the real alphabet, so many candidates are valid.
      s += rnd() < 0.85 ? ALPHABET[Math.floor(rnd() * 64)] : ALPHABET[64 + Math.floor(rnd() * (ALPHABET.length - 64))];
    }
    const expected = s.length % 4 === 0 && STD_BASE64.test(s);
    assert.equal(accepted(s), expected, JSON.stringify(s));
  }
});

test('real bodies round-trip, and empty or null means no body', () => {
  for (const text of ['{}', '{"Image":"busybox"}', 'x'.repeat(1 << 20)]) {
    const r = readEnvelope(JSON.stringify({ RequestMethod: 'POST', RequestUri: '/x', RequestBody: Buffer.from(text).toString('base64') }));
    assert.ok(r.ok && r.call.body !== null);
    assert.equal(r.call.body, text);
  }
  for (const body of ['', null]) {
    const r = readEnvelope(JSON.stringify({ RequestMethod: 'GET', RequestUri: '/x', RequestBody: body }));
    assert.ok(r.ok && r.call.body === null);
  }
});

// The server hands readEnvelope the chunks the socket gave, and the body is
// decoded from them in place. Whatever the envelope and wherever it is cut,
// that must give what reading the whole text gives.
function chunked(text: string, rnd: () => number, maxChunk: number): Buffer[] {
  const bytes = Buffer.from(text, 'utf8');
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + Math.floor(rnd() * maxChunk);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

function sameResult(a: ReturnType<typeof readEnvelope>, b: ReturnType<typeof readEnvelope>, what: string): void {
  assert.equal(a.ok, b.ok, what);
  if (!a.ok || !b.ok) {
    assert.equal(a.ok ? '' : a.error, b.ok ? '' : b.error, what);
    return;
  }
  assert.deepEqual(a.call, b.call, what);
}

test('an envelope read from its chunks gives what its whole text gives', () => {
  const rnd = prng(20261201);
  let inPlace = 0;
  for (let i = 0; i < 20_000; i++) {
    let body: string | null;
    const r = rnd();
    if (r < 0.1) body = null;
    else if (r < 0.5) body = Buffer.from('{"Image":"busybox","Env":["A=\u00e9"]}'.repeat(Math.floor(rnd() * 4))).toString('base64');
    else {
      body = '';
      const len = 4 * Math.floor(rnd() * 5) + (rnd() < 0.2 ? Math.floor(rnd() * 4) : 0);
      for (let j = 0; j < len; j++) body += rnd() < 0.9 ? ALPHABET[Math.floor(rnd() * 64)] : ALPHABET[64 + Math.floor(rnd() * (ALPHABET.length - 64))];
    }
    // Go's field order; now and then a field of the wrong type, a second
    // RequestBody, or a RequestBody-like text elsewhere.
    const env: Record<string, unknown> = {
      User: rnd() < 0.5 ? '' : 'alice "RequestBody":"',
      UserAuthNMethod: '',
      RequestMethod: rnd() < 0.05 ? 7 : 'POST',
      RequestUri: '/v1.41/containers/create?name=\u00e9',
      RequestBody: body,
      RequestHeaders: rnd() < 0.05 ? { 'Content-Type': 1 } : { 'Content-Type': 'application/json', 'X-Note': '"RequestBody":"QUFB"' },
      RequestPeerCertificates: null,
    };
    let text = JSON.stringify(env);
    if (rnd() < 0.05) text = text.replace(/}$/, ',"RequestBody":""}');
    const whole = readEnvelope(text);
    const chunks = chunked(text, rnd, rnd() < 0.5 ? 8 : 64);
    sameResult(readEnvelope(chunks), whole, text);
    sameResult(readEnvelope(Buffer.from(text)), whole, text);
    if (readEnvelopeInPlace(chunks) !== null) inPlace++;
  }
  // Most of them took the in-place path: the comparison tested it.
  assert.ok(inPlace > 10_000, `${inPlace} of 20000 read in place`);
});

test('a 1 MiB create read from 64 KiB chunks is decoded in place', () => {
  const body = Buffer.from(JSON.stringify({ Image: 'busybox', Env: Array.from({ length: 11_000 }, (_, i) => `V${i}=${'v'.repeat(80)}`) }));
  const text = JSON.stringify({ User: '', UserAuthNMethod: '', RequestMethod: 'POST', RequestUri: '/v1.41/containers/create', RequestBody: body.toString('base64'), RequestHeaders: { 'Content-Type': 'application/json' } });
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 65536) chunks.push(bytes.subarray(at, at + 65536));
  const r = readEnvelopeInPlace(chunks);
  assert.ok(r !== null && r.ok && r.call.body !== null);
  assert.equal(r.call.body, body.toString('utf8'));
  assert.equal(r.call.uri, '/v1.41/containers/create');
});

test('a call wrong in several ways is refused for its method first, read whole or in place', () => {
  const text = JSON.stringify({ User: '', RequestBody: 'not base64!' + 'A'.repeat(70_000), RequestHeaders: {} });
  const bytes = Buffer.from(text);
  const inPlace = readEnvelopeInPlace([bytes.subarray(0, 100), bytes.subarray(100)]);
  assert.ok(inPlace !== null && !inPlace.ok);
  for (const r of [readEnvelope(text), readEnvelope(bytes), inPlace]) {
    assert.ok(!r.ok);
    assert.equal(r.error, 'call envelope lacks RequestMethod');
  }
});
