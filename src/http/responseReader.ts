// Reads one HTTP/1.1 response off a byte stream, as the engine's Go server
// writes them: a status line and headers, then a body by Content-Length, by
// chunked transfer coding, or until the connection closes. Pure: bytes in,
// a state out; the lookup client does the socket work.

import { chunkedDecoder } from './chunked.ts';

export interface ParsedResponse {
  readonly status: number;
  readonly body: Buffer;
  // Whether the connection may carry the next request.
  readonly reusable: boolean;
}

export type ParseStep =
  | { readonly kind: 'more' }
  | { readonly kind: 'done'; readonly response: ParsedResponse }
  | { readonly kind: 'error'; readonly why: string };

export interface ResponseReader {
  push(chunk: Buffer): ParseStep;
  // The peer closed the connection: a body read until close ends here.
  end(): ParseStep;
  readonly started: boolean;
}

const MAX_HEAD = 64 << 10;

type Framing = { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' } | { kind: 'none' };

export function responseReader(maxBody: number): ResponseReader {
  let pending: Buffer = Buffer.alloc(0);
  let started = false;
  let head: { status: number; reusable: boolean; framing: Framing } | null = null;
  const parts: Buffer[] = [];
  let bodySize = 0;
  let failed: ParseStep | null = null;
  const decoder = chunkedDecoder(maxBody, MAX_HEAD);

  const fail = (why: string): ParseStep => (failed = { kind: 'error', why });
  // Bytes after the answer: a peer that does not frame its answers the way
  // this reader does, so its connection is not used again.
  const done = (excess: boolean): ParseStep => ({
    kind: 'done',
    response: { status: head!.status, body: parts.length === 1 ? parts[0]! : Buffer.concat(parts), reusable: head!.reusable && !excess },
  });
  const take = (piece: Buffer): boolean => {
    bodySize += piece.length;
    if (bodySize > maxBody) return false;
    parts.push(piece);
    return true;
  };

  function step(): ParseStep {
    if (head === null) {
      const end = pending.indexOf('\r\n\r\n');
      if (end < 0) return pending.length > MAX_HEAD ? fail('response headers too large') : { kind: 'more' };
      const parsed = parseHead(pending.toString('latin1', 0, end));
      pending = pending.subarray(end + 4);
      if (typeof parsed === 'string') return fail(parsed);
      // 1xx answers are interim: the real one follows.
      if (parsed.status >= 100 && parsed.status < 200) return step();
      head = parsed;
    }
    const framing = head.framing;
    switch (framing.kind) {
      case 'none':
        return done(pending.length > 0);
      case 'close':
        if (pending.length > 0 && !take(pending)) return fail(`answer larger than ${maxBody} bytes`);
        pending = Buffer.alloc(0);
        return { kind: 'more' };
      case 'length': {
        const piece = pending.subarray(0, framing.left);
        if (piece.length > 0 && !take(piece)) return fail(`answer larger than ${maxBody} bytes`);
        framing.left -= piece.length;
        pending = pending.subarray(piece.length);
        return framing.left === 0 ? done(pending.length > 0) : { kind: 'more' };
      }
      case 'chunked':
        return chunks();
    }
  }

  function chunks(): ParseStep {
    const s = decoder.step(pending, (piece) => void parts.push(piece));
    if (s.kind === 'error') return fail(s.tooLarge ? `answer larger than ${maxBody} bytes` : s.why);
    pending = pending.subarray(s.used);
    return s.kind === 'done' ? done(pending.length > 0) : { kind: 'more' };
  }

  return {
    get started() {
      return started;
    },
    push(chunk) {
      if (failed !== null) return failed;
      started = true;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      return step();
    },
    end() {
      if (failed !== null) return failed;
      if (head?.framing.kind === 'close') return done(false);
      return fail(started ? 'the engine closed the connection in the middle of its answer' : 'the engine closed the connection without an answer');
    },
  };
}

function parseHead(text: string): { status: number; reusable: boolean; framing: Framing } | string {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]!);
  if (m === null) return `not an HTTP/1.x answer (${JSON.stringify(lines[0]!.slice(0, 40))})`;
  const status = Number(m[2]);
  let reusable = m[1] === '1';
  let length: number | null = null;
  let chunked = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return 'malformed header line';
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') {
      if (!/^\d{1,12}$/.test(value) || (length !== null && length !== Number(value))) return 'bad Content-Length';
      length = Number(value);
    } else if (name === 'transfer-encoding') {
      chunked = value.toLowerCase().split(',').map((v) => v.trim()).at(-1) === 'chunked';
      if (!chunked) return `unsupported Transfer-Encoding ${JSON.stringify(value)}`;
    } else if (name === 'connection') {
      const tokens = value.toLowerCase().split(',').map((v) => v.trim());
      if (tokens.includes('close')) reusable = false;
      else if (tokens.includes('keep-alive')) reusable = true;
    }
  }
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return { status, reusable, framing: { kind: 'none' } };
  if (chunked) return { status, reusable, framing: { kind: 'chunked' } };
  if (length !== null) return { status, reusable, framing: length === 0 ? { kind: 'none' } : { kind: 'length', left: length } };
  return { status, reusable: false, framing: { kind: 'close' } };
}
