// Turns the raw RequestUri the engine forwards into the route its router
// matched. The engine's mux matches the percent-decoded path after Go's
// url.ParseRequestURI has split off any scheme, authority and query, and
// accepts an optional /v<version> prefix with any [0-9.]+ version. Matching
// anything less decoded than that lets `/v1.41/containers/%63reate` through.

export interface Route {
  // Decoded path without the version prefix, e.g. /containers/create.
  readonly path: string;
  // The version from the /v<version> prefix; null when there was none, in
  // which case the engine uses its own current API version.
  readonly apiVersion: string | null;
  // The raw query string, without the '?'.
  readonly query: string;
}

export type RouteResult = { readonly ok: true; readonly route: Route } | { readonly ok: false; readonly error: string };

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const VERSIONED = /^\/v([0-9.]+)(\/[^]*)$/;
const HEX = /^[0-9A-Fa-f]{2}$/;

export function parseRequestUri(raw: string): RouteResult {
  // Go rejects control characters in the request target outright.
  if (/[\u0000-\u001f\u007f]/.test(raw)) return { ok: false, error: 'control character in RequestUri' };
  if (raw === '') return { ok: false, error: 'empty RequestUri' };

  let rest = raw;
  let hasScheme = false;
  const scheme = SCHEME.exec(rest);
  if (scheme) {
    hasScheme = true;
    rest = rest.slice(scheme[0].length);
  }

  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }

  if (hasScheme && rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    rest = slash >= 0 ? rest.slice(slash) : '';
  }
  if (!rest.startsWith('/')) {
    // An opaque URI or "*": the router matches no API route for it.
    return { ok: true, route: { path: rest, apiVersion: null, query } };
  }

  const decoded = percentDecode(rest);
  if (decoded === null) return { ok: false, error: 'invalid percent-encoding in RequestUri' };

  const v = VERSIONED.exec(decoded);
  const route = v ? { path: v[2]!, apiVersion: v[1]!, query } : { path: decoded, apiVersion: null, query };
  return { ok: true, route };
}

// Go's url.PathUnescape: every %XX becomes its byte, '+' stays. Bytes map to
// latin1 code units so each decoded byte stays one character, as in Go's
// byte-oriented route regexps.
function percentDecode(s: string): string | null {
  if (!s.includes('%')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const hex = s.slice(i + 1, i + 3);
      if (!HEX.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      for (const b of Buffer.from(s[i]!, 'utf8')) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('latin1');
}

// moby's versions.LessThan: dot-separated integers, missing or unparseable
// parts count as 0. Parts are compared as digit strings so huge numbers
// cannot overflow (Go clamps them, which orders the same way).
export function compareApiVersions(a: string, b: string): number {
  const pa = a.split('.');
  const pb = b.split('.');
  const n = Math.max(pa.length, pb.length);
  for (let i = 0; i < n; i++) {
    const x = versionPart(pa[i]);
    const y = versionPart(pb[i]);
    if (x.length !== y.length) return x.length < y.length ? -1 : 1;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

// The engine applies a start body as HostConfig only below API 1.24. With no
// /v prefix it uses its own, current version.
export function isApiBelow(route: Route, version: string): boolean {
  return route.apiVersion !== null && compareApiVersions(route.apiVersion, version) < 0;
}

function versionPart(p: string | undefined): string {
  if (p === undefined || !/^[0-9]+$/.test(p)) return '0';
  const trimmed = p.replace(/^0+(?=.)/, '');
  // strconv.Atoi clamps out-of-range values to the largest int64.
  const max = '9223372036854775807';
  if (trimmed.length > max.length || (trimmed.length === max.length && trimmed > max)) return max;
  return trimmed;
}


// Go's url.ParseQuery: '&'-separated pairs, '+' is a space, and a pair with a
// ';' or a bad escape is an error the engine refuses the build for.
export function queryValues(query: string, name: string): string[] {
  const out: string[] = [];
  for (const pair of query.split('&')) {
    if (pair === '' || pair.includes(';')) continue;
    const eq = pair.indexOf('=');
    const key = unescapeQuery(eq < 0 ? pair : pair.slice(0, eq));
    const value = unescapeQuery(eq < 0 ? '' : pair.slice(eq + 1));
    if (key === name && value !== null) out.push(value);
  }
  return out;
}

function unescapeQuery(s: string): string | null {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return null;
  }
}

