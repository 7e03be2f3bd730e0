// Reads an AuthZReq envelope into the few facts the policy works from. It
// fails closed: anything that is not a well-formed call yields an error, and
// the caller denies. An empty envelope matters most: the engine re-sends a
// call with an empty body when a plugin connection drops mid-call.

import { bytes, decodeStdBase64TextIn, indexAcross, indexOfAnyIn, totalLength, type Chunks } from './byteChunks.ts';
import { utf8Text } from './utf8Text.ts';
import type { AuthZRequest } from './wire.ts';

export interface Call {
  readonly user: string;
  readonly authMethod: string;
  readonly method: string;
  readonly uri: string;
  // The forwarded body, decoded from base64 and UTF-8; null when the engine
  // did not forward one.
  readonly body: string | null;
  readonly headers: Readonly<Record<string, string>>;
}

export type EnvelopeResult = { readonly ok: true; readonly call: Call } | { readonly ok: false; readonly error: string };

// Standard base64 as Go's encoding/json writes a []byte: the standard
// alphabet, padded to a multiple of 4. Checked by decoding rather than with
// /^[A-Za-z0-9+/]*={0,2}$/, which accepts exactly the same strings (fuzzed
// with 3M strings of the alphabet, '=', '-', '_', white space and non-ASCII)
// but costs 3x more: 1-2.5 ms for the body of a 1 MiB container create.
// Node's decoder skips or stops at any character outside the alphabet, and
// '=' anywhere but the end, so the byte count comes out short; only the URL
// alphabet ('-', '_') decodes in full and is looked for apart. The decoded
// bytes are kept, so the body is decoded once per call.
function decodeStdBase64(s: string): Buffer | null {
  if (s.length % 4 !== 0 || s.includes('-') || s.includes('_')) return null;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const bytes = Buffer.from(s, 'base64');
  return bytes.length === (s.length / 4) * 3 - pad ? bytes : null;
}

// The envelope as text, as one Buffer, or as the chunks the socket gave.
export type EnvelopeBytes = string | Buffer | Chunks;

export function readEnvelope(raw: EnvelopeBytes): EnvelopeResult {
  if (typeof raw === 'string') return fromText(raw);
  const chunks = Buffer.isBuffer(raw) ? [raw] : raw;
  // A call that came in one small chunk (nearly all) is cheaper to read whole.
  if (chunks.length === 1 && chunks[0]!.length < IN_PLACE_BYTES) return fromText(utf8Text(chunks[0]!));
  return readEnvelopeInPlace(chunks) ?? fromText(utf8Text(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
}

const IN_PLACE_BYTES = 64 << 10;

const BODY_KEY = Buffer.from('"RequestBody":"');
const QUOTE = Buffer.from('"');
const BACKSLASH = 0x5c;

// The engine's own envelope, read without decoding its body as text: Go's
// encoder writes the fields in struct order, RequestBody (nearly all of a
// large call) as one base64 string, which needs no escape. The rest of the
// envelope, with the body cut out, is small and goes through JSON.parse;
// the body is decoded from the chunks straight into bytes. Anything else
// (no such key, an escape inside the value, a second RequestBody) gets null
// and is read the general way.
export function readEnvelopeInPlace(chunks: Chunks): EnvelopeResult | null {
  const key = indexAcross(chunks, BODY_KEY);
  if (key < 0) return null;
  const start = key + BODY_KEY.length;
  const end = indexAcross(chunks, QUOTE, start);
  if (end < 0 || indexOfAnyIn(chunks, [BACKSLASH], start, end) >= 0) return null;
  const rest = utf8Text(bytes(chunks, 0, start)) + utf8Text(bytes(chunks, end, totalLength(chunks)));
  if (rest.indexOf('"RequestBody"') !== rest.lastIndexOf('"RequestBody"')) return null;
  let env: unknown;
  try {
    env = JSON.parse(rest);
  } catch {
    return null;
  }
  // Proves the cut was the top-level value.
  if (!isRecord(env) || env.RequestBody !== '') return null;
  return fromObject(env as AuthZRequest, () => decodeStdBase64TextIn(chunks, start, end));
}

function fromText(text: string): EnvelopeResult {
  if (text.trim() === '') return { ok: false, error: 'empty call envelope' };
  let env: unknown;
  try {
    env = JSON.parse(text);
  } catch {
    return { ok: false, error: 'call envelope is not JSON' };
  }
  if (!isRecord(env)) return { ok: false, error: 'call envelope is not a JSON object' };
  const e = env as AuthZRequest;
  return fromObject(e, () => {
    if (e.RequestBody === undefined || e.RequestBody === null) return '';
    const bytes = typeof e.RequestBody === 'string' ? decodeStdBase64(e.RequestBody) : null;
    return bytes === null ? null : utf8Text(bytes);
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// `readBody` gives the body's text ('' for none), or null when it is not
// base64; it runs after the method and URI are checked, so a call wrong in
// several ways is refused for the first of them, whichever path read it.
function fromObject(e: AuthZRequest, readBody: () => string | null): EnvelopeResult {
  const method = requiredString(e, 'RequestMethod');
  if (typeof method !== 'string') return method;
  const uri = requiredString(e, 'RequestUri');
  if (typeof uri !== 'string') return uri;
  const body = readBody();
  if (body === null) return { ok: false, error: 'call envelope RequestBody is not base64' };
  const headers = e.RequestHeaders;
  // Go's map[string]string: a value of any other type would not even decode
  // in the engine, so such an envelope was not written by it.
  if (headers !== undefined && headers !== null) {
    if (typeof headers !== 'object' || Array.isArray(headers)) {
      return { ok: false, error: 'call envelope RequestHeaders is not an object' };
    }
    const bad = Object.entries(headers).find(([, v]) => typeof v !== 'string');
    if (bad !== undefined) {
      return { ok: false, error: `call envelope RequestHeaders value of ${JSON.stringify(bad[0])} is not a string` };
    }
  }
  return {
    ok: true,
    call: {
      user: typeof e.User === 'string' ? e.User : '',
      authMethod: typeof e.UserAuthNMethod === 'string' ? e.UserAuthNMethod : '',
      method,
      uri,
      body: body.length > 0 ? body : null,
      headers: headers ?? {},
    },
  };
}

// The policy cannot route a call without these two; say which is wrong and
// how, so the Msg the Docker client sees points at the cause.
function requiredString(e: AuthZRequest, name: 'RequestMethod' | 'RequestUri'): string | EnvelopeResult {
  const v = e[name];
  if (v === undefined || v === null) return { ok: false, error: `call envelope lacks ${name}` };
  if (typeof v !== 'string') return { ok: false, error: `call envelope ${name} is not a string` };
  if (v === '') return { ok: false, error: `call envelope ${name} is empty` };
  return v;
}

// Header names arrive canonicalised by Go, but nothing obliges a proxy in
// between to keep them so; look them up case-insensitively.
export function header(call: Call, name: string): string | undefined {
  const direct = call.headers[name];
  if (typeof direct === 'string') return direct;
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(call.headers)) {
    if (k.toLowerCase() === want && typeof v === 'string') return v;
  }
  return undefined;
}
