// Reads request bodies the way the engine's Go encoding/json sees them.
//
// JSON.parse cannot be trusted for this: it keeps only the last of two equal
// keys and compares keys exactly, while Go matches struct fields
// case-insensitively (with Unicode simple folding) and lets every duplicate
// key act on the struct in turn. So objects keep all their entries in order,
// and field look-ups fold keys the way Go does.

export type JValue = null | boolean | number | string | JValue[] | JObject | JUnread;

export interface JObject {
  readonly kind: 'object';
  readonly entries: ReadonlyArray<readonly [key: string, value: JValue]>;
}

// A value that was checked but not kept (see parseGoJson's `unread`).
export interface JUnread {
  readonly kind: 'unread';
}

export const UNREAD: JUnread = Object.freeze({ kind: 'unread' });

export type ParseResult =
  | { readonly ok: true; readonly value: JValue }
  | { readonly ok: false; readonly error: string };

// Go's scanner refuses deeper nesting too; no create body comes close.
const MAX_DEPTH = 1000;
// The tree costs some 60 bytes per value: a 4 MiB body of empty arrays (which
// newer engines forward) would take over 80 MiB of heap, and a few at once the
// plugin's whole memory limit. No docker command sends a tenth of this many.
export const MAX_VALUES = 500_000;

export function isObject(v: JValue | undefined): v is JObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && v.kind === 'object';
}

// Go compares a key with a field name by Unicode simple case folding. The only
// non-ASCII runes that fold onto ASCII letters are U+017F (long s, folds to s)
// and U+212A (Kelvin sign, folds to k), so folding those two and lower-casing
// ASCII yields the same equivalence for ASCII field names.
export function foldKey(key: string): string {
  let ascii = true;
  for (let i = 0; i < key.length; i++) {
    if (key.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  const lower = key.toLowerCase();
  if (ascii) return lower;
  let out = '';
  for (const ch of key) {
    if (ch === '\u017f') out += 's';
    else if (ch === '\u212a') out += 'k';
    else if (ch.charCodeAt(0) < 0x80) out += ch.toLowerCase();
    else out += ch;
  }
  return out;
}

// Every value stored under a key that Go would decode into the field `name`,
// in document order. Callers decide between "any of them" and "the last one".
export function fieldValues(obj: JObject, name: string): JValue[] {
  const want = name.toLowerCase();
  const out: JValue[] = [];
  for (const [key, value] of obj.entries) {
    // Folding keeps UTF-16 length, so the length test is a cheap pre-filter.
    if (key.length === want.length && foldKey(key) === want) {
      // A rule asking for a field the reader skipped must not see "absent".
      if (value === UNREAD) throw new Error(`the request body's ${name} field was not kept (goJson.ts, UNREAD_FIELDS)`);
      out.push(value);
    }
  }
  return out;
}

// The value Go ends with for a scalar field: the last non-null one, because a
// JSON null leaves a Go string or bool untouched.
export function lastScalar(obj: JObject, name: string): JValue | undefined {
  const values = fieldValues(obj, name);
  for (let i = values.length - 1; i >= 0; i--) {
    if (values[i] !== null) return values[i];
  }
  return undefined;
}

// The objects under every key folding to `name`: Go decodes each of them into
// the same struct, so together they make up the field.
export function objectsUnder(obj: JObject, name: string): JObject[] {
  return fieldValues(obj, name).filter(isObject);
}

// Fields of a request body that no rule reads and that make up most of a
// large one: a 1 MiB create is nearly all Env. Their arrays and objects are
// still checked in full (syntax, depth, the value bound) but not built,
// which takes the parse of such a body from ~3 to ~1 ms and leaves no tree
// of ten thousand strings to collect. Folded, as Go matches them.
export const UNREAD_FIELDS: ReadonlySet<string> = new Set(['env', 'cmd', 'entrypoint', 'labels']);

// Strictly one JSON value, optionally surrounded by JSON white space. An
// array or object under a key in `unread` (folded) is checked and stored as
// UNREAD.
export function parseGoJson(text: string, unread: ReadonlySet<string> | null = null): ParseResult {
  const reader = new Reader(text, unread);
  try {
    reader.skipSpace();
    const value = reader.value(0);
    reader.skipSpace();
    if (reader.pos !== text.length) {
      return { ok: false, error: `unexpected data after the JSON value at offset ${reader.pos}` };
    }
    return { ok: true, value };
  } catch (err) {
    if (err instanceof SyntaxError) return { ok: false, error: err.message };
    throw err;
  } finally {
    forgetLastMatch();
  }
}

// A successful match keeps its subject alive (RegExp.input, in V8 the
// context's last-match info) until the next one. After a large body's parse
// that subject is the body's text, a 1 MiB string malloc'd outside V8's heap:
// in idle hours nothing replaced it, and it pinned the top of malloc's heap
// with 10-20 MiB of freed memory under it (found in a heap snapshot).
const EMPTY = /^/;
function forgetLastMatch(): void {
  EMPTY.exec('');
}

const STRING_RUN = /[^"\\\u0000-\u001f]*/y;
// The 32 control characters, each searched for on its own: the engine's
// indexOf of one character runs at memory speed, where a regular expression
// of the class [\u0000-\u001f] took 8 instructions a character, half of the
// parse of a 1 MiB create.
const CONTROLS = Array.from({ length: 0x20 }, (_, c) => String.fromCharCode(c));
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

// A plain recursive-descent reader; the depth bound keeps hostile nesting from
// exhausting the stack.
class Reader {
  pos = 0;
  values = 0;
  readonly text: string;
  readonly unread: ReadonlySet<string> | null;
  constructor(text: string, unread: ReadonlySet<string> | null) {
    this.text = text;
    this.unread = unread;
  }

  fail(what: string): never {
    throw new SyntaxError(`${what} at offset ${this.pos}`);
  }

  skipSpace(): void {
    const t = this.text;
    let p = this.pos;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.pos = p;
  }

  value(depth: number): JValue {
    if (depth > MAX_DEPTH) this.fail('JSON nested too deeply');
    if (++this.values > MAX_VALUES) this.fail(`it holds more than ${MAX_VALUES} JSON values, more than userns-guard reads,`);
    const c = this.text[this.pos];
    switch (c) {
      case '{':
        return this.object(depth + 1);
      case '[':
        return this.array(depth + 1);
      case '"':
        return this.string();
      default:
        return this.scalar(c);
    }
  }

  // value(), checking the same things in the same order, keeping nothing.
  skip(depth: number): void {
    if (depth > MAX_DEPTH) this.fail('JSON nested too deeply');
    if (++this.values > MAX_VALUES) this.fail(`it holds more than ${MAX_VALUES} JSON values, more than userns-guard reads,`);
    const c = this.text[this.pos];
    if (c === '{') this.skipObject(depth + 1);
    else if (c === '[') this.skipArray(depth + 1);
    else if (c === '"') this.skipString();
    else this.scalar(c);
  }

  scalar(c: string | undefined): JValue {
    switch (c) {
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.fail(c === undefined ? 'unexpected end of JSON' : 'invalid character');
    }
  }

  literal<T extends JValue>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.fail('invalid literal');
    this.pos += word.length;
    return value;
  }

  number(): number {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m || m[0] === '-' || m[0].length === 0) this.fail('invalid number');
    this.pos += m[0].length;
    return Number(m[0]);
  }

  // Where the next backslash and the next control character are, at or after
  // the last place asked about; each character's position is searched for
  // again only once passed. They only move forward, so each search reads
  // the text once in all.
  private backslashAt = -1;
  private controlAt = -1;
  private readonly controlsAt: number[] = CONTROLS.map(() => -1);

  private nextSpecial(from: number): number {
    if (this.backslashAt < from) {
      const i = this.text.indexOf('\\', from);
      this.backslashAt = i < 0 ? Infinity : i;
    }
    if (this.controlAt < from) {
      const at = this.controlsAt;
      let first = Infinity;
      for (let c = 0; c < at.length; c++) {
        if (at[c]! < from) {
          const i = this.text.indexOf(CONTROLS[c]!, from);
          at[c] = i < 0 ? Infinity : i;
        }
        if (at[c]! < first) first = at[c]!;
      }
      this.controlAt = first;
    }
    return Math.min(this.backslashAt, this.controlAt);
  }

  skipString(): void {
    const start = this.pos + 1;
    const end = this.text.indexOf('"', start);
    if (end >= 0 && end < this.nextSpecial(start)) this.pos = end + 1;
    else this.string();
  }

  string(): string {
    const t = this.text;
    const start = this.pos + 1;
    // Most strings hold no escape: their end is found by the engine's own
    // search (a plain loop over the characters costs several times more)
    // and they are taken as one slice.
    const end = t.indexOf('"', start);
    if (end >= 0 && end < this.nextSpecial(start)) {
      this.pos = end + 1;
      return t.slice(start, end);
    }
    let p = start;
    let out = '';
    for (;;) {
      STRING_RUN.lastIndex = p;
      const run = STRING_RUN.exec(t);
      const len = run ? run[0].length : 0;
      if (len > 0) {
        out += run![0];
        p += len;
      }
      const c = t[p];
      if (c === '"') {
        this.pos = p + 1;
        return out;
      }
      if (c === '\\') {
        const e = t[p + 1];
        if (e === 'u') {
          const hex = t.slice(p + 2, p + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
            this.pos = p;
            this.fail('invalid \\u escape');
          }
          out += String.fromCharCode(parseInt(hex, 16));
          p += 6;
        } else if (e !== undefined && e in ESCAPES) {
          out += ESCAPES[e];
          p += 2;
        } else {
          this.pos = p;
          this.fail('invalid escape');
        }
        continue;
      }
      this.pos = p;
      this.fail(c === undefined ? 'unterminated string' : 'control character in string');
    }
  }

  array(depth: number): JValue[] {
    this.pos++;
    const out: JValue[] = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipSpace();
      out.push(this.value(depth));
      this.skipSpace();
      const c = this.text[this.pos++];
      if (c === ']') return out;
      if (c !== ',') {
        this.pos--;
        this.fail("expected ',' or ']'");
      }
    }
  }

  skipArray(depth: number): void {
    const t = this.text;
    this.pos++;
    this.skipSpace();
    if (t.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return;
    }
    for (;;) {
      this.skipSpace();
      // An Env entry: a string without escapes, found and passed in place.
      const start = this.pos + 1;
      const end = t.charCodeAt(this.pos) === 0x22 ? t.indexOf('"', start) : -1;
      if (end >= 0 && end < this.nextSpecial(start) && depth <= MAX_DEPTH && this.values < MAX_VALUES) {
        this.values++;
        this.pos = end + 1;
      } else {
        this.skip(depth);
      }
      this.skipSpace();
      const c = t.charCodeAt(this.pos++);
      if (c === 0x5d) return;
      if (c !== 0x2c) {
        this.pos--;
        this.fail("expected ',' or ']'");
      }
    }
  }

  skipObject(depth: number): void {
    this.pos++;
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return;
    }
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] !== '"') this.fail('expected a string key');
      this.skipString();
      this.skipSpace();
      if (this.text[this.pos] !== ':') this.fail("expected ':'");
      this.pos++;
      this.skipSpace();
      this.skip(depth);
      this.skipSpace();
      const c = this.text[this.pos++];
      if (c === '}') return;
      if (c !== ',') {
        this.pos--;
        this.fail("expected ',' or '}'");
      }
    }
  }

  object(depth: number): JObject {
    this.pos++;
    const entries: Array<readonly [string, JValue]> = [];
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return { kind: 'object', entries };
    }
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] !== '"') this.fail('expected a string key');
      const key = toGoString(this.string());
      this.skipSpace();
      if (this.text[this.pos] !== ':') this.fail("expected ':'");
      this.pos++;
      this.skipSpace();
      const c0 = this.text[this.pos];
      if ((c0 === '[' || c0 === '{') && this.unread !== null && key.length <= 10 && this.unread.has(foldKey(key))) {
        this.skip(depth);
        entries.push([key, UNREAD]);
      } else {
        entries.push([key, this.value(depth)]);
      }
      this.skipSpace();
      const c = this.text[this.pos++];
      if (c === '}') return { kind: 'object', entries };
      if (c !== ',') {
        this.pos--;
        this.fail("expected ',' or '}'");
      }
    }
  }
}

// Go turns lone surrogates from \u escapes into U+FFFD; neither form can fold
// onto an ASCII field name, but doing the same keeps comparisons honest.
function toGoString(s: string): string {
  return s.isWellFormed() ? s : s.toWellFormed();
}
