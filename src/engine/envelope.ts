// Reads an AuthZReq envelope into the few facts the policy works from. It
// fails closed: anything that is not a well-formed call yields an error, and
// the caller denies. An empty envelope matters most: the engine re-sends a
// call with an empty body when a plugin connection drops mid-call.

import { utf8Text } from './utf8Text.ts';
import type { AuthZRequest } from './wire.ts';

export interface Call {
  readonly user: string;
  readonly authMethod: string;
  readonly method: string;
  readonly uri: string;
  // The forwarded body, decoded; null when the engine did not forward one.
  readonly body: Buffer | null;
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

export function readEnvelope(raw: Buffer | string): EnvelopeResult {
  const text = typeof raw === 'string' ? raw : utf8Text(raw);
  if (text.trim() === '') return { ok: false, error: 'empty call envelope' };
  let env: unknown;
  try {
    env = JSON.parse(text);
  } catch {
    return { ok: false, error: 'call envelope is not JSON' };
  }
  if (typeof env !== 'object' || env === null || Array.isArray(env)) {
    return { ok: false, error: 'call envelope is not a JSON object' };
  }
  const e = env as AuthZRequest;
  const method = requiredString(e, 'RequestMethod');
  if (typeof method !== 'string') return method;
  const uri = requiredString(e, 'RequestUri');
  if (typeof uri !== 'string') return uri;
  let body: Buffer | null = null;
  if (e.RequestBody !== undefined && e.RequestBody !== null) {
    body = typeof e.RequestBody === 'string' ? decodeStdBase64(e.RequestBody) : null;
    if (body === null) return { ok: false, error: 'call envelope RequestBody is not base64' };
  }
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
      body: body !== null && body.length > 0 ? body : null,
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
