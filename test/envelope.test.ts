// readEnvelope checks RequestBody by decoding it (faster than a regular
// expression on a 1.4 MiB string). This pins that check to the plain
// definition, so a Node upgrade that changes its base64 decoder shows here.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readEnvelope } from '../src/engine/envelope.ts';

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
    assert.equal(r.call.body.toString('utf8'), text);
  }
  for (const body of ['', null]) {
    const r = readEnvelope(JSON.stringify({ RequestMethod: 'GET', RequestUri: '/x', RequestBody: body }));
    assert.ok(r.ok && r.call.body === null);
  }
});
