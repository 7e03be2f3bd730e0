// The engine's bytes decoded as UTF-8, with Latin-1 taking the ASCII ones:
// the result must be exactly Buffer.toString('utf8')'s, whatever the bytes
// and wherever a character falls.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { utf8Text } from '../src/engine/utf8Text.ts';

// ASCII, multi-byte characters, a character cut short, bytes that are never UTF-8.
const PIECES = ['a', '{"k":"v"}', '\u00e9', '\u017f', '\u212a', '\ud83d\ude00', '\u2028'].map((s) => Buffer.from(s, 'utf8'))
  .concat([Buffer.from([0xc3]), Buffer.from([0xe2, 0x82]), Buffer.from([0xff]), Buffer.from([0x80]), Buffer.from([0xf0, 0x9f, 0x98])]);

function sample(next: (n: number) => number): Buffer {
  const parts: Buffer[] = [];
  for (let k = next(12); k > 0; k--) parts.push(next(3) === 0 ? PIECES[next(PIECES.length)]! : PIECES[next(2)]!);
  return Buffer.concat(parts);
}

function random(seed: number): (n: number) => number {
  return (n) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
}

test('utf8Text decodes as Buffer.toString("utf8") does', () => {
  const next = random(7);
  for (let i = 0; i < 20000; i++) {
    const bytes = sample(next);
    assert.equal(utf8Text(bytes), bytes.toString('utf8'), bytes.toString('hex'));
  }
  assert.equal(utf8Text(Buffer.alloc(0)), '');
});
