// The strict JSON reader the policy sees request bodies through: it must
// accept exactly what Go's encoding/json accepts for one value (minus any
// trailing data, which it refuses), keep duplicate keys in order, and match
// keys to field names the way Go does.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fieldValues, foldKey, isObject, lastScalar, MAX_VALUES, objectsUnder, parseGoJson, UNREAD, UNREAD_FIELDS, type JObject, type JValue } from '../src/engine/goJson.ts';

function parsed(text: string): JValue {
  const r = parseGoJson(text);
  assert.ok(r.ok, `expected ${JSON.stringify(text)} to parse: ${r.ok ? '' : r.error}`);
  return r.value;
}

function obj(text: string): JObject {
  const v = parsed(text);
  assert.ok(isObject(v), `${JSON.stringify(text)} is not an object`);
  return v;
}

function refused(text: string): string {
  const r = parseGoJson(text);
  assert.equal(r.ok, false, `expected ${JSON.stringify(text)} to be refused`);
  return r.ok ? '' : r.error;
}

test('exactly one JSON value, with JSON white space around it', () => {
  assert.deepEqual(parsed(' \t\r\n{"a":1}\n\t \r'), { kind: 'object', entries: [['a', 1]] });
  assert.deepEqual(parsed('[ 1 , 2 ]'), [1, 2]);
  assert.equal(parsed('"x"'), 'x');
  assert.equal(parsed(' null '), null);
  for (const text of ['', ' ', '\n\t']) assert.match(refused(text), /end of JSON/);
});

test('trailing data after the first value is refused', () => {
  for (const trail of ['x', '{}', '{"UsernsMode":"host"}', ',', '}', ']', '\u0000', '\u00a0', '//', 'null']) {
    assert.match(refused(`{"Image":"x"}${trail}`), /after the JSON value/, JSON.stringify(trail));
    assert.match(refused(`{"Image":"x"} \n${trail}`), /after the JSON value/, JSON.stringify(trail));
  }
  assert.match(refused('1 2'), /after the JSON value/);
});

test('white space JSON does not allow, and a BOM, are refused', () => {
  // Go refuses all of these: only space, tab, CR and LF are JSON white space.
  for (const lead of ['\ufeff', '\u00a0', '\f', '\v', '\u2028', '\u3000']) {
    refused(`${lead}{}`);
    refused(`{${lead}"a":1}`);
  }
  // A BOM arriving as bytes: Buffer decoding keeps it, so it is refused too.
  const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"HostConfig":{"UsernsMode":"host"}}')]);
  refused(bom.toString('utf8'));
});

test('control characters inside strings are refused; DEL and non-ASCII are fine', () => {
  for (let c = 0; c < 0x20; c++) {
    refused(`"a${String.fromCharCode(c)}b"`);
    refused(`{"Usern${String.fromCharCode(c)}sMode":"host"}`);
  }
  assert.equal(parsed('"a\u007fb"'), 'a\u007fb');
  assert.equal(parsed('"\u2028\u00e9\ud83d\ude00"'), '\u2028\u00e9\ud83d\ude00');
});

test('escapes: the eight short ones and \\uXXXX; anything else is refused', () => {
  assert.equal(parsed('"\\"\\\\\\/\\b\\f\\n\\r\\t"'), '"\\/\b\f\n\r\t');
  assert.equal(parsed('"\\u0041\\u00e9\\u00E9\\u017f"'), 'A\u00e9\u00e9\u017f');
  assert.equal(parsed('"ho\\u0073t"'), 'host');
  assert.equal(parsed('"\\ud83d\\ude00"'), '\ud83d\ude00');
  for (const bad of ['"\\x41"', '"\\U0041"', '"\\u41"', '"\\u004"', '"\\u00G1"', '"\\u{41}"', '"\\a"', '"\\0"', '"\\\'"', '"\\', '"\\u']) {
    assert.match(refused(bad), /escape|unterminated/, bad);
  }
  assert.match(refused('"abc'), /unterminated/);
  assert.match(refused('{"a'), /unterminated/);
});

// The reader finds a string's end by searching, and remembers where the next
// backslash and control character are: what lies in other strings, or
// between tokens, must not change how this one is read.
test('strings among escapes and control characters elsewhere read as JSON.parse reads them', () => {
  assert.deepEqual(parsed('["a\\nb","plain",\n"c"]'), ['a\nb', 'plain', 'c']);
  assert.deepEqual(parsed('["plain","x\\"y",\t"z"]'), ['plain', 'x"y', 'z']);
  assert.deepEqual(parsed('{"a":"1"\r\n,"b":"\\u0068ost"}'), { kind: 'object', entries: [['a', '1'], ['b', 'host']] });
  // The control character is in a later string: the earlier ones are fine,
  // the body is not.
  refused('["ok","ok","bad\u0001"]');
  refused('["ok",\n"bad\nstring"]');
  assert.match(refused('["ok\\' + 'x'.repeat(10)), /escape/);

  // Random arrays of short strings drawn from characters that matter here,
  // against JSON.parse: the same value, or both refuse.
  const pieces = ['a', 'b', '\\', '\\\\', '\\"', '\\n', '\\u0041', '\n', '\t', '\u0001', '\u00e9', '"', ' '];
  let seed = 12345;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let agreed = 0;
  for (let i = 0; i < 20000; i++) {
    const items: string[] = [];
    for (let k = 1 + next(4); k > 0; k--) {
      let str = '';
      for (let j = next(5); j > 0; j--) str += pieces[next(pieces.length)];
      items.push(`${next(3) === 0 ? '\n' : ''}"${str}"`);
    }
    const text = `[${items.join(',')}]`;
    let expected: unknown = undefined;
    try {
      expected = JSON.parse(text);
    } catch {
      // refused below
    }
    const r = parseGoJson(text);
    if (expected === undefined) assert.equal(r.ok, false, JSON.stringify(text));
    else {
      assert.ok(r.ok, `${JSON.stringify(text)}: ${r.ok ? '' : r.error}`);
      assert.deepEqual(r.value, expected, JSON.stringify(text));
      agreed++;
    }
  }
  assert.ok(agreed > 2000, `only ${agreed} well-formed samples`);
});

test('lone surrogates in keys become U+FFFD, as Go decodes them', () => {
  const keys = (text: string): string[] => obj(text).entries.map(([k]) => k);
  assert.deepEqual(keys('{"\\ud800":1}'), ['\ufffd']);
  assert.deepEqual(keys('{"\\udc00":1}'), ['\ufffd']);
  // A high surrogate followed by a non-surrogate escape: U+FFFD, then that rune.
  assert.deepEqual(keys('{"\\ud800\\u0073":1}'), ['\ufffds']);
  assert.deepEqual(keys('{"\\udc00\\ud800":1}'), ['\ufffd\ufffd']);
  assert.deepEqual(keys('{"\\ud83d\\ude00":1}'), ['\ud83d\ude00']);
  // So a surrogate escape can never stand in for a letter of a field name.
  assert.deepEqual(fieldValues(obj('{"U\\ud800sernsMode":"host","Usern\\udc00Mode":"host"}'), 'UsernsMode'), []);
});

test('deep nesting is refused without exhausting the stack', () => {
  for (const open of ['[', '{"a":']) {
    const r = parseGoJson(open.repeat(200_000));
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.error, /nested too deeply/);
  }
  // Ordinary depths are fine.
  assert.ok(parseGoJson(`${'['.repeat(500)}${']'.repeat(500)}`).ok);
  assert.ok(parseGoJson(`${'{"a":'.repeat(500)}1${'}'.repeat(500)}`).ok);
});

test('a body of more values than the reader keeps is refused, not built', () => {
  const arrays = (n: number) => `{"Image":"x","Labels":[${Array(n).fill('[]').join(',')}]}`;
  // The object, the image, the list: three values besides the n arrays.
  assert.ok(parseGoJson(arrays(MAX_VALUES - 3)).ok);
  const over = parseGoJson(arrays(MAX_VALUES - 2));
  assert.equal(over.ok, false);
  assert.match(over.ok ? '' : over.error, /more than 500000 JSON values/);
  // An ordinary large create (a 3.4 MiB Env) is far from the bound.
  const env = JSON.stringify({ Image: 'x', Env: Array.from({ length: 120_000 }, (_, i) => `K${i}=${'v'.repeat(20)}`) });
  assert.ok(parseGoJson(env).ok);
});

test('numbers follow the JSON grammar', () => {
  const good: Array<[string, number]> = [
    ['0', 0],
    ['-0', -0],
    ['7', 7],
    ['-12', -12],
    ['1.5', 1.5],
    ['-1.5e+10', -1.5e10],
    ['1E5', 1e5],
    ['1e-5', 1e-5],
    ['0.0', 0],
    ['123456789012345678901234567890', 123456789012345678901234567890],
  ];
  for (const [text, value] of good) {
    assert.equal(parsed(text), value, text);
    assert.deepEqual(parsed(`[${text}]`), [value], text);
  }
  for (const bad of ['01', '+1', '.5', '1.', '1e', '1e+', '-', '--1', '0x10', 'NaN', 'Infinity', '-Infinity', '1.5.5', '- 1', '1_000', '00']) {
    refused(bad);
    refused(`{"a":${bad}}`);
  }
});

test('literals and structure', () => {
  assert.deepEqual(parsed('[true,false,null]'), [true, false, null]);
  for (const bad of ['tru', 'nul', 'True', 'NULL', 'falsey', '{"a":1,}', '[1,]', '[,1]', '{,}', '{"a" 1}', '{a:1}', "{'a':1}", '{"a":1 "b":2}', '[1 2]', '{"a":1', '[', '{', '{"a":}', '{"a"}', '{1:2}', '{"a":1}}']) {
    refused(bad);
  }
});

test('duplicate keys are all kept, in document order', () => {
  const o = obj('{"a":1,"A":2,"a":3,"b":{"x":1},"a":null}');
  assert.deepEqual(o.entries, [
    ['a', 1],
    ['A', 2],
    ['a', 3],
    ['b', { kind: 'object', entries: [['x', 1]] }],
    ['a', null],
  ]);
});

test('foldKey: ASCII case and the two non-ASCII runes that fold onto ASCII letters', () => {
  assert.equal(foldKey('UsernsMode'), 'usernsmode');
  assert.equal(foldKey('USERNSMODE'), 'usernsmode');
  assert.equal(foldKey('Usern\u017fMode'), 'usernsmode'); // U+017F LATIN SMALL LETTER LONG S
  assert.equal(foldKey('Ho\u017ftConfig'), 'hostconfig');
  assert.equal(foldKey('Lin\u212as'), 'links'); // U+212A KELVIN SIGN
  assert.equal(foldKey('\u212a\u017f'), 'ks');
});

test('foldKey: no other non-ASCII rune folds onto ASCII', () => {
  // Each of these has a lower or upper case that is ASCII, or looks ASCII,
  // yet Go's simple folding never matches it to an ASCII field name.
  const names: Array<[string, string]> = [
    ['\u0130mage', 'image'], // dotted capital I: toLowerCase gives "i\u0307"
    ['\u0131mage', 'image'], // dotless small i: toUpperCase gives "I"
    ['U\u017f\u0065rn\u00dfMode', 'usersnssmode'],
    ['Hos\uff54Config', 'hostconfig'], // full-width t
    ['Ho\u0455tConfig', 'hostconfig'], // Cyrillic dze
    ['Usern\u0053\u0301Mode', 'usernsmode'], // combining accent
  ];
  for (const [key, ascii] of names) {
    assert.notEqual(foldKey(key), ascii, key);
    assert.ok(/[^\u0000-\u007f]/.test(foldKey(key)), `${key} folded to pure ASCII ${foldKey(key)}`);
  }
  assert.deepEqual(fieldValues(obj('{"\u0130mage":"a","\u0131mage":"b","IMAGE":"c"}'), 'Image'), ['c']);
  // Folding keeps the length in UTF-16 units (fieldValues relies on it).
  for (const key of ['Usern\u017fMode', '\u212aey', '\u0130\u0131\u00df']) assert.equal(foldKey(key).length, key.length);
});

test('fieldValues: every value under a key that folds to the field, in order', () => {
  const o = obj(
    '{"UsernsMode":"a","usernsmode":"b","Usern\\u017fMode":"c","USERNSMODE":null,"Usern\u017fMode":5,"UsernsModeX":"no","Labels":{"UsernsMode":"no"}}',
  );
  assert.deepEqual(fieldValues(o, 'UsernsMode'), ['a', 'b', 'c', null, 5]);
  assert.deepEqual(fieldValues(o, 'Missing'), []);
  // Escaped ASCII letters are the same key.
  assert.deepEqual(fieldValues(obj('{"\\u0055sern\\u0073Mode":"host"}'), 'UsernsMode'), ['host']);
});

test('lastScalar: the last non-null value, because null leaves a Go string alone', () => {
  assert.equal(lastScalar(obj('{"A":"x","a":null}'), 'A'), 'x');
  assert.equal(lastScalar(obj('{"a":"x","A":"y"}'), 'a'), 'y');
  assert.equal(lastScalar(obj('{"a":"x","a":5}'), 'a'), 5);
  assert.equal(lastScalar(obj('{"a":null}'), 'a'), undefined);
  assert.equal(lastScalar(obj('{}'), 'a'), undefined);
  assert.equal(lastScalar(obj('{"a":""}'), 'a'), '');
});

test('objectsUnder: every object under keys that fold to the field, skipping null and other types', () => {
  const o = obj('{"HostConfig":{"a":1},"hostconfig":null,"HOSTCONFIG":[1],"Ho\u017ftConfig":{"b":2},"HostConfig":"x","Other":{"c":3}}');
  assert.deepEqual(objectsUnder(o, 'HostConfig'), [
    { kind: 'object', entries: [['a', 1]] },
    { kind: 'object', entries: [['b', 2]] },
  ]);
  assert.deepEqual(objectsUnder(o, 'Missing'), []);
});

test('unread fields: checked exactly as when read, kept as UNREAD, and a rule asking for one fails', () => {
  // Random values of every JSON kind, malformed now and then, under Env
  // (in varied spellings) and beside it: with the fields unread, the body
  // is accepted or refused exactly as when it is read in full, with the
  // same error, and every other field reads the same.
  const pieces = ['[', ']', '{', '}', ',', ':', '"a"', '"\\n"', '"\\u00"', '"x\u0001"', '1', '-', '1e5', 'true', 'nul', 'null', ' ', '"k":'];
  let seed = 4242;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return Math.floor((seed / 0x80000000) * n);
  };
  const wellFormed = () => {
    const v: unknown[] = [];
    for (let k = next(5); k > 0; k--) v.push(next(3) === 0 ? { K: [next(9), 'v\n'] } : next(2) === 0 ? `E${next(99)}=\u00e9"` : [null, true]);
    return JSON.stringify(next(4) === 0 ? Object.fromEntries(v.map((x, i) => [`k${i}`, x])) : v);
  };
  let kept = 0;
  let refusedBoth = 0;
  for (let i = 0; i < 20000; i++) {
    let value = wellFormed();
    if (next(3) === 0) {
      const at = next(value.length + 1);
      value = value.slice(0, at) + pieces[next(pieces.length)] + value.slice(at + next(2));
    }
    const key = ['Env', 'ENV', 'env', 'Labels', 'Cmd', 'Entrypoint', 'Image'][next(7)]!;
    const text = `{"Image":"a","${key}":${value},"HostConfig":{"Binds":["/a:/b"]}}`;
    const full = parseGoJson(text);
    const part = parseGoJson(text, UNREAD_FIELDS);
    assert.equal(part.ok, full.ok, text);
    if (!full.ok || !part.ok) {
      assert.equal(part.ok ? '' : part.error, full.ok ? '' : full.error, text);
      refusedBoth++;
      continue;
    }
    assert.ok(isObject(full.value) && isObject(part.value));
    assert.deepEqual(objectsUnder(part.value, 'HostConfig'), objectsUnder(full.value, 'HostConfig'));
    const skipped = key !== 'Image' && /^\s*[[{]/.test(value);
    if (skipped) {
      assert.equal(part.value.entries[1]![1], UNREAD, text);
      assert.throws(() => fieldValues(part.value as JObject, key), /not kept/);
      kept++;
    } else {
      assert.deepEqual(part.value, full.value, text);
    }
  }
  assert.ok(kept > 5000 && refusedBoth > 1000, `${kept} skipped, ${refusedBoth} refused`);
  // The value bound counts what is skipped: the 4 MiB body of empty arrays
  // is refused either way.
  const over = `{"Image":"x","Labels":[${Array(MAX_VALUES - 2).fill('[]').join(',')}]}`;
  assert.equal(parseGoJson(over, UNREAD_FIELDS).ok, false);
  for (let c = 0; c < 0x20; c++) {
    assert.equal(parseGoJson(`{"Env":["ok","a${String.fromCharCode(c)}b"]}`, UNREAD_FIELDS).ok, false, `U+${c.toString(16)}`);
  }
  // An unread field is not an object to the rules.
  assert.equal(isObject(UNREAD), false);
});

test('a parse leaves no body text behind as the last match of a regular expression', () => {
  // A successful match keeps its subject alive until the next one
  // (RegExp.input); after a large body's parse that was the whole text, a
  // 1 MiB string outside V8's heap that idle hours never let go.
  const text = `{"Image":"x","Env":[${'"A=1",'.repeat(1000)}"B=2"],"N":12}`;
  assert.ok(parseGoJson(text, UNREAD_FIELDS).ok);
  const input = (RegExp as unknown as { input: string }).input;
  assert.notEqual(input, text);
  assert.ok(input.length < 100, `RegExp.input is ${input.length} characters long`);
});
