// Bytes read where the socket left them, in chunks: every answer must be
// the one the same bytes give joined into one Buffer, wherever they are cut.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bytes, decodeStdBase64TextIn, indexAcross, indexOfAnyIn, releaseScratch } from '../src/engine/byteChunks.ts';

function prng(seed: number): (n: number) => number {
  return (n) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    // The high bits: the low ones of this generator repeat with short periods.
    return Math.floor((seed / 0x80000000) * n);
  };
}

function cut(whole: Buffer, next: (n: number) => number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < whole.length; ) {
    const n = 1 + next(Math.min(9, whole.length - at));
    out.push(whole.subarray(at, at + n));
    at += n;
  }
  return out;
}

test('indexAcross, indexOfAnyIn and bytes agree with the joined bytes', () => {
  const next = prng(7);
  for (let i = 0; i < 20_000; i++) {
    const whole = Buffer.from(Array.from({ length: next(40) }, () => 'ab"\\'[next(4)]).join(''));
    const chunks = cut(whole, next);
    const needle = Buffer.from(Array.from({ length: 1 + next(4) }, () => 'ab"'[next(3)]).join(''));
    const from = next(whole.length + 2);
    assert.equal(indexAcross(chunks, needle, from), whole.indexOf(needle, from), `${whole} ${needle} ${from}`);
    const start = next(whole.length + 1);
    const end = start + next(whole.length - start + 1);
    const inRange = [...whole.subarray(start, end)].findIndex((b) => b === 0x22 || b === 0x5c);
    assert.equal(indexOfAnyIn(chunks, [0x22, 0x5c], start, end), inRange < 0 ? -1 : start + inRange);
    assert.ok(bytes(chunks, start, end).equals(whole.subarray(start, end)));
  }
});

test('decodeStdBase64TextIn accepts exactly padded standard base64, and decodes it as UTF-8', () => {
  const next = prng(11);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const odd = '=-_ \n\u00e9"';
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    let s = Buffer.from(Array.from({ length: next(30) }, () => next(256))).toString('base64');
    if (next(3) === 0) {
      const at = next(s.length + 1);
      s = s.slice(0, at) + (next(2) === 0 ? odd[next(odd.length)] : alphabet[next(64)]) + s.slice(at + next(2));
    }
    const whole = Buffer.from(`x${s}y`, 'utf8');
    const got = decodeStdBase64TextIn(cut(whole, next), 1, whole.length - 1);
    const valid = s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s);
    assert.equal(got !== null, valid, JSON.stringify(s));
    if (got !== null) {
      assert.equal(got, Buffer.from(s, 'base64').toString('utf8'), JSON.stringify(s));
      accepted++;
    }
  }
  assert.ok(accepted > 5000 && accepted < 19_000, `${accepted} accepted`);
  // Longer than one 64 KiB piece, with characters of 2 to 4 bytes cut
  // between pieces and chunks.
  const text = 'a\u00e9\u20ac\ud83d\ude00'.repeat(40_000);
  const b64 = Buffer.from(text).toString('base64');
  const whole = Buffer.from(b64);
  assert.equal(decodeStdBase64TextIn([whole.subarray(0, 70_001), whole.subarray(70_001)], 0, whole.length), text);
});

test('the scratch let go once large calls stop is mapped anew by the next body', () => {
  const texts = ['x'.repeat(300_000), 'y\u00e9'.repeat(100_000), 'z'];
  for (const text of texts) {
    const whole = Buffer.from(Buffer.from(text).toString('base64'));
    assert.equal(decodeStdBase64TextIn([whole.subarray(0, 65_536), whole.subarray(65_536)], 0, whole.length), text);
    releaseScratch();
    assert.equal(decodeStdBase64TextIn([whole], 0, whole.length), text);
  }
});
