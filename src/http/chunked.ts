// Reads a body sent with chunked transfer coding (RFC 9112 §7.1), piece by
// piece as the bytes arrive: both the plugin's server (a request body) and
// its lookup client (an engine answer) meet it. Pure: bytes in, data pieces
// and a position out; a chunk's data is handed over as it comes, never
// gathered, so a large body costs no more memory than its reads.

export interface ChunkedDecoder {
  // Reads what it can of `bytes`, handing each piece of data to `data`.
  // `used` is where it stopped: a size or trailer line cut short waits
  // there for more bytes.
  step(bytes: Buffer, data: (piece: Buffer) => void): ChunkedStep;
}

export type ChunkedStep =
  | { readonly kind: 'more'; readonly used: number }
  | { readonly kind: 'done'; readonly used: number }
  | { readonly kind: 'error'; readonly why: string; readonly tooLarge: boolean };

const MAX_SIZE_LINE = 1024;
const SIZE = /^[0-9a-fA-F]{1,8}$/;

// `maxBody` bounds the data; a chunk that would pass it is refused from its
// size line, before its data arrives.
export function chunkedDecoder(maxBody: number, maxTrailers: number): ChunkedDecoder {
  let phase: 'size' | 'data' | 'crlf' | 'trailer' = 'size';
  let left = 0;
  let total = 0;
  let trailerBytes = 0;
  const error = (why: string, tooLarge = false): ChunkedStep => ({ kind: 'error', why, tooLarge });

  return {
    step(bytes, data) {
      let at = 0;
      for (;;) {
        switch (phase) {
          case 'size': {
            const eol = bytes.indexOf('\r\n', at, 'latin1');
            if (eol < 0) return bytes.length - at > MAX_SIZE_LINE ? error('bad chunk size line') : { kind: 'more', used: at };
            // Chunk extensions (";name=value") carry nothing this reader needs.
            const line = bytes.toString('latin1', at, eol);
            const semi = line.indexOf(';');
            const sizeText = (semi < 0 ? line : line.slice(0, semi)).trim();
            if (!SIZE.test(sizeText)) return error('bad chunk size line');
            const size = parseInt(sizeText, 16);
            at = eol + 2;
            if (size === 0) {
              phase = 'trailer';
              break;
            }
            if (total + size > maxBody) return error(`body larger than ${maxBody} bytes`, true);
            total += size;
            left = size;
            phase = 'data';
            break;
          }
          case 'data': {
            const n = Math.min(left, bytes.length - at);
            if (n === 0) return { kind: 'more', used: at };
            data(n === bytes.length && at === 0 ? bytes : bytes.subarray(at, at + n));
            at += n;
            left -= n;
            if (left === 0) phase = 'crlf';
            break;
          }
          case 'crlf':
            if (bytes.length - at < 2) return { kind: 'more', used: at };
            if (bytes[at] !== 0x0d || bytes[at + 1] !== 0x0a) return error('chunk not followed by CRLF');
            at += 2;
            phase = 'size';
            break;
          case 'trailer': {
            // Trailer lines, then an empty line.
            const eol = bytes.indexOf('\r\n', at, 'latin1');
            if (eol < 0) return trailerBytes + bytes.length - at > maxTrailers ? error('chunk trailers too large') : { kind: 'more', used: at };
            trailerBytes += eol + 2 - at;
            if (trailerBytes > maxTrailers) return error('chunk trailers too large');
            if (eol === at) return { kind: 'done', used: at + 2 };
            at = eol + 2;
            break;
          }
        }
      }
    },
  };
}
