// RequestUri -> the route the engine's router matched. The engine's mux
// (gorilla/mux behind Go's net/http) matches the percent-decoded path of the
// request target with an optional /v<[0-9.]+> prefix, exactly and
// case-sensitively, after redirecting any path that path.Clean would change.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { compareApiVersions, isApiBelow, parseRequestUri, type Route } from '../src/engine/routes.ts';
import { matchRoute, type RouteName } from '../src/policy/routeTable.ts';

function route(raw: string): Route {
  const r = parseRequestUri(raw);
  assert.ok(r.ok, `${JSON.stringify(raw)} refused: ${r.ok ? '' : r.error}`);
  return r.route;
}

// The route table entry a POST to `path` matches.
const is = (name: RouteName, path: string): boolean => matchRoute('POST', path)?.spec.name === name;
const isCreate = (raw: string): boolean => is('container-create', route(raw).path);

test('the plain create route, with and without a version prefix', () => {
  assert.deepEqual(route('/v1.41/containers/create'), { path: '/containers/create', apiVersion: '1.41', query: '' });
  assert.deepEqual(route('/containers/create'), { path: '/containers/create', apiVersion: null, query: '' });
  assert.deepEqual(route('/v1.41.0/containers/create'), { path: '/containers/create', apiVersion: '1.41.0', query: '' });
  // Any [0-9.]+ is a version to the router, however odd.
  assert.deepEqual(route('/v./containers/create'), { path: '/containers/create', apiVersion: '.', query: '' });
  assert.deepEqual(route('/v1..2/containers/create').apiVersion, '1..2');
  assert.deepEqual(route('/v007/containers/create').apiVersion, '007');
});

test('absolute-form and other schemes: the path is what follows the authority', () => {
  for (const raw of [
    'http://docker/v1.41/containers/create',
    'HTTP://docker:2375/v1.41/containers/create',
    'https://user:pw@host/v1.41/containers/create',
    'http:///v1.41/containers/create',
    'foo:/v1.41/containers/create',
    'a+b.c-d://x/v1.41/containers/create',
  ]) {
    const r = route(raw);
    assert.equal(r.path, '/containers/create', raw);
    assert.equal(r.apiVersion, '1.41', raw);
  }
  // The authority ends at the first slash, even inside what looks like user info.
  assert.equal(route('http://a/b@host/v1.41/containers/create').path, '/b@host/v1.41/containers/create');
  // A query string begins before the authority ends: no path at all.
  assert.deepEqual(route('http://ho?st/v1.41/containers/create'), { path: '', apiVersion: null, query: 'st/v1.41/containers/create' });
  // Without a scheme, // is part of the path (and the router redirects it).
  assert.equal(route('//docker/v1.41/containers/create').path, '//docker/v1.41/containers/create');
  assert.equal(isCreate('//docker/v1.41/containers/create'), false);
});

test('opaque URIs and "*" match no route', () => {
  for (const raw of ['*', 'foo:v1.41/containers/create', 'mailto:x', '1http://h/v1.41/containers/create', 'v1.41/containers/create']) {
    assert.equal(isCreate(raw), false, raw);
  }
  assert.equal(route('foo:v1.41/containers/create').apiVersion, null);
});

test('the query string is split off before decoding, whatever it holds', () => {
  assert.deepEqual(route('/v1.41/containers/create?name=web'), { path: '/containers/create', apiVersion: '1.41', query: 'name=web' });
  assert.deepEqual(route('/v1.41/containers/create?x=/auth'), { path: '/containers/create', apiVersion: '1.41', query: 'x=/auth' });
  assert.deepEqual(route('/v1.41/containers/create?'), { path: '/containers/create', apiVersion: '1.41', query: '' });
  assert.equal(route('/v1.41/containers/create?a=%zz').path, '/containers/create'); // the router never decodes the query
  assert.equal(route('/v1.41/containers/create%3Fname=x').path, '/containers/create?name=x'); // an encoded ? is path
  assert.equal(isCreate('/v1.41/containers/create%3Fname=x'), false);
  assert.equal(route('/v1.41/containers/create#frag').path, '/containers/create#frag'); // no fragments in a request target
});

test('percent-encoding is decoded before matching', () => {
  for (const raw of [
    '/v1.41/containers/%63reate',
    '/v1.41/containers/%63%72%65%61%74%65',
    '/v1.41/containers%2Fcreate',
    '/v1.41/containers%2fcreate',
    '/v1.41%2Fcontainers%2Fcreate',
    '/%761.41/containers/create',
    '/v1%2e41/containers/create',
    'http://h/v1.41/containers/%63reate',
  ]) {
    assert.equal(isCreate(raw), true, raw);
  }
  assert.equal(route('/v1%2e41/containers/create').apiVersion, '1.41');
  // Only a path that starts with a real '/' is one: Go refuses this target.
  assert.equal(isCreate('%2Fv1.41/containers/create'), false);
  // Decoding is byte-wise: %0A becomes a newline, which {name:.*} does not match.
  assert.equal(route('/v1.23/containers/a%0Ab/start').path, '/containers/a\nb/start');
  assert.equal(is('container-start', route('/v1.23/containers/a%0Ab/start').path), false);
  assert.equal(is('container-start', route('/v1.23/containers/a%2Fb/start').path), true);
  // '+' is not a space in a path.
  assert.equal(route('/v1.41/containers/a+b/start').path, '/containers/a+b/start');
});

test('invalid percent escapes and control characters are refused', () => {
  for (const raw of ['/v1.41/containers/%zzcreate', '/v1.41/containers/create%', '/v1.41/containers/create%4', '/v1.41/%g1', '/v1.41/%%41']) {
    const r = parseRequestUri(raw);
    assert.equal(r.ok, false, raw);
    assert.match(r.ok ? '' : r.error, /percent-encoding/, raw);
  }
  for (const c of ['\u0000', '\n', '\r', '\t', '\u001f', '\u007f']) {
    const r = parseRequestUri(`/v1.41/containers/create${c}`);
    assert.equal(r.ok, false, JSON.stringify(c));
    assert.match(r.ok ? '' : r.error, /control character/);
  }
  assert.equal(parseRequestUri('').ok, false);
});

test('paths the router redirects or 404s do not match the create route', () => {
  // Each of these is answered with a redirect (path.Clean changes it) or a
  // 404 (strict, case-sensitive matching); the create handler never runs.
  for (const raw of [
    '//v1.41/containers/create',
    '/v1.41//containers/create',
    '/v1.41/containers//create',
    '/v1.41/./containers/create',
    '/v1.41/containers/./create',
    '/v1.41/containers/x/../create',
    '/v1.41/containers/%2e/create',
    '/v1.41/containers/%2E%2E/containers/create',
    '/v1.41/containers/create/',
    '/v1.41/containers/create/.',
    '/v1.41/Containers/create',
    '/v1.41/containers/Create',
    '/V1.41/containers/create',
    '/v1.41/containers/create ',
    '/ v1.41/containers/create',
    '/v1.41/v1.40/containers/create',
    '/v/containers/create',
    '/vx/containers/create',
    '/api/v1.41/containers/create',
    '/v1.41/containers/createx',
    '/v1.41/containers/create.json',
  ]) {
    assert.equal(isCreate(raw), false, raw);
  }
});

test('route shapes: names may hold slashes, never newlines', () => {
  const start = (p: string): boolean => is('container-start', route(p).path);
  assert.equal(start('/v1.23/containers/abc/start'), true);
  assert.equal(start('/v1.23/containers/a/b/start'), true);
  assert.equal(start('/v1.23/containers/create/start'), true); // a container named "create"
  assert.equal(start('/v1.23/containers//start'), true); // empty name: the handler fails it
  assert.equal(start('/v1.23/containers/abc/start/'), false);
  assert.equal(start('/v1.23/containers/abc/restart'), false);
  assert.equal(is('plugin-install', '/plugins/vieux/sshfs:latest/upgrade'), true);
  assert.equal(is('plugin-install', '/plugins/localhost:5000/x/y/set'), true);
  assert.equal(is('plugin-install', '/plugins/pull'), true);
  assert.equal(is('plugin-install', '/plugins/x/pull'), false);
  assert.equal(is('plugin-install', '/plugins/create'), true);
  assert.equal(is('exec-create', '/containers/a/b/exec'), true);
  assert.equal(is('volume-create', '/volumes/create'), true);
});

test('compareApiVersions: numeric, part by part, missing or bad parts are 0', () => {
  const cases: Array<[string, string, number]> = [
    ['1.41', '1.41', 0],
    ['1.23', '1.24', -1],
    ['1.24', '1.23', 1],
    ['1.23.9', '1.24', -1],
    ['1.24.0', '1.24', 0],
    ['1.24', '1.24.0.0', 0],
    ['1.24.1', '1.24', 1],
    ['01.023', '1.23', 0],
    ['1.023', '1.24', -1],
    ['1.9', '1.10', -1], // not a string comparison
    ['1.100', '1.24', 1],
    ['2', '1.99', 1],
    ['1', '1.24', -1],
    ['', '1.24', -1],
    ['.', '1.24', -1],
    ['1..24', '1.24', -1], // the empty middle part is 0: 1.0.24
    ['1.24.', '1.24', 0],
    ['.24', '1.24', -1],
    ['1.x', '1.0', 0],
    ['99999999999999999999999.0', '1.24', 1],
    ['1.99999999999999999999999', '1.24', 1],
    // Go clamps overflowing parts to the largest int64, so these tie.
    ['1.99999999999999999999999', '1.9223372036854775807', 0],
    ['1.9223372036854775806', '1.9223372036854775807', -1],
    ['1.00000000000000000000000000024', '1.24', 0],
  ];
  for (const [a, b, want] of cases) {
    const sign = (x: number): number => (x < 0 ? -1 : x > 0 ? 1 : 0);
    assert.equal(sign(compareApiVersions(a, b)), want, `${a} vs ${b}`);
    assert.equal(sign(compareApiVersions(b, a)), 0 - want || 0, `${b} vs ${a}`);
  }
});

test('isApiBelow: no version prefix means the engine current version, never old', () => {
  assert.equal(isApiBelow(route('/containers/x/start'), '1.24'), false);
  assert.equal(isApiBelow(route('http://h/containers/x/start'), '1.24'), false);
  assert.equal(isApiBelow(route('/v1.23/containers/x/start'), '1.24'), true);
  assert.equal(isApiBelow(route('/v1.12/containers/x/start'), '1.24'), true);
  assert.equal(isApiBelow(route('/v1.23.9/containers/x/start'), '1.24'), true);
  assert.equal(isApiBelow(route('/v./containers/x/start'), '1.24'), true);
  assert.equal(isApiBelow(route('/v1.24/containers/x/start'), '1.24'), false);
  assert.equal(isApiBelow(route('/v1.24.0/containers/x/start'), '1.24'), false);
  assert.equal(isApiBelow(route('/v1.41/containers/x/start'), '1.24'), false);
  assert.equal(isApiBelow(route('/v1%2e2/containers/x/start'), '1.24'), true);
});
