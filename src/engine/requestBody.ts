// What the plugin can know about a request's body. The engine forwards a body
// only when it is JSON, non-empty, not chunked and under its size limit, and
// runs the handler either way, so "no body" never means "empty body".

import { header, type Call } from './envelope.ts';
import { isObject, parseGoJson, UNREAD_FIELDS, type JObject } from './goJson.ts';
import { ENGINE_BODY_FORWARD_LIMIT } from './wire.ts';

export type BodyResult =
  | { readonly kind: 'object'; readonly object: JObject }
  | { readonly kind: 'not-visible'; readonly why: string }
  // Not one well-formed JSON value.
  | { readonly kind: 'not-json'; readonly why: string }
  // Well-formed JSON, but not an object: no Go struct decodes from it.
  | { readonly kind: 'not-object'; readonly why: string };

// Several rules may read one call's body (a legacy start: its own rule, then
// the hardening rules); it is parsed once.
const bodies = new WeakMap<Call, BodyResult>();

export function readJsonBody(call: Call): BodyResult {
  let result = bodies.get(call);
  if (result === undefined) {
    result = parseBody(call);
    bodies.set(call, result);
  }
  return result;
}

function parseBody(call: Call): BodyResult {
  if (call.body === null) return { kind: 'not-visible', why: whyNotForwarded(call) };
  const parsed = parseGoJson(call.body, UNREAD_FIELDS);
  if (!parsed.ok) return { kind: 'not-json', why: parsed.error };
  if (!isObject(parsed.value)) return { kind: 'not-object', why: 'the JSON value is not an object' };
  return { kind: 'object', object: parsed.value };
}

// The engine's reasons for not forwarding a body, most specific first, so a
// refusal tells the caller what to change.
export function whyNotForwarded(call: Call): string {
  const type = header(call, 'Content-Type');
  if (type === undefined || mediaType(type) !== 'application/json') {
    return 'the engine forwards bodies only with Content-Type application/json';
  }
  if (call.uri.endsWith('/auth')) return 'the engine forwards no body when the request URI ends in /auth';
  const length = contentLength(call);
  if (length === null) return 'the body was sent without a Content-Length (chunked), which the engine may not forward';
  if (length === 0) return 'the request has no body';
  if (length >= ENGINE_BODY_FORWARD_LIMIT) {
    return `the body of ${length} bytes is over the ${ENGINE_BODY_FORWARD_LIMIT} bytes the engine forwards to plugins`;
  }
  return 'the engine did not forward the body';
}

// Go's mime.ParseMediaType lower-cases the type and drops parameters.
export function mediaType(value: string): string {
  return value.split(';', 1)[0]!.trim().toLowerCase();
}

// The request's Content-Length, or null when the header is missing or not a
// plain decimal number (Go drops the header for chunked requests).
export function contentLength(call: Call): number | null {
  const v = header(call, 'Content-Length');
  if (v === undefined || !/^[0-9]{1,15}$/.test(v.trim())) return null;
  return Number(v.trim());
}
