// The audit trail, against the built binary: what each line holds, what it
// must never hold, when allowed calls appear, the rollout flags, and that a
// log reader that is gone or stuck never stops the plugin from answering.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { MAX_FIELD_CHARS } from '../src/plugin/audit.ts';
import { BINARY, envelope, makeTempDir, post, startPlugin, waitFor, type PluginProcess } from './lib/plugin.ts';

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const HOST_USERNS_CREATE = JSON.stringify({ Image: 'busybox', HostConfig: { UsernsMode: 'host' } });

function decisions(p: PluginProcess): Record<string, unknown>[] {
  return p.records().filter((r) => 'decision' in r);
}

async function plugin(t: { after(fn: () => unknown): void }, args: string[] = []): Promise<PluginProcess> {
  const p = await startPlugin({ args });
  t.after(() => p.stop());
  return p;
}

test('a denial is one JSON line with every audit field', async (t) => {
  const p = await plugin(t);
  const uri = '/v1.41/containers/%63reate?name=web&platform=linux';
  const answer = await p.authz(envelope('POST', uri, HOST_USERNS_CREATE));
  assert.equal(answer.Allow, false);

  await waitFor(() => decisions(p).length === 1, 5_000, () => `no decision logged:\n${p.stderr()}`);
  const line = p.stderr().split('\n').find((l) => l.includes('"decision"'))!;
  const record = JSON.parse(line) as Record<string, unknown>;
  assert.match(String(record.time), RFC3339_UTC);
  assert.deepEqual(
    { ...record, time: '' },
    {
      time: '',
      level: 'warn',
      decision: 'deny',
      rule: 'userns-host',
      reason: answer.Msg,
      user: '',
      authMethod: '',
      method: 'POST',
      uri, // as received, still percent-encoded
      path: '/containers/create',
      apiVersion: '1.41',
      image: 'busybox',
      name: 'web',
    },
  );
});

test('secrets in headers, Env and the body never reach the log', async (t) => {
  const p = await plugin(t, ['--debug']);
  const secret = 'S3CR3T-6f1d2c';
  const body = JSON.stringify({
    Image: 'busybox',
    Env: [`PASSWORD=${secret}-env`],
    Cmd: ['sh', '-c', `echo ${secret}-cmd`],
    Labels: { token: `${secret}-label` },
    HostConfig: { UsernsMode: 'host' },
  });
  const headers = {
    'Content-Type': 'application/json',
    Authorization: `Bearer ${secret}-authorization`,
    'X-Registry-Auth': Buffer.from(`{"password":"${secret}-registry"}`).toString('base64'),
    Cookie: `session=${secret}-cookie`,
  };
  assert.equal((await p.authz(envelope('POST', '/v1.41/containers/create', body, headers))).Allow, false);
  // Allowed calls are logged under --debug: they must leak nothing either.
  const benign = body.replace('"UsernsMode":"host"', '"UsernsMode":""');
  assert.equal((await p.authz(envelope('POST', '/v1.41/containers/create', benign, headers))).Allow, true);
  assert.equal((await p.authz(envelope('POST', '/v1.41/images/create?fromImage=busybox', null, headers))).Allow, true);
  // Malformed JSON: the parse error must not quote the body.
  const broken = `{"Image":"busybox","Env":["PASSWORD=${secret}-broken"]`;
  assert.equal((await p.authz(envelope('POST', '/v1.41/containers/create', broken, headers))).Allow, false);

  await waitFor(() => decisions(p).length === 4, 5_000, () => `expected 4 decisions:\n${p.stderr()}`);
  assert.ok(!p.stderr().includes(secret), `a secret reached the log:\n${p.stderr()}`);
  assert.ok(!p.stderr().includes(Buffer.from(body).toString('base64').slice(0, 40)), 'the body reached the log');
  assert.deepEqual(
    decisions(p).map((r) => [r.decision, r.rule]),
    [['deny', 'userns-host'], ['allow', null], ['allow', null], ['deny', 'body-not-json']],
  );
});

test('startup line; allowed calls are logged only with --debug', async (t) => {
  const version = spawnSync(BINARY, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const quiet = await plugin(t, ['--deny', 'privileged']);
  const loud = await plugin(t, ['--debug']);

  const startup = quiet.records().find((r) => r.msg === 'userns-guard started');
  assert.ok(startup, quiet.stderr());
  assert.equal(startup.level, 'info');
  assert.match(String(startup.time), RFC3339_UTC);
  assert.equal(startup.version, version);
  assert.equal(startup.socket, quiet.socket);
  assert.deepEqual(startup.options, {
    allowPluginInstall: false,
    auditOnly: false,
    allowUsers: [],
    deny: ['privileged'],
    debug: false,
  });

  for (const p of [quiet, loud]) {
    assert.equal((await p.authz(envelope('GET', '/v1.41/containers/json'))).Allow, true);
    assert.equal((await p.authz(envelope('POST', '/v1.41/containers/create', '{"Image":"busybox"}'))).Allow, true);
    assert.equal((await p.authz(envelope('POST', '/v1.41/containers/create', HOST_USERNS_CREATE))).Allow, false);
  }
  await waitFor(() => decisions(loud).length === 3 && decisions(quiet).length === 1, 5_000, () => `${quiet.stderr()}\n${loud.stderr()}`);
  assert.deepEqual(decisions(quiet).map((r) => r.decision), ['deny']);
  assert.deepEqual(
    decisions(loud).map((r) => [r.decision, r.level, r.path]),
    [
      ['allow', 'debug', '/containers/json'],
      ['allow', 'debug', '/containers/create'],
      ['deny', 'warn', '/containers/create'],
    ],
  );
});

test('--audit-only warns at startup, allows everything and logs would-deny', async (t) => {
  const p = await plugin(t, ['--audit-only']);
  // The warning follows the startup line, in a write of its own: the pipe
  // may hand the two over in separate reads.
  const isWarning = (r: Record<string, unknown>) => r.level === 'warn' && String(r.msg).includes('audit-only');
  await waitFor(() => p.records().some(isWarning), 5_000, () => `no audit-only warning:\n${p.stderr()}`);
  assert.equal((p.records().find((r) => r.msg === 'userns-guard started')!.options as { auditOnly: boolean }).auditOnly, true);

  assert.equal((await p.authz(envelope('POST', '/v1.41/containers/create', HOST_USERNS_CREATE))).Allow, true);
  assert.equal((await p.authz(envelope('POST', '/v1.41/plugins/pull?remote=x'))).Allow, true);
  assert.equal((await p.authz(envelope('GET', '/v1.41/info'))).Allow, true);
  await waitFor(() => decisions(p).length >= 2, 5_000, () => p.stderr());
  assert.deepEqual(
    decisions(p).map((r) => [r.decision, r.rule]),
    [['would-deny', 'userns-host'], ['would-deny', 'plugin-install']],
  );
});

test('--allow-user exempts that TLS user only, and logs the rule it was exempt from', async (t) => {
  const p = await plugin(t, ['--allow-user', 'ci-deployer']);
  const create = (user: string) => envelope('POST', '/v1.41/containers/create', HOST_USERNS_CREATE, undefined, user);

  assert.equal((await p.authz(create('ci-deployer'))).Allow, true);
  assert.equal((await p.authz(envelope('POST', '/v1.41/plugins/pull?remote=x', null, {}, 'ci-deployer'))).Allow, true);
  assert.equal((await p.authz(create('someone-else'))).Allow, false);
  // The unix socket: no user at all. Never exempt.
  assert.equal((await p.authz(create(''))).Allow, false);
  // Case matters: certificate CNs are compared exactly.
  assert.equal((await p.authz(create('CI-DEPLOYER'))).Allow, false);

  await waitFor(() => decisions(p).length === 5, 5_000, () => p.stderr());
  const rows = decisions(p).map((r) => [r.decision, r.rule, r.user, r.authMethod]);
  assert.deepEqual(rows, [
    ['allow', 'userns-host', 'ci-deployer', 'TLS'],
    ['allow', 'plugin-install', 'ci-deployer', 'TLS'],
    ['deny', 'userns-host', 'someone-else', 'TLS'],
    ['deny', 'userns-host', '', ''],
    ['deny', 'userns-host', 'CI-DEPLOYER', 'TLS'],
  ]);
  assert.match(String(decisions(p)[0]!.reason), /exempt/);
});

// The plugin with its stderr on a pipe the test controls; `startPlugin`
// reads stderr, which is exactly what these tests must not do.
function spawnWithStderrPipe(t: { after(fn: () => unknown): void }) {
  const dir = makeTempDir();
  const socket = path.join(dir, 'plugin.sock');
  const child = spawn(BINARY, ['--socket', socket], {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { child, socket };
}

async function answersActivate(socket: string): Promise<boolean> {
  try {
    return (await post(socket, '/Plugin.Activate', '')).status === 200;
  } catch {
    return false;
  }
}

async function waitServing(socket: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await answersActivate(socket))) {
    if (Date.now() > deadline) throw new Error('plugin did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
}

// A denied call (no body visible) with an audit line of about 3.3 KB, the
// most a URI can make it once fields are clipped: the URI as received (800
// characters) and its name parameter decoded to 800 three-byte characters.
function bigDeniedCall(i: number): string {
  return JSON.stringify(envelope('POST', `/v1.41/containers/create?name=n${i}-${'%E2%82%AC'.repeat(900)}`, null));
}

// Sends `count` calls, `parallel` at a time over keep-alive connections, and
// returns the answers' Allow values.
async function callMany(socket: string, count: number, parallel: number, body: (i: number) => string): Promise<boolean[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: parallel });
  const answers: boolean[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const r = await post(socket, '/AuthZPlugin.AuthZReq', body(i), agent);
      answers[i] = JSON.parse(r.body).Allow;
    }
  };
  try {
    await Promise.all(Array.from({ length: parallel }, worker));
  } finally {
    agent.destroy();
  }
  return answers;
}

test('long caller-chosen fields are clipped so a line survives journald (48 KiB LineMax)', async (t) => {
  const p = await plugin(t);
  const uri = `/v1.41/containers/create?name=${'%01'.repeat(20_000)}&x=${'y'.repeat(100_000)}`;
  const image = '\\u0002'.repeat(50_000); // JSON's escape for U+0002
  const body = `{"Image":"${image}","HostConfig":{"UsernsMode":"host"}}`;
  assert.equal((await p.authz(envelope('POST', uri, body))).Allow, false);
  await waitFor(() => decisions(p).length === 1, 5_000, () => p.stderr());
  const line = p.stderr().split('\n').find((l) => l.includes('"decision"'))!;
  assert.ok(Buffer.byteLength(line) < 48 * 1024, `a ${Buffer.byteLength(line)}-byte line`);
  const record = JSON.parse(line) as Record<string, string>;
  assert.equal(record.rule, 'userns-host');
  assert.ok(record.uri!.startsWith(uri.slice(0, MAX_FIELD_CHARS)));
  assert.match(record.uri!, /\.\.\.\[\d+ more characters\]$/);
  assert.match(record.name!, /^\u0001+\.\.\.\[19200 more characters\]$/);
  assert.match(record.image!, /^\u0002+\.\.\.\[49200 more characters\]$/);
});

test('a closed stderr does not crash or block the plugin', async (t) => {
  const { child, socket } = spawnWithStderrPipe(t);
  let early = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (early += d));
  await waitFor(() => early.includes('userns-guard started'), 10_000, () => `plugin did not start: ${early}`);
  // Close the only read end: every later write gets EPIPE.
  child.stderr!.destroy();

  for (let i = 0; i < 300; i++) {
    const r = await post(socket, '/AuthZPlugin.AuthZReq', bigDeniedCall(i));
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).Allow, false);
  }
  assert.equal(child.exitCode, null, 'the plugin exited');
  assert.equal(child.signalCode, null, 'the plugin was killed by a signal');
});

test('a stalled log reader neither blocks answers nor grows memory without bound', async (t) => {
  const { child, socket } = spawnWithStderrPipe(t);
  // Nobody reads the pipe: it fills after 64 KiB, and then every line the
  // plugin writes has to wait in memory or be dropped.
  child.stderr!.pause();
  await waitServing(socket);

  const calls = 4_000; // about 13 MiB of audit lines, over three times the 4 MiB queue bound
  const started = Date.now();
  const answers = await callMany(socket, calls, 4, bigDeniedCall);
  assert.ok(answers.every((allow) => allow === false), 'a denied call was allowed');
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 60_000, `answers slowed to ${elapsed} ms for ${calls} calls`);

  // Once the reader catches up, the plugin says how many lines it dropped.
  let text = '';
  let lastData = Date.now();
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    text += d;
    lastData = Date.now();
  });
  child.stderr!.resume();
  await waitFor(() => text.length > 0 && Date.now() - lastData > 300, 10_000, () => 'the queued lines never arrived');
  await post(socket, '/AuthZPlugin.AuthZReq', bigDeniedCall(calls));
  await waitFor(() => text.includes(`n${calls}-`), 10_000, () => `the last denial never arrived (${text.length} bytes)`);

  const lines = text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const notes = lines.filter((l) => typeof l.dropped === 'number');
  const dropped = notes.reduce((sum, l) => sum + (l.dropped as number), 0);
  const logged = lines.filter((l) => l.decision === 'deny').length;
  t.diagnostic(`${calls} denials in ${elapsed} ms: ${logged} logged, ${dropped} dropped`);
  assert.ok(notes.length > 0 && dropped > 0, 'nothing was dropped: the queue is not bounded');
  assert.ok(notes.every((l) => l.level === 'warn'));
  assert.equal(logged + dropped, calls + 1, 'every denial is either logged or counted as dropped');
  // The bound is 4 MiB of queued lines, so at most that much (plus what the
  // pipe and node's read buffer hold) came through from the stalled stretch.
  const loggedBytes = lines.filter((l) => l.decision === 'deny').reduce((sum, l) => sum + Buffer.byteLength(JSON.stringify(l)) + 1, 0);
  assert.ok(loggedBytes < 5 * 1024 * 1024, `${loggedBytes} bytes of denials got through`);
});
