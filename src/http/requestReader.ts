// Reads HTTP/1.1 requests off one connection's bytes, one request at a time,
// as the engine's plugin client (Go's net/http) sends them: a request line,
// headers, and a body by Content-Length or by chunked transfer coding. Pure:
// bytes in, body pieces to the request's sink and a step out; the server
// does the socket work. Anything this reader cannot frame with certainty is
// an error that ends the connection, never a guess about where the next
// request starts.

import { chunkedDecoder, type ChunkedDecoder } from './chunked.ts';

export interface RequestHead {
  readonly method: string;
  readonly target: string;
  // Whether the client lets the connection carry another request after this one.
  readonly keepAlive: boolean;
  readonly expectContinue: boolean;
}

// Where a request's body goes, piece by piece, as it arrives.
export interface BodySink {
  data(piece: Buffer): void;
}

export interface RequestError {
  readonly status: 400 | 417 | 431 | 501;
  readonly why: string;
}

// 'request': a whole request has been read; the next is not read until
// next() is called, so answers go out in the order the requests came.
export type ReadStep = 'more' | 'request' | RequestError;

// idle: no byte of the next request yet; head, body: reading one; read: a
// whole request read, not yet answered.
export type ReaderPhase = 'idle' | 'head' | 'body' | 'read';

export interface RequestReader {
  push(chunk: Buffer): ReadStep;
  next(): ReadStep;
  readonly phase: ReaderPhase;
  // Bytes received and not yet read.
  readonly kept: number;
}

const EMPTY = Buffer.alloc(0);
const HEAD_END = Buffer.from('\r\n\r\n');
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
// Control characters other than HTAB, bare CR and LF among them.
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

// What is left of a read from `from` on. Never an empty view: that would keep
// the whole read (a 64 KiB malloc) alive for as long as the connection idles.
function after(buf: Buffer, from: number): Buffer {
  return from >= buf.length ? EMPTY : buf.subarray(from);
}

export function requestReader(maxHead: number, onHead: (head: RequestHead) => BodySink): RequestReader {
  let pending: Buffer = EMPTY;
  let phase: ReaderPhase = 'idle';
  let sink: BodySink | null = null;
  let left = 0;
  let decoder: ChunkedDecoder | null = null;
  let failed: RequestError | null = null;
  const toSink = (piece: Buffer) => sink!.data(piece);

  const fail = (status: RequestError['status'], why: string): RequestError => {
    pending = EMPTY;
    return (failed = { status, why });
  };

  function read(): ReadStep {
    if (phase === 'idle') {
      // Blank lines before a request line are ignored (RFC 9112 §2.2).
      let i = 0;
      while (i < pending.length && (pending[i] === 0x0d || pending[i] === 0x0a)) i++;
      if (i > 0) pending = after(pending, i);
      if (pending.length === 0) return 'more';
      phase = 'head';
    }
    if (phase === 'head') {
      const end = pending.indexOf(HEAD_END);
      if (end < 0 || end + HEAD_END.length > maxHead) {
        return end >= 0 || pending.length > maxHead ? fail(431, `request headers larger than ${maxHead} bytes`) : 'more';
      }
      const head = parseHead(pending.toString('latin1', 0, end));
      pending = after(pending, end + HEAD_END.length);
      if ('status' in head) return fail(head.status, head.why);
      sink = onHead(head.head);
      // The body's size is not bounded here: the server's handlers drain
      // what they do not keep.
      decoder = head.chunked ? chunkedDecoder(Infinity, maxHead) : null;
      left = head.length;
      phase = 'body';
    }
    if (phase === 'body') {
      if (decoder !== null) {
        const s = decoder.step(pending, toSink);
        if (s.kind === 'error') return fail(400, s.why);
        pending = after(pending, s.used);
        if (s.kind === 'more') return 'more';
      } else if (left > 0) {
        if (pending.length === 0) return 'more';
        const n = Math.min(left, pending.length);
        sink!.data(n === pending.length ? pending : pending.subarray(0, n));
        pending = after(pending, n);
        left -= n;
        if (left > 0) return 'more';
      }
      phase = 'read';
      sink = null;
      decoder = null;
      return 'request';
    }
    // read: what arrives is kept for next().
    return 'more';
  }

  return {
    push(chunk) {
      if (failed !== null) return failed;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      return read();
    },
    next() {
      if (failed !== null) return failed;
      phase = 'idle';
      return read();
    },
    get phase() {
      return phase;
    },
    get kept() {
      return pending.length;
    },
  };
}

type ParsedHead = { readonly head: RequestHead; readonly length: number; readonly chunked: boolean } | RequestError;

const bad = (why: string): RequestError => ({ status: 400, why });

// Optional whitespace around a header value (RFC 9110 §5.6.3): spaces and
// tabs only.
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s[a] === ' ' || s[a] === '\t')) a++;
  while (b > a && (s[b - 1] === ' ' || s[b - 1] === '\t')) b--;
  return s.slice(a, b);
}

function parseHead(text: string): ParsedHead {
  const lines = text.split('\r\n');
  const m = REQUEST_LINE.exec(lines[0]!);
  if (m === null) return bad('malformed request line');
  const http11 = m[3] === '1';
  let close = false;
  let keepAliveAsked = false;
  let length: number | null = null;
  let chunked = false;
  let host = false;
  let expectContinue = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (CONTROL.test(line)) return bad('control character in a header line');
    const colon = line.indexOf(':');
    // A name that is not a token covers a folded line (obs-fold) and space
    // before the colon, both refused by RFC 9112 §5.
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) return bad('malformed header line');
    const value = trimOws(line.slice(colon + 1));
    switch (line.slice(0, colon).toLowerCase()) {
      case 'content-length':
        if (length !== null || !/^\d{1,15}$/.test(value)) return bad('bad Content-Length');
        length = Number(value);
        break;
      case 'transfer-encoding': {
        const codings = value.toLowerCase().split(',').map(trimOws);
        if (chunked) return bad('more than one Transfer-Encoding');
        if (codings.length === 1 && codings[0] === 'chunked') chunked = true;
        else if (codings.at(-1) !== 'chunked') return bad('the request body is not chunked last');
        else return { status: 501, why: `unsupported Transfer-Encoding ${JSON.stringify(value)}` };
        break;
      }
      case 'connection':
        for (const token of value.toLowerCase().split(',')) {
          const t = trimOws(token);
          if (t === 'close') close = true;
          else if (t === 'keep-alive') keepAliveAsked = true;
        }
        break;
      case 'expect':
        if (value.toLowerCase() !== '100-continue') return { status: 417, why: `unsupported Expect ${JSON.stringify(value)}` };
        expectContinue = true;
        break;
      case 'host':
        if (host) return bad('more than one Host header');
        host = true;
        break;
    }
  }
  // Both framings at once is how requests are smuggled past a proxy (RFC 9112 §6.1).
  if (chunked && length !== null) return bad('both Content-Length and Transfer-Encoding');
  if (http11 && !host) return bad('no Host header');
  // HTTP/1.1 keeps a connection unless told not to; 1.0 only when asked.
  const keepAlive = !close && (http11 || keepAliveAsked);
  return { head: { method: m[1]!, target: m[2]!, keepAlive, expectContinue }, length: length ?? 0, chunked };
}
