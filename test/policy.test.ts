// decide() over engine-shaped AuthZReq envelopes, table by table, for every
// class of issue 3: how the engine decodes bodies, which bodies it forwards,
// how its router matches URIs, the legacy start body, managed plugins, and
// the benign look-alikes that must keep working. Pure: no socket.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decide, DEFAULT_POLICY, type Decision, type PolicyOptions } from '../src/policy/decide.ts';
import type { RuleId } from '../src/policy/rules/types.ts';
import { ENGINE_BODY_FORWARD_LIMIT } from '../src/engine/wire.ts';
import { BENIGN_LOOKALIKES, CLI_CREATE_BODIES } from './lib/bodies.ts';
import { envelope } from './lib/plugin.ts';

interface Row {
  readonly name: string;
  readonly method?: string;
  readonly uri?: string;
  // The forwarded body; null when the engine forwarded none.
  readonly body?: string | Buffer | null;
  // Defaults: JSON with the body's Content-Length when there is a body, none otherwise.
  readonly headers?: Record<string, string>;
  readonly user?: string;
  readonly options?: PolicyOptions;
  // 'allow', or the rule that must deny.
  readonly expect: 'allow' | RuleId;
  readonly reason?: RegExp;
}

const CREATE = '/v1.41/containers/create';
const LEGACY_START = '/v1.23/containers/0123456789ab/start';

function jsonHeaders(body: string | Buffer): Record<string, string> {
  return { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) };
}

function run(row: Row): Decision {
  const body = row.body ?? null;
  const headers = row.headers ?? (body === null ? {} : jsonHeaders(body));
  const env = envelope(row.method ?? 'POST', row.uri ?? CREATE, body, headers, row.user ?? '');
  return decide(JSON.stringify(env), row.options ?? DEFAULT_POLICY);
}

function check(row: Row): Decision {
  const d = run(row);
  const label = `${row.name}: ${d.decision} ${d.rule ?? ''} ${d.reason}`;
  if (row.expect === 'allow') {
    assert.equal(d.allow, true, label);
    assert.equal(d.decision, 'allow', label);
    assert.equal(d.rule, null, label);
    assert.equal(d.reason, '', label);
  } else {
    assert.equal(d.allow, false, label);
    assert.equal(d.decision, 'deny', label);
    assert.equal(d.rule, row.expect, label);
    assertOneLineReason(d.reason, label);
    if (row.reason) assert.match(d.reason, row.reason, label);
  }
  assert.equal(d.exempt, false, label);
  return d;
}

// A refusal is one line that names what was refused and why.
function assertOneLineReason(reason: string, label: string): void {
  assert.ok(reason.length > 20 && reason.length < 400, `${label}: reason length ${reason.length}`);
  assert.doesNotMatch(reason, /[\r\n]/, `${label}: reason spans lines`);
  assert.match(reason, /\b(refused|not allowed)\b/, `${label}: reason says nothing was refused`);
  assert.match(reason, /\(.+\)|: /, `${label}: reason gives no why`);
}

function table(rows: readonly Row[]): void {
  const names = new Set<string>();
  for (const row of rows) {
    assert.ok(!names.has(row.name), `duplicate row name ${row.name}`);
    names.add(row.name);
    check(row);
  }
}

const HOST_BODY = '{"Image":"busybox","HostConfig":{"UsernsMode":"host"}}';
const IN_HOSTCONFIG = /^host user namespace is not allowed \(HostConfig\.UsernsMode=host\)$/;
const TOP_LEVEL = /^host user namespace is not allowed \(top-level UsernsMode=host\)$/;

test('create: key spellings Go folds onto HostConfig / UsernsMode, raw and \\u-escaped, at both levels', () => {
  const rows: Array<[string, string]> = [
    ['canonical', HOST_BODY],
    ['lower case', '{"hostconfig":{"usernsmode":"host"}}'],
    ['upper case', '{"HOSTCONFIG":{"USERNSMODE":"host"}}'],
    ['mixed case', '{"hOsTcOnFiG":{"uSeRnSmOdE":"host"}}'],
    ['raw long s, inner key', '{"HostConfig":{"Usern\u017fMode":"host"}}'],
    ['escaped long s, inner key', '{"HostConfig":{"Usern\\u017fMode":"host"}}'],
    ['escaped long s, upper-case hex', '{"HostConfig":{"U\\u017FernsMode":"host"}}'],
    ['raw long s, outer key', '{"Ho\u017ftConfig":{"UsernsMode":"host"}}'],
    ['escaped long s, outer key', '{"Ho\\u017ftConfig":{"UsernsMode":"host"}}'],
    ['long s at both levels', '{"Ho\u017ftConfig":{"U\\u017fern\u017fMode":"host"}}'],
    ['escaped ASCII letters', '{"\\u0048ost\\u0043onfig":{"\\u0055sern\\u0073\\u004dode":"host"}}'],
    ['every letter escaped', `{${JSON.stringify('HostConfig').replace(/[A-Za-z]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}:{"UsernsMode":"host"}}`],
    ['value escaped', '{"HostConfig":{"UsernsMode":"ho\\u0073t"}}'],
    ['value fully escaped', '{"HostConfig":{"UsernsMode":"\\u0068\\u006F\\u0073\\u0074"}}'],
    ['a Kelvin sign elsewhere does not hide it', '{"HostConfig":{"Lin\u212as":[],"UsernsMode":"host"}}'],
    ['invalid UTF-8 elsewhere does not hide it', '{"Image":"busy\\u00ffbox","HostConfig":{"UsernsMode":"host"}}'],
    ['white space everywhere', ' \r\n\t{ "HostConfig" :\n{\t"UsernsMode"\r\n: "host" } }\n'],
  ];
  table(rows.map(([name, body]) => ({ name, body, expect: 'userns-host', reason: IN_HOSTCONFIG })));
  // Raw invalid bytes around (not inside) the keys.
  check({
    name: 'raw invalid UTF-8 in a value',
    body: Buffer.concat([Buffer.from('{"Image":"busy'), Buffer.from([0xff, 0xc5]), Buffer.from('box","HostConfig":{"UsernsMode":"host"}}')]),
    expect: 'userns-host',
  });
});

test('create: duplicates, merged HostConfig objects, null', () => {
  table([
    { name: 'host, then empty', body: '{"HostConfig":{"UsernsMode":"host","UsernsMode":""}}', expect: 'userns-host', reason: IN_HOSTCONFIG },
    { name: 'empty, then host', body: '{"HostConfig":{"UsernsMode":"","usernsmode":"host"}}', expect: 'userns-host' },
    { name: 'host, then null (a no-op in Go)', body: '{"HostConfig":{"UsernsMode":"host","UsernsMode":null}}', expect: 'userns-host' },
    { name: 'host among many', body: '{"HostConfig":{"UsernsMode":"","UsernsMode":"private","USERNSMODE":"host","UsernsMode":""}}', expect: 'userns-host' },
    { name: 'two HostConfig objects merge: host first', body: '{"HostConfig":{"UsernsMode":"host"},"hostconfig":{"Privileged":false}}', expect: 'userns-host' },
    { name: 'two HostConfig objects merge: host second', body: '{"HostConfig":{"Privileged":false},"HOSTCONFIG":{"UsernsMode":"host"}}', expect: 'userns-host' },
    { name: 'HostConfig null between', body: '{"HostConfig":{},"HostConfig":null,"HostConfig":{"UsernsMode":"host"}}', expect: 'userns-host' },
    // Go ends with no HostConfig here; refusing a "host" candidate anyway is the rule.
    { name: 'host, then HostConfig null', body: '{"HostConfig":{"UsernsMode":"host"},"HostConfig":null}', expect: 'userns-host' },
    { name: 'HostConfig that is not an object is ignored', body: '{"HostConfig":"host","Image":"x"}', expect: 'allow' },
  ]);
});

test('create: the deprecated top-level UsernsMode', () => {
  table([
    { name: 'HostConfig absent', body: '{"Image":"busybox","UsernsMode":"host"}', expect: 'userns-host', reason: TOP_LEVEL },
    { name: 'HostConfig null', body: '{"Image":"busybox","UsernsMode":"host","HostConfig":null}', expect: 'userns-host', reason: TOP_LEVEL },
    { name: 'HostConfig null first', body: '{"HostConfig":null,"usernsmode":"host"}', expect: 'userns-host', reason: TOP_LEVEL },
    { name: 'long s, escaped', body: '{"Usern\\u017fMode":"host"}', expect: 'userns-host', reason: TOP_LEVEL },
    { name: 'with other top-level HostConfig fields', body: '{"Memory":0,"UsernsMode":"host","Privileged":false}', expect: 'userns-host' },
    // The engine would take the inner HostConfig; still a refused candidate.
    { name: 'beside a HostConfig object', body: '{"UsernsMode":"host","HostConfig":{}}', expect: 'userns-host', reason: TOP_LEVEL },
  ]);
});

test('create: only the exact string "host" selects the host user namespace', () => {
  const values = ['"HOST"', '"Host"', '" host"', '"host "', '"host\\u0000"', '"host\\n"', '"ho\\u017ft"', '"\\ufeffhost"', '""', 'null', '"private"', '"default"'];
  for (const v of values) {
    table([
      { name: `inner ${v}`, body: `{"Image":"busybox","HostConfig":{"UsernsMode":${v}}}`, expect: 'allow' },
      { name: `top-level ${v}`, body: `{"Image":"busybox","UsernsMode":${v}}`, expect: 'allow' },
    ]);
  }
  // Values of another type are a decode error in the engine, not a namespace.
  for (const v of ['["host"]', '{"host":"host"}', '1', 'true']) {
    check({ name: `typed ${v}`, body: `{"HostConfig":{"UsernsMode":${v}}}`, expect: 'allow' });
  }
});

test('create: keys that only look like the fields do not count', () => {
  table([
    { name: 'dotless i in HostConfig', body: '{"HostConf\u0131g":{"UsernsMode":"host"}}', expect: 'allow' },
    { name: 'dotted capital I in HostConfig', body: '{"HostConf\u0130g":{"UsernsMode":"host"}}', expect: 'allow' },
    { name: 'Kelvin sign for s', body: '{"HostConfig":{"Usern\u212aMode":"host"}}', expect: 'allow' },
    { name: 'sharp s', body: '{"HostConfig":{"Usern\u00dfMode":"host"}}', expect: 'allow' },
    { name: 'full-width s', body: '{"HostConfig":{"Usern\uff53Mode":"host"}}', expect: 'allow' },
    { name: 'zero-width space', body: '{"HostConfig":{"Userns\u200bMode":"host"}}', expect: 'allow' },
    { name: 'lone surrogate escape', body: '{"HostConfig":{"Usern\\ud800Mode":"host"}}', expect: 'allow' },
    { name: 'trailing space in key', body: '{"HostConfig":{"UsernsMode ":"host"}}', expect: 'allow' },
    { name: 'NUL in key', body: '{"HostConfig":{"UsernsMode\\u0000":"host"}}', expect: 'allow' },
  ]);
  // Go replaces an invalid UTF-8 byte with U+FFFD, which folds onto nothing.
  for (const bad of [[0xff], [0xc5], [0xc1, 0xb3]]) {
    check({
      name: `invalid bytes ${bad.join(',')} for the s`,
      body: Buffer.concat([Buffer.from('{"HostConfig":{"User'), Buffer.from(bad), Buffer.from('nsMode":"host"}}')]),
      expect: 'allow',
    });
  }
});

test('create: benign look-alikes and real CLI bodies are allowed', () => {
  table(BENIGN_LOOKALIKES.map(([name, body]) => ({ name, body, expect: 'allow' as const })));
  for (const cli of CLI_CREATE_BODIES) {
    const d = check({ name: cli.argv, uri: cli.uri, body: cli.body, expect: cli.hostUserns ? 'userns-host' : 'allow' });
    assert.equal(d.image, 'busybox', cli.argv);
  }
  // The labelled CLI body really carries the look-alikes.
  assert.ok(CLI_CREATE_BODIES.some((b) => !b.hostUserns && b.body.includes('"Labels":{"UsernsMode":"host"') && b.body.includes('"UsernsMode=host"')));
});

test('create: a 900 KiB create is read whole', () => {
  const big = (userns: string): string =>
    `{"Image":"busybox","Labels":{"big":"${'x'.repeat(900 * 1024)}"},"HostConfig":{"NetworkMode":"default","UsernsMode":"${userns}"}}`;
  assert.ok(Buffer.byteLength(big('host')) < ENGINE_BODY_FORWARD_LIMIT);
  check({ name: '900 KiB benign', body: big(''), expect: 'allow' });
  check({ name: '900 KiB with host at the end', body: big('host'), expect: 'userns-host' });
});

test('create: the body must be exactly one JSON object', () => {
  const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(HOST_BODY)]);
  table([
    { name: 'white space around is fine', body: ' \r\n\t{"Image":"busybox"}\n\t ', expect: 'allow' },
    { name: 'trailing garbage after a host body', body: `${HOST_BODY} trailing`, expect: 'body-not-json', reason: /not a single JSON object.*after the JSON value/ },
    { name: 'trailing host object after a benign one', body: '{"Image":"busybox"}{"HostConfig":{"UsernsMode":"host"}}', expect: 'body-not-json' },
    { name: 'trailing empty object', body: '{"Image":"busybox"} {}', expect: 'body-not-json' },
    { name: 'trailing NUL', body: '{"Image":"busybox"}\u0000', expect: 'body-not-json' },
    { name: 'BOM', body: bom, expect: 'body-not-json' },
    { name: 'truncated', body: '{"Image":"busybox","HostConfig":{', expect: 'body-not-json' },
    { name: 'trailing comma', body: '{"Image":"busybox",}', expect: 'body-not-json' },
    { name: 'single quotes', body: "{'HostConfig':{'UsernsMode':'host'}}", expect: 'body-not-json' },
    { name: 'array', body: '[{"HostConfig":{"UsernsMode":"host"}}]', expect: 'body-not-json', reason: /not an object/ },
    { name: 'null', body: 'null', expect: 'body-not-json' },
    { name: 'string', body: '"host"', expect: 'body-not-json' },
    { name: 'number', body: '42', expect: 'body-not-json' },
  ]);
});

test('create: a body the engine did not forward is refused, saying why', () => {
  const notForwarded = (name: string, headers: Record<string, string>, reason: RegExp, uri = CREATE): Row => ({
    name,
    uri,
    body: null,
    headers,
    expect: 'body-not-visible',
    reason,
  });
  table([
    notForwarded('text/plain', { 'Content-Type': 'text/plain', 'Content-Length': '60' }, /container create refused: .*not visible.*Content-Type application\/json/),
    notForwarded('no Content-Type', { 'Content-Length': '60' }, /Content-Type/),
    notForwarded('json-looking but another type', { 'Content-Type': 'application/jsonx', 'Content-Length': '60' }, /Content-Type/),
    notForwarded('over 1 MiB', { 'Content-Type': 'application/json', 'Content-Length': String(ENGINE_BODY_FORWARD_LIMIT) }, /over the 1048576 bytes/),
    notForwarded('far over 1 MiB', { 'Content-Type': 'application/json', 'Content-Length': '5000000' }, /5000000 bytes/),
    notForwarded('chunked: no Content-Length', { 'Content-Type': 'application/json' }, /Content-Length \(chunked\)/),
    notForwarded('URI ending /auth', { 'Content-Type': 'application/json', 'Content-Length': '60' }, /\/auth/, '/v1.41/containers/create?x=/auth'),
    notForwarded('no body at all', { 'Content-Type': 'application/json', 'Content-Length': '0' }, /no body/),
    notForwarded('no headers at all', {}, /Content-Type/),
    notForwarded('forwardable but absent', { 'Content-Type': 'application/json', 'Content-Length': '60' }, /did not forward/),
    notForwarded('json with parameters, absent', { 'Content-Type': 'Application/JSON; charset=utf-8', 'Content-Length': '60' }, /did not forward/),
  ]);
  // A parameterised JSON type is forwarded, and then judged by its content.
  const utf8 = (body: string): Record<string, string> => ({ 'Content-Type': 'Application/JSON; charset=utf-8', 'Content-Length': String(body.length) });
  check({ name: 'Application/JSON; charset=utf-8 benign', body: '{"Image":"busybox"}', headers: utf8('{"Image":"busybox"}'), expect: 'allow' });
  check({ name: 'Application/JSON; charset=utf-8 host', body: HOST_BODY, headers: utf8(HOST_BODY), expect: 'userns-host' });
  // Header names may arrive in any case.
  check({ name: 'lower-case header names', body: null, headers: { 'content-type': 'application/json', 'content-length': '5000000' }, expect: 'body-not-visible', reason: /5000000 bytes/ });
});

test('create: every URI the router sends to the create handler', () => {
  const uris = [
    CREATE,
    '/containers/create',
    '/v1.41.0/containers/create',
    '/v1.41/containers/%63reate',
    '/v1.41/containers/%63%72%65%61%74%65',
    '/v1.41/containers%2Fcreate',
    '/v1.41/containers%2fcreate',
    '/v1%2e41/containers/create',
    '/v1.41/containers/create?name=web',
    '/v1.41/containers/create?',
    'http://docker/v1.41/containers/create',
    'HTTP://docker:2375/v1.41/containers/create?name=x',
    'foo:/v1.41/containers/create',
    'http:///containers/create',
    '/v1.12/containers/create',
    '/v1.24/containers/create',
    '/v99.0/containers/create',
  ];
  table(uris.map((uri) => ({ name: uri, uri, body: HOST_BODY, expect: 'userns-host' as const })));
});

test('create: URIs the router redirects or 404s are not the create route', () => {
  const uris = [
    '//v1.41/containers/create',
    '/v1.41//containers/create',
    '/v1.41/containers/./create',
    '/v1.41/x/../containers/create',
    '/v1.41/containers/%2e/create',
    '/v1.41/containers/create/',
    '/v1.41/Containers/create',
    '/v1.41/containers/CREATE',
    '/V1.41/containers/create',
    '/v1.41/containers/create%3Fname=x',
    '*',
    'foo:v1.41/containers/create',
  ];
  table(uris.map((uri) => ({ name: uri, uri, body: HOST_BODY, expect: 'allow' as const })));
});

test('malformed URIs and envelopes are refused as bad-envelope', () => {
  table([
    { name: 'invalid percent escape', uri: '/v1.41/containers/%zzcreate', body: HOST_BODY, expect: 'bad-envelope', reason: /^request refused: .*RequestUri.*percent-encoding/ },
    { name: 'truncated percent escape', uri: '/v1.41/containers/create%', body: HOST_BODY, expect: 'bad-envelope' },
    { name: 'control character', uri: '/v1.41/containers/create\n', body: HOST_BODY, expect: 'bad-envelope', reason: /control character/ },
  ]);
  const raws: Array<[string, string]> = [
    ['empty', ''],
    ['blank', ' \n'],
    ['not JSON', 'not json'],
    ['array', '[]'],
    ['no RequestMethod', JSON.stringify({ RequestUri: CREATE })],
    ['empty RequestMethod', JSON.stringify({ RequestMethod: '', RequestUri: CREATE })],
    ['no RequestUri', JSON.stringify({ RequestMethod: 'POST' })],
    ['RequestUri not a string', JSON.stringify({ RequestMethod: 'POST', RequestUri: 5 })],
    ['RequestBody not base64', JSON.stringify({ RequestMethod: 'POST', RequestUri: CREATE, RequestBody: 'not base64!' })],
    ['RequestBody not a string', JSON.stringify({ RequestMethod: 'POST', RequestUri: CREATE, RequestBody: [1, 2] })],
    ['RequestHeaders an array', JSON.stringify({ RequestMethod: 'POST', RequestUri: CREATE, RequestHeaders: [] })],
  ];
  for (const [name, raw] of raws) {
    for (const input of [raw, Buffer.from(raw)]) {
      const d = decide(input, DEFAULT_POLICY);
      assert.equal(d.allow, false, name);
      assert.equal(d.decision, 'deny', name);
      assert.equal(d.rule, 'bad-envelope', name);
      assertOneLineReason(d.reason, name);
      assert.match(d.reason, /^request refused: .*call envelope/, name);
    }
  }
  // Fields the engine may leave null are fine.
  const minimal = decide(JSON.stringify({ User: null, RequestMethod: 'GET', RequestUri: '/_ping', RequestBody: null, RequestHeaders: null }), DEFAULT_POLICY);
  assert.equal(minimal.decision, 'allow');
});

test('legacy start below API 1.24: a forwarded body gets the create check', () => {
  table([
    { name: 'top-level UsernsMode', uri: LEGACY_START, body: '{"UsernsMode":"host"}', expect: 'userns-host', reason: TOP_LEVEL },
    { name: 'folded top-level key', uri: LEGACY_START, body: '{"usern\u017fmode":"host"}', expect: 'userns-host' },
    { name: 'HostConfig wrapper', uri: LEGACY_START, body: '{"HostConfig":{"UsernsMode":"host"}}', expect: 'userns-host', reason: IN_HOSTCONFIG },
    { name: 'escaped value', uri: LEGACY_START, body: '{"UsernsMode":"ho\\u0073t","Binds":[]}', expect: 'userns-host' },
    { name: 'trailing data', uri: LEGACY_START, body: '{"Privileged":false} {"UsernsMode":"host"}', expect: 'legacy-start-body', reason: /^legacy start refused: API 1\.23 .*not a single JSON value/ },
    { name: 'garbage', uri: LEGACY_START, body: 'UsernsMode=host', expect: 'legacy-start-body' },
    { name: 'benign HostConfig', uri: LEGACY_START, body: '{"Binds":["/tmp:/tmp"],"Privileged":false,"UsernsMode":""}', expect: 'allow' },
    { name: 'HOST', uri: LEGACY_START, body: '{"UsernsMode":"HOST"}', expect: 'allow' },
    // Not an object: no HostConfig comes out of it (the engine fails the call).
    { name: 'array', uri: LEGACY_START, body: '[{"UsernsMode":"host"}]', expect: 'allow' },
    { name: 'null', uri: LEGACY_START, body: 'null', expect: 'allow' },
  ]);
});

test('legacy start below API 1.24: a body that was not forwarded', () => {
  const json = (length?: string): Record<string, string> => ({
    'Content-Type': 'application/json',
    ...(length === undefined ? {} : { 'Content-Length': length }),
  });
  table([
    { name: 'over the forward limit', uri: LEGACY_START, body: null, headers: json('2000000'), expect: 'legacy-start-body', reason: /^legacy start refused: API 1\.23 applies a start body as HostConfig.*not visible/ },
    { name: 'chunked (no Content-Length)', uri: LEGACY_START, body: null, headers: json(), expect: 'legacy-start-body', reason: /chunked/ },
    { name: 'no headers at all', uri: LEGACY_START, body: null, headers: {}, expect: 'legacy-start-body' },
    { name: '8 bytes', uri: LEGACY_START, body: null, headers: json('8'), expect: 'legacy-start-body' },
    { name: 'text/plain 100 bytes', uri: LEGACY_START, body: null, headers: { 'Content-Type': 'text/plain', 'Content-Length': '100' }, expect: 'legacy-start-body' },
    // The engine ignores a start body of 7 bytes or less.
    { name: '7 bytes', uri: LEGACY_START, body: null, headers: json('7'), expect: 'allow' },
    { name: '1 byte', uri: LEGACY_START, body: null, headers: json('1'), expect: 'allow' },
    { name: 'Content-Length: 0', uri: LEGACY_START, body: null, headers: { 'Content-Length': '0' }, expect: 'allow' },
  ]);
});

test('start at and above API 1.24, or with no version, is left to the engine', () => {
  // The engine refuses a start body from 1.24 on (bodyOnStartError).
  for (const uri of ['/v1.24/containers/x/start', '/v1.24.0/containers/x/start', '/v1.41/containers/x/start', '/containers/x/start', 'http://h/containers/x/start']) {
    table([
      { name: `${uri} host body`, uri, body: '{"UsernsMode":"host"}', expect: 'allow' },
      { name: `${uri} chunked`, uri, body: null, headers: { 'Content-Type': 'application/json' }, expect: 'allow' },
      { name: `${uri} garbage`, uri, body: 'garbage!', expect: 'allow' },
    ]);
  }
});

test('legacy start: every version below 1.24 and every route spelling', () => {
  const uris = [
    '/v1.12/containers/x/start',
    '/v1.23.9/containers/x/start',
    '/v01.023/containers/x/start',
    '/v1.2/containers/x/start',
    '/v1/containers/x/start',
    '/v./containers/x/start',
    '/v1%2e23/containers/x/start',
    '/v1.23/containers/x%2Fstart',
    '/v1.23/containers/x/%73tart',
    '/v1.23/containers/a/b/start',
    '/v1.23/containers/create/start',
    '/v1.23/containers/x/start?detachKeys=ctrl-x',
    'http://h/v1.23/containers/x/start',
  ];
  table(uris.map((uri) => ({ name: uri, uri, body: '{"UsernsMode":"host"}', expect: 'userns-host' as const })));
});

test('old API versions used legitimately keep working', () => {
  const benign = '{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"default"}}';
  table([
    { name: 'create via /v1.24', uri: '/v1.24/containers/create', body: benign, expect: 'allow' },
    { name: 'create via /v1.12', uri: '/v1.12/containers/create?name=old', body: benign, expect: 'allow' },
    { name: 'start via /v1.23 without a body', uri: LEGACY_START, body: null, headers: { 'Content-Length': '0' }, expect: 'allow' },
    { name: 'start via /v1.23 with an empty object', uri: LEGACY_START, body: '{}', expect: 'allow' },
    { name: 'start via /v1.23 with an old-style HostConfig', uri: LEGACY_START, body: '{"Binds":["/tmp:/tmp"],"PortBindings":{},"NetworkMode":"default"}', expect: 'allow' },
    { name: 'start via /v1.24', uri: '/v1.24/containers/x/start', body: null, headers: { 'Content-Length': '0' }, expect: 'allow' },
  ]);
});

test('plugin installs are refused; managing installed plugins is not', () => {
  const install = [
    '/v1.41/plugins/pull?remote=vieux/sshfs:latest&name=sshfs',
    '/plugins/pull?remote=x',
    '/v1.41/plugins/create?name=evil',
    '/v1.41/plugins/vieux/sshfs:latest/upgrade?remote=vieux/sshfs:next',
    '/v1.41/plugins/localhost:5000/org/name:tag/upgrade',
    '/v1.41/plugins/vieux/sshfs/set',
    '/v1.41/plugins/%70ull',
    '/v1.41/plugins%2Fpull',
    '/v1.41/plugins/x/%73et',
    'http://h/v1.41/plugins/pull',
    '/v1.12/plugins/pull',
  ];
  table(
    install.map((uri) => ({
      name: `install ${uri}`,
      uri,
      body: uri.includes('/set') ? '["DEBUG=1"]' : null,
      headers: uri.includes('/create') ? { 'Content-Type': 'application/x-tar', 'Content-Length': '10240' } : undefined,
      expect: 'plugin-install' as const,
      reason: /^installing or reconfiguring managed plugins is not allowed: .*host user namespace.*--allow-plugin-install/,
    })),
  );
  const manage: Array<[string, string]> = [
    ['POST', '/v1.41/plugins/vieux/sshfs:latest/enable?timeout=0'],
    ['POST', '/v1.41/plugins/vieux/sshfs:latest/disable'],
    ['GET', '/v1.41/plugins'],
    ['GET', '/v1.41/plugins/vieux/sshfs:latest/json'],
    ['GET', '/v1.41/plugins/privileges?remote=vieux/sshfs'],
    ['DELETE', '/v1.41/plugins/vieux/sshfs:latest?force=1'],
    ['GET', '/v1.41/plugins/pull'],
  ];
  table(manage.map(([method, uri]) => ({ name: `${method} ${uri}`, method, uri, expect: 'allow' as const })));
  // --allow-plugin-install lifts exactly this rule.
  const allowInstall = { ...DEFAULT_POLICY, allowPluginInstall: true };
  table(install.map((uri) => ({ name: `allowed install ${uri}`, uri, body: null, options: allowInstall, expect: 'allow' as const })));
  check({ name: 'host create with --allow-plugin-install', body: HOST_BODY, options: allowInstall, expect: 'userns-host' });
});

test('swarm services with the plugin runtime count as plugin installs', () => {
  const service = (taskTemplate: string): string => `{"Name":"s","TaskTemplate":${taskTemplate},"Mode":{"Global":{}}}`;
  const pluginRuntime = service('{"Runtime":"plugin","PluginSpec":{"Name":"evil","Remote":"evil/plugin:latest"}}');
  table([
    { name: 'service create, plugin runtime', uri: '/v1.41/services/create', body: pluginRuntime, expect: 'plugin-install', reason: /swarm service with the plugin runtime/ },
    { name: 'service update, plugin runtime', uri: '/v1.41/services/abc/update?version=3', body: pluginRuntime, expect: 'plugin-install' },
    { name: 'folded keys', uri: '/v1.41/services/create', body: service('{"runtime":"plugin"}').replace('TaskTemplate', 'ta\u017fktemplate'), expect: 'plugin-install' },
    { name: 'PluginSpec alone', uri: '/v1.41/services/create', body: service('{"PluginSpec":{"Name":"x"}}'), expect: 'plugin-install' },
    { name: 'unreadable spec', uri: '/v1.41/services/create', body: null, headers: { 'Content-Type': 'application/json' }, expect: 'plugin-install', reason: /cannot read/ },
    { name: 'container service', uri: '/v1.41/services/create', body: service('{"ContainerSpec":{"Image":"busybox"}}'), expect: 'allow' },
    { name: 'explicit container runtime', uri: '/v1.41/services/create', body: service('{"Runtime":"container","ContainerSpec":{"Image":"busybox"}}'), expect: 'allow' },
    { name: 'plugin runtime allowed by --allow-plugin-install', uri: '/v1.41/services/create', body: pluginRuntime, options: { ...DEFAULT_POLICY, allowPluginInstall: true }, expect: 'allow' },
  ]);
});

test('everything else passes without a look at the body', () => {
  const rows: Array<[string, string, string | null]> = [
    ['GET', '/_ping', null],
    ['HEAD', '/_ping', null],
    ['GET', '/v1.41/containers/json?all=1', null],
    ['GET', '/v1.41/info', null],
    ['GET', '/v1.41/containers/create', HOST_BODY],
    ['PUT', '/v1.41/containers/create', HOST_BODY],
    ['DELETE', '/v1.41/containers/abc?force=1&v=1', null],
    ['DELETE', '/v1.41/images/busybox', null],
    ['POST', '/v1.41/containers/abc/stop', null],
    ['POST', '/v1.41/containers/abc/exec', '{"Cmd":["sh"],"Privileged":true}'],
    ['POST', '/v1.41/containers/abc/update', '{"UsernsMode":"host"}'],
    ['POST', '/v1.41/volumes/create', '{"Name":"v","Labels":{"UsernsMode":"host"}}'],
    ['POST', '/v1.41/networks/create', '{"Name":"host","Driver":"bridge"}'],
    ['POST', '/v1.41/build?t=x', null],
    ['POST', '/v1.41/containers/abc/start', 'garbage'],
  ];
  table(rows.map(([method, uri, body]) => ({ name: `${method} ${uri}`, method, uri, body, expect: 'allow' as const })));
});

test('decision fields: call, route and image are reported', () => {
  const d = check({ name: 'host create', uri: '/v1.41/containers/%63reate?name=x', body: HOST_BODY, expect: 'userns-host' });
  assert.equal(d.call?.method, 'POST');
  assert.equal(d.call?.uri, '/v1.41/containers/%63reate?name=x');
  assert.deepEqual(d.route, { path: '/containers/create', apiVersion: '1.41', query: 'name=x' });
  assert.equal(d.image, 'busybox');
  const g = check({ name: 'ping', method: 'GET', uri: '/_ping', expect: 'allow' });
  assert.equal(g.image, null);
  assert.deepEqual(g.route, { path: '/_ping', apiVersion: null, query: '' });
  const bad = decide('', DEFAULT_POLICY);
  assert.equal(bad.call, null);
  assert.equal(bad.route, null);
});

test('--audit-only: would-deny, and the call goes through', () => {
  const audit = { ...DEFAULT_POLICY, auditOnly: true };
  const rows: Array<[string, Row]> = [
    ['userns-host', { name: 'host create', body: HOST_BODY, expect: 'userns-host' }],
    ['body-not-visible', { name: 'chunked create', body: null, headers: { 'Content-Type': 'application/json' }, expect: 'body-not-visible' }],
    ['body-not-json', { name: 'trailing data', body: `${HOST_BODY}x`, expect: 'body-not-json' }],
    ['legacy-start-body', { name: 'legacy start', uri: LEGACY_START, body: null, headers: {}, expect: 'legacy-start-body' }],
    ['plugin-install', { name: 'plugin pull', uri: '/v1.41/plugins/pull', expect: 'plugin-install' }],
    ['bad-envelope', { name: 'bad URI', uri: '/%zz', expect: 'bad-envelope' }],
  ];
  for (const [rule, row] of rows) {
    const denied = run(row);
    assert.equal(denied.decision, 'deny', row.name);
    const d = run({ ...row, options: audit });
    assert.equal(d.allow, true, row.name);
    assert.equal(d.decision, 'would-deny', row.name);
    assert.equal(d.rule, rule, row.name);
    assert.equal(d.reason, denied.reason, row.name);
    assert.equal(d.exempt, false, row.name);
  }
  const fine = run({ name: 'benign', body: '{"Image":"busybox"}', options: audit, expect: 'allow' });
  assert.equal(fine.decision, 'allow');
  assert.equal(fine.rule, null);
  const bad = decide('not json', audit);
  assert.equal(bad.decision, 'would-deny');
  assert.equal(bad.allow, true);
});

test('--allow-user exempts only a named, non-empty User', () => {
  const opts = { ...DEFAULT_POLICY, allowUsers: new Set(['alice', '']) };
  const exempt = run({ name: 'alice', body: HOST_BODY, user: 'alice', options: opts, expect: 'allow' });
  assert.equal(exempt.allow, true);
  assert.equal(exempt.decision, 'allow');
  assert.equal(exempt.exempt, true);
  assert.equal(exempt.rule, 'userns-host'); // the audit trail still says what was waived
  assert.match(exempt.reason, IN_HOSTCONFIG);

  const plugin = run({ name: 'alice plugin', uri: '/v1.41/plugins/pull', user: 'alice', options: opts, expect: 'allow' });
  assert.equal(plugin.exempt, true);
  assert.equal(plugin.rule, 'plugin-install');

  // Calls on the unix socket carry no User: an empty User is never exempt,
  // even if '' somehow ended up in the set.
  for (const user of ['', 'bob', 'Alice', 'alice ', ' alice']) {
    const d = run({ name: `user ${JSON.stringify(user)}`, body: HOST_BODY, user, options: opts, expect: 'userns-host' });
    assert.equal(d.allow, false, user);
    assert.equal(d.decision, 'deny', user);
    assert.equal(d.exempt, false, user);
  }
  const benign = run({ name: 'alice benign', body: '{"Image":"busybox"}', user: 'alice', options: opts, expect: 'allow' });
  assert.equal(benign.exempt, false);
  assert.equal(benign.rule, null);
  // Audit-only and an exemption together: the exemption wins, no would-deny.
  const both = run({ name: 'both', body: HOST_BODY, user: 'alice', options: { ...opts, auditOnly: true }, expect: 'allow' });
  assert.equal(both.decision, 'allow');
  assert.equal(both.exempt, true);
});
