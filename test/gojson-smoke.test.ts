// Smoke test of the Go reference decoder (test/gojson): it must agree with
// what Docker Engine 20.10's decoding is known to do on a few tricky bodies.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { buildGoDecoder, goDecodeAll, goDecoderSkipReason } from './lib/gojson.ts';

const skip = goDecoderSkipReason() ?? false;

const HOST: [string, string | Buffer][] = [
  ['plain', '{"Image":"x","HostConfig":{"UsernsMode":"host"}}'],
  ['case-insensitive keys', '{"hostconfig":{"usernsmode":"host"}}'],
  ['escaped long s in key', '{"HostConfig":{"Usern\\u017fMode":"host"}}'],
  ['raw long s in key', '{"HostConfig":{"Usern\u017fMode":"host"}}'],
  ['duplicate HostConfig objects merge', '{"HostConfig":{"UsernsMode":"host"},"HostConfig":{"Privileged":false}}'],
  ['top-level deprecated field', '{"UsernsMode":"host"}'],
  ['top-level deprecated field, HostConfig null', '{"UsernsMode":"host","HostConfig":null}'],
  ['trailing garbage ignored', '{"HostConfig":{"UsernsMode":"host"}} trailing garbage'],
  ['null on a string is a no-op', '{"HostConfig":{"UsernsMode":"host","UsernsMode":null}}'],
  ['escaped value', '{"HostConfig":{"UsernsMode":"ho\\u0073t"}}'],
];

const NOT_HOST: [string, string | Buffer][] = [
  ['inner HostConfig wins over top level', '{"UsernsMode":"host","HostConfig":{}}'],
  ['value is case-sensitive', '{"HostConfig":{"UsernsMode":"HOST"}}'],
  ['inside Labels', '{"Labels":{"UsernsMode":"host"}}'],
  ['later HostConfig null drops it', '{"HostConfig":{"UsernsMode":"host"},"HostConfig":null}'],
];

const REJECTED: [string, string | Buffer][] = [
  ['UTF-8 BOM', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"HostConfig":{"UsernsMode":"host"}}')])],
  ['mixed-type duplicate', '{"UsernsMode":"host","UsernsMode":5}'],
  ['empty body', ''],
];

function bodies(cases: [string, string | Buffer][]): Buffer[] {
  return cases.map(([, body]) => (typeof body === 'string' ? Buffer.from(body, 'utf8') : body));
}

test('Go reference decoder agrees with the engine on known cases', { skip }, async () => {
  const binary = await buildGoDecoder();
  const all = [...HOST, ...NOT_HOST, ...REJECTED];
  const results = await goDecodeAll(binary, bodies(all));
  assert.equal(results.length, all.length);

  results.forEach((result, i) => {
    const [name] = all[i];
    if (i < HOST.length) {
      assert.equal(result.ok, true, name);
      assert.equal(result.usernsMode, 'host', name);
    } else if (i < HOST.length + NOT_HOST.length) {
      assert.equal(result.ok, true, name);
      assert.notEqual(result.usernsMode, 'host', name);
    } else {
      assert.equal(result.ok, false, name);
      assert.equal(typeof result.error, 'string', name);
    }
  });

  // Kelvin sign (U+212A) folds to k in keys: "Lin\u212As" is Links.
  const [kelvin] = await goDecodeAll(binary, [Buffer.from('{"HostConfig":{"Lin\u212as":["a:b"],"CapAdd":"SYS_ADMIN"}}')]);
  assert.equal(kelvin.ok, true);
  assert.deepEqual(kelvin.capAdd, ['SYS_ADMIN']); // CapAdd also takes a single string
  assert.equal(kelvin.networkMode, 'default');
  const [kelvinTyped] = await goDecodeAll(binary, [Buffer.from('{"HostConfig":{"Lin\u212as":5}}')]);
  assert.equal(kelvinTyped.ok, false);
});

test('Go reference decoder: start mode and output shape', { skip }, async () => {
  const binary = await buildGoDecoder();
  const body = Buffer.from(
    JSON.stringify({
      User: 'root',
      Memory: 5,
      HostConfig: {
        UsernsMode: 'host',
        Binds: ['/:/host'],
        Mounts: [{ Type: 'bind', Source: '/etc' }],
        Devices: [{ PathOnHost: '/dev/kmsg' }],
        DeviceCgroupRules: ['c 1:3 mr', 'a *:* rwm'],
      },
    }),
  );
  const [created] = await goDecodeAll(binary, [body]);
  assert.deepEqual(created, {
    ok: true,
    usernsMode: 'host',
    privileged: false,
    capAdd: [],
    securityOpt: [],
    user: 'root',
    pidMode: '',
    ipcMode: '',
    utsMode: '',
    networkMode: 'default',
    cgroupnsMode: '',
    devices: 1,
    deviceCgroupRules: 2,
    binds: ['/:/host'],
    mountSources: [{ type: 'bind', source: '/etc' }],
  });
  const [started, empty] = await goDecodeAll(binary, [body, Buffer.from('{"Image":"x"}')], 'start');
  assert.deepEqual(started, { ...created, user: '' }); // the start path discards Config
  assert.equal(empty.ok, true);
  assert.equal(empty.usernsMode, '');
  assert.equal(empty.networkMode, ''); // no HostConfig at all
});
