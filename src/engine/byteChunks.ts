// A body as the socket delivered it: a list of chunks, read as one run of
// bytes without joining them. A 1 MiB create arrives as ~22 chunks of 64 KiB;
// joining them would take a malloc of the whole envelope, and decoding it a
// string of the same size, only to find the one long base64 value in it.

import { mappedBuffer } from './mappedBuffer.ts';
import { utf8Text } from './utf8Text.ts';
import { MAX_AUTHZREQ_BYTES } from './wire.ts';

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
// writes a []byte, and the bytes as UTF-8 text. The bytes go into one
// scratch Buffer, big enough for the largest body an envelope under
// MAX_AUTHZREQ_BYTES can hold, and the text is made from it in one piece.
// A Buffer per body was a malloc each time, and once glibc has raised its
// mmap threshold such blocks, freed, stay in the process heap (60 MiB after
// a burst of large creates); strings per piece, joined, were promoted out
// of the young generation before they died, which made V8 run a full GC
// after nearly every large call. The scratch is mapped apart from the heap
// and only the pages a body has used are resident (mappedBuffer.ts). The
// decoding is synchronous and the text a copy, so one scratch serves every
// call.
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
  const size = (length / 4) * 3 - pad;
  const out = scratch(size);
  let pos = 0;
  let consumed = 0;
  let carry = '';
  // Each piece is a whole number of quads; only the last may hold padding.
  const put = (piece: string): boolean => {
    consumed += piece.length;
    const expected = (piece.length / 4) * 3 - (consumed === length ? pad : 0);
    const written = out.write(piece, pos, 'base64');
    pos += written;
    return written === expected;
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
    const aligned = from + ((to - from) & ~3);
    if (aligned > from && !put(c.toString('latin1', from, aligned))) return false;
    if (aligned < to) carry = c.toString('latin1', aligned, to);
    return true;
  });
  return ok && carry === '' && pos === size ? utf8Text(out.subarray(0, size)) : null;
}

const SCRATCH_BYTES = (MAX_AUTHZREQ_BYTES / 4) * 3;
let scratchBuffer: Buffer | null = null;

function scratch(size: number): Buffer {
  scratchBuffer ??= mappedBuffer(SCRATCH_BYTES);
  return size <= scratchBuffer.length ? scratchBuffer : Buffer.allocUnsafe(size);
}

// The pages a large body was decoded into stay resident while the scratch
// lives. Once large calls have stopped, the server lets it go just before
// its memory-reducing GC, which unmaps it; the next large body maps a new
// one. Not mapped anew here: its bookkeeping, a few bytes of malloc taken
// while the heap is at its largest, can land on top of it and keep the
// 10-20 MiB below from going back.
export function releaseScratch(): void {
  scratchBuffer = null;
}
