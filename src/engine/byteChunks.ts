// A body as the socket delivered it: a list of chunks, read as one run of
// bytes without joining them. A 1 MiB create arrives as ~22 chunks of 64 KiB;
// joining them would take a malloc of the whole envelope, and decoding it a
// string of the same size, only to find the one long base64 value in it.

import { utf8ChunkDecoder } from './utf8Text.ts';

export type Chunks = readonly Buffer[];

export function totalLength(chunks: Chunks): number {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}

// Calls `each` with the part of every chunk that lies in [start, end), as
// offsets in the chunk, and the chunk's own offset; stops when it says false.
function forEachIn(
  chunks: Chunks,
  start: number,
  end: number,
  each: (chunk: Buffer, from: number, to: number, base: number) => boolean,
): boolean {
  let base = 0;
  for (const c of chunks) {
    const from = Math.max(start, base);
    const to = Math.min(end, base + c.length);
    if (from < to && !each(c, from - base, to - base, base)) return false;
    base += c.length;
    if (base >= end) break;
  }
  return true;
}

// The first offset at or after `from` where `needle` starts, across chunk
// boundaries; -1 if none.
export function indexAcross(chunks: Chunks, needle: Buffer, from = 0): number {
  let base = 0;
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i]!;
    const at = from - base < c.length ? c.indexOf(needle, Math.max(0, from - base)) : -1;
    if (at >= 0) return base + at;
    // A match that starts in this chunk and ends in the next ones.
    if (needle.length > 1 && i + 1 < chunks.length) {
      const keep = Math.min(c.length, needle.length - 1);
      const seam = Buffer.concat([c.subarray(c.length - keep), bytes(chunks, base + c.length, base + c.length + needle.length - 1)]);
      const seamBase = base + c.length - keep;
      const s = seam.indexOf(needle, Math.max(0, from - seamBase));
      if (s >= 0 && s < keep) return seamBase + s;
    }
    base += c.length;
  }
  return -1;
}

// The first offset in [start, end) holding any of `values`; -1 if none.
export function indexOfAnyIn(chunks: Chunks, values: readonly number[], start: number, end: number): number {
  let found = -1;
  forEachIn(chunks, start, end, (c, from, to, base) => {
    let first = -1;
    for (const v of values) {
      const at = c.indexOf(v, from);
      if (at >= 0 && at < to && (first < 0 || at < first)) first = at;
    }
    if (first >= 0) {
      found = base + first;
      return false;
    }
    return true;
  });
  return found;
}

// The bytes in [start, end) as one Buffer: a view into the chunk when they
// lie in one, else a copy.
export function bytes(chunks: Chunks, start: number, end: number): Buffer {
  const parts: Buffer[] = [];
  forEachIn(chunks, start, end, (c, from, to) => {
    parts.push(c.subarray(from, to));
    return true;
  });
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

// Decodes [start, end) as padded standard base64, the way Go's encoding/json
// writes a []byte, and the bytes as UTF-8 text: quad-aligned pieces of at
// most 64 KiB go through one scratch Buffer, so neither a string of the
// whole value nor a Buffer of the whole body is ever made. (A 1 MiB Buffer
// is a malloc, and once glibc has raised its mmap threshold such blocks,
// freed, stay in the process heap: 60 MiB after a burst of large creates.)
// null unless every character is of the standard alphabet and '=' pads the
// end only (see envelope.ts for why counting the decoded bytes checks that).
export function decodeStdBase64TextIn(chunks: Chunks, start: number, end: number): string | null {
  const length = end - start;
  if (length % 4 !== 0) return null;
  if (length === 0) return '';
  // Node's decoder also takes the URL alphabet in full.
  if (indexOfAnyIn(chunks, [0x2d, 0x5f], start, end) >= 0) return null;
  const last = bytes(chunks, end - 2, end);
  const pad = last[1] === 0x3d ? (last[0] === 0x3d ? 2 : 1) : 0;
  const decoder = utf8ChunkDecoder();
  let text = '';
  let consumed = 0;
  let carry = '';
  // Each piece is a whole number of quads; only the last may hold padding.
  const put = (piece: string): boolean => {
    consumed += piece.length;
    const expected = (piece.length / 4) * 3 - (consumed === length ? pad : 0);
    const written = SCRATCH.write(piece, 0, 'base64');
    if (written !== expected) return false;
    text += decoder.write(SCRATCH.subarray(0, written));
    return true;
  };
  const ok = forEachIn(chunks, start, end, (c, from, to) => {
    if (carry.length > 0) {
      const take = Math.min(4 - carry.length, to - from);
      carry += c.toString('latin1', from, from + take);
      from += take;
      if (carry.length < 4) return true;
      if (!put(carry)) return false;
      carry = '';
    }
    for (let aligned = from + ((to - from) & ~3); from < aligned; ) {
      const upTo = Math.min(aligned, from + PIECE_CHARS);
      if (!put(c.toString('latin1', from, upTo))) return false;
      from = upTo;
    }
    if (from < to) carry = c.toString('latin1', from, to);
    return true;
  });
  return ok && carry === '' && consumed === length ? text + decoder.end() : null;
}

const PIECE_CHARS = 64 << 10;
const SCRATCH = Buffer.allocUnsafeSlow((PIECE_CHARS / 4) * 3);
