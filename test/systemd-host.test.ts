// A real host, booted with systemd as PID 1 (test/lib/systemdHost.ts), on
// which the built binary is installed and operated the way README.md tells
// an operator to: install, the printed systemctl commands, doctor, the
// journal, SIGKILL under load, a reboot, --audit-only through systemctl
// edit, and uninstall. Each step checks its outcome; a step that fails skips
// the ones that depend on it.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BINARY, ROOT } from './lib/plugin.ts';
import { skipUnless } from './lib/prereq.ts';
import { bootHost, ensureRootfs, importRootfs, sleep, startOuterEngine, systemdHostSkipReason, type Host } from './lib/systemdHost.ts';

const PLUGIN_REFUSAL = 'authorization denied by plugin userns-guard';
const USERNS_REFUSAL = `${PLUGIN_REFUSAL}: host user namespace is not allowed (HostConfig.UsernsMode=host)`;
const UNIT = '/etc/systemd/system/userns-guard.service';
const PROBE_UNIT = 'ug-sandbox-probe.service';
const PROBE_SCRIPT = path.join(ROOT, 'test', 'lib', 'sandboxProbe.cjs');

test('systemd as PID 1: a real host installs, runs, reboots and uninstalls userns-guard as the README says', { timeout: 20 * 60_000 }, async (t) => {
  const missing = systemdHostSkipReason() ?? (fs.existsSync(BINARY) ? null : `needs ${BINARY} (npm run build)`);
  if (skipUnless(t, missing)) return;
  const began = Date.now();
  const figures: string[] = [];
  // Printed together at the end, whatever failed.
  const note = (line: string) => figures.push(line);

  const rootfs = await ensureRootfs((line) => t.diagnostic(line));
  note(rootfs.builtMs === null ? `root file system: cached ${rootfs.file}` : `root file system: built ${rootfs.file} in ${seconds(rootfs.builtMs)}`);
  const engine = await startOuterEngine();
  t.after(() => engine.stop());
  const importStart = Date.now();
  const image = await importRootfs(engine, rootfs.file);
  note(`outer engine: imported the root file system in ${seconds(Date.now() - importStart)}`);
  const host = await bootHost(engine, image);

  // A step that fails skips every later one but the independent ones.
  let broken: string | null = null;
  const step = (name: string, fn: (st: TestContext) => Promise<void>, opts: { independent?: boolean } = {}) =>
    t.test(name, async (st) => {
      if (broken !== null) {
        st.skip(`an earlier step failed: ${broken}`);
        return;
      }
      try {
        await fn(st);
      } catch (err) {
        if (!opts.independent) broken = name;
        throw err;
      }
    });

  await step('boot: systemctl is-system-running says running, and docker answers', async () => {
    const state = await host.booted();
    assert.equal(state, 'running', await host.ok('systemctl --failed --no-legend --no-pager || true'));
    const ms = await firstDockerAnswer(host);
    note(`first boot (docker.io as packaged, no plugin yet): first answered docker command ${seconds(ms)} after the host started`);
  });

  let installOut = '';
  await step('install: copy the binary to the host and run ./userns-guard install', async () => {
    await host.copyIn(BINARY, '/root/userns-guard');
    installOut = await host.ok('cd /root && ./userns-guard install');
    for (const line of [
      'created /usr/local/sbin/userns-guard (copy of /root/userns-guard), mode 0755',
      'created /etc/systemd/system/docker.service.d/userns-guard.conf (systemd unit)',
      'created /etc/systemd/system/userns-guard.service (systemd unit)',
      'created /etc/systemd/system/userns-guard.socket (systemd unit)',
    ]) {
      assert.ok(installOut.includes(line), `missing "${line}" in:\n${installOut}`);
    }
    assert.match(installOut, /^updated \/etc\/subuid \(add dockremap:\d+:65536\)$/m);
    assert.match(installOut, /"userns-remap": "default"/);
    // The engine is not touched: it still runs without the plugin.
    assert.equal((await host.ok('docker info --format "{{.Plugins.Authorization}}"')).trim(), '[]');
  });

  await step('the printed commands: daemon-reload, enable --now the socket, restart docker, doctor all ok', async () => {
    const printed = remainingSteps(installOut, 'Remaining steps');
    assert.deepEqual(printed, [
      'systemctl daemon-reload',
      'systemctl enable --now userns-guard.socket',
      'systemctl restart docker',
      '/usr/local/sbin/userns-guard doctor',
    ]);
    for (const command of printed.slice(0, -1)) await host.ok(command);
    assert.match(await host.ok('ls -l /run/docker/plugins/userns-guard.sock'), /^srw------- 1 root root /);
    assert.equal((await host.ok('systemctl is-enabled userns-guard.socket')).trim(), 'enabled');
    const doctor = await host.sh(printed.at(-1)!);
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    const lines = doctor.stdout.trim().split('\n');
    const summary = lines.at(-1)!;
    const m = /^(\d+) checks: (\d+) ok, 0 warn, 0 FAIL$/.exec(summary);
    assert.ok(m && m[1] === m[2], summary);
    assert.deepEqual(lines.slice(0, -2).filter((l) => !l.startsWith('ok ')), []);
    assert.equal((await host.ok('systemctl is-active userns-guard.service')).trim(), 'active');
  });

  let subuidStart = '';
  await step('a container runs remapped, and root in it cannot write the host', async () => {
    await loadBusybox(host);
    subuidStart = /^dockremap:(\d+):65536$/m.exec(await host.ok('cat /etc/subuid'))![1]!;
    const map = (await host.ok('docker run --rm busybox cat /proc/self/uid_map')).trim().split(/\s+/);
    assert.deepEqual(map, ['0', subuidStart, '65536']);
    const touch = await host.sh('docker run --rm -v /:/host busybox touch /host/etc/pwned');
    assert.notEqual(touch.code, 0);
    assert.match(touch.stderr, /Permission denied/);
  });

  await step('--userns=host is refused with the plugin\'s message', async () => {
    const r = await host.sh('docker run --rm --name ug-denied --userns=host -v /:/host busybox touch /host/etc/pwned');
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(USERNS_REFUSAL), r.stderr);
    assert.equal((await host.sh('test -e /etc/pwned')).code, 1);
    assert.equal((await host.ok('docker ps -aq --filter name=ug-denied')).trim(), '');
  });

  await step('the refusal is one whole JSON line in journalctl -u userns-guard', async () => {
    const messages = await waitForMessages(host, (ms) => ms.some((m) => m.includes('"ug-denied"')));
    const ours = messages.filter((m) => m.includes('ug-denied'));
    assert.equal(ours.length, 1, ours.join('\n'));
    const record = JSON.parse(ours[0]!);
    assert.equal(record.decision, 'deny');
    assert.equal(record.rule, 'userns-host');
    assert.equal(record.name, 'ug-denied');
    assert.equal(record.image, 'busybox');
    assert.match(record.uri, /^\/v1\.\d+\/containers\/create\?name=ug-denied$/);
    // Every line the plugin wrote is a whole JSON object: none was split.
    for (const m of messages.filter((m) => m.startsWith('{'))) assert.doesNotThrow(() => JSON.parse(m), m);
    // The README's query, verbatim.
    const readme = await host.ok(`journalctl -u userns-guard -o cat | jq -R 'fromjson? | select(.decision=="deny")'`);
    assert.match(readme, /"name": "ug-denied"/);
  });

  await step('the unit\'s sandbox lets the plugin reach the engine and examine host paths, and nothing more', async (st) => {
    // The real service: uid 0 with CAP_DAC_READ_SEARCH (bit 2) alone.
    const status = await host.ok('cat /proc/$(systemctl show -p MainPID --value userns-guard.service)/status');
    assert.match(status, /^Uid:\s+0\s+0\s+0\s+0$/m);
    assert.match(status, /^CapEff:\s+0{15}4$/m);
    assert.match(status, /^CapBnd:\s+0{15}4$/m);
    assert.match(status, /^NoNewPrivs:\s+1$/m);

    // Bind sources of every kind: under /tmp, /home (another user's), /root,
    // a symlink, and another user's private directory.
    await host.ok([
      'mkdir -p /tmp/ug-bind /home/operator/data /home/private /root/ug-root-dir',
      'echo x > /tmp/ug-bind/file',
      'chown 1000:1000 /home/operator /home/operator/data',
      'chown 1001:1001 /home/private && chmod 0700 /home/private && touch /home/private/x',
      'ln -sfn /etc /tmp/ug-link',
      'docker volume create ug-vol >/dev/null',
    ].join(' && '));
    const container = (await host.ok('docker run -d --name ug-lookup -v /tmp/ug-bind:/b -v ug-vol:/v busybox sleep 600')).trim();
    st.after(() => host.sh('docker rm -f ug-lookup; docker volume rm ug-vol; rm -rf /tmp/ug-bind /tmp/ug-link /home/operator /home/private /root/ug-root-dir'));

    // A copy of the installed unit in which only what runs differs: the same
    // runtime, preloaded with the probe, exits after --version; and its
    // output goes to a file.
    await host.copyIn(PROBE_SCRIPT, '/root/sandbox-probe.cjs');
    const unit = await host.ok(`cat ${UNIT}`);
    const probeUnit = probeUnitFrom(unit, {
      NODE_OPTIONS: '--require=/root/sandbox-probe.cjs',
      PROBE_CONTAINER: container,
      PROBE_VOLUME: 'ug-vol',
      PROBE_PATHS: ['/tmp', '/home', '/root', '/tmp/ug-bind/file', '/tmp/ug-link', '/home/operator/data', '/home/private', '/home/private/x', '/root/ug-root-dir', '/etc/subuid'].join(':'),
      PROBE_WRITES: ['/tmp/ug-w', '/root/ug-w', '/run/ug-w', '/run/docker/ug-w', '/run/docker/plugins/ug-w', '/etc/ug-w', '/var/lib/docker/ug-w'].join(':'),
    });
    await host.ok(`cat > /run/systemd/system/${PROBE_UNIT} && systemctl daemon-reload`, { input: probeUnit });
    st.after(() => host.sh(`rm -f /run/systemd/system/${PROBE_UNIT} /run/ug-sandbox-probe.out; systemctl daemon-reload`));
    const ran = await host.sh(`systemctl start ${PROBE_UNIT}`);
    const output = (await host.sh('cat /run/ug-sandbox-probe.out')).stdout;
    assert.equal(ran.code, 0, `${ran.stderr}\n${await host.ok(`journalctl -u ${PROBE_UNIT} -o cat --no-pager | tail -20`)}`);
    const line = output.split('\n').find((l) => l.startsWith('SANDBOX-PROBE '));
    assert.ok(line, output);
    const probe = JSON.parse(line.slice('SANDBOX-PROBE '.length));
    st.diagnostic(`sandbox probe: ${JSON.stringify(probe)}`);
    assert.equal(probe.error, undefined);

    assert.deepEqual([probe.uid, probe.capEff, probe.capBnd, probe.noNewPrivs], ['0', `${'0'.repeat(15)}4`, `${'0'.repeat(15)}4`, '1']);
    // The lookups: GET /info, /containers/{id}/json, /volumes/{name} on /run/docker.sock.
    assert.equal(probe.info.status, 200, JSON.stringify(probe.info));
    assert.ok(probe.info.securityOptions.includes('name=userns'));
    assert.deepEqual(probe.info.authorization, ['userns-guard']);
    assert.equal(probe.container.status, 200, JSON.stringify(probe.container));
    assert.ok(probe.container.mounts.includes('/tmp/ug-bind'), JSON.stringify(probe.container));
    assert.equal(probe.volume.status, 200, JSON.stringify(probe.volume));
    assert.equal(probe.volume.name, 'ug-vol');
    // The host's own /tmp, /home and /root, with their true owners.
    for (const dir of ['/tmp', '/home', '/root', '/root/ug-root-dir']) {
      assert.equal(probe.paths[dir].lstat.dir, true, `${dir}: ${JSON.stringify(probe.paths[dir])}`);
      assert.equal(typeof probe.paths[dir].readdir, 'number', `${dir}: ${JSON.stringify(probe.paths[dir])}`);
    }
    assert.ok(probe.paths['/tmp'].readdir > 0, 'the service sees a private /tmp');
    assert.equal(probe.paths['/tmp/ug-bind/file'].lstat.dir, false);
    assert.equal(probe.paths['/tmp/ug-link'].lstat.symlink, true);
    assert.equal(probe.paths['/tmp/ug-link'].realpath, '/etc');
    assert.equal(probe.paths['/home/operator/data'].lstat.uid, 1000);
    assert.equal(probe.paths['/home/private'].lstat.uid, 1001);
    // CAP_DAC_READ_SEARCH: bind sources in another user's 0700 home can be
    // examined (and nothing there written, below).
    assert.equal(probe.paths['/home/private/x'].lstat.dir, false, JSON.stringify(probe.paths['/home/private/x']));
    assert.match(probe.subuid, new RegExp(`^dockremap:${subuidStart}:65536$`, 'm'));
    // And it can write nothing: every mount is read-only to it, but the
    // message-queue file system of its own private IPC namespace.
    for (const [file, result] of Object.entries(probe.writes)) assert.deepEqual(result, { error: 'EROFS' }, file);
    assert.deepEqual(probe.writableMounts.filter((m: string) => m !== '/dev/mqueue'), []);
    // RestrictAddressFamilies=AF_UNIX.
    assert.equal(probe.inet, 'EAFNOSUPPORT');
  });

  await step('MemoryCurrent of the service at idle and after a burst of calls', async () => {
    await sleep(2_000);
    const idle = await memoryCurrent(host);
    const commands = 8 * 25;
    const burstStart = Date.now();
    const out = await host.ok(
      `for w in 1 2 3 4 5 6 7 8; do (i=0; while [ $i -lt 25 ]; do docker ps -q >/dev/null && docker image inspect busybox >/dev/null || echo fail; i=$((i+1)); done) & done; wait`,
      { timeoutMs: 300_000 },
    );
    assert.equal(out.trim(), '');
    const burstMs = Date.now() - burstStart;
    const after = await memoryCurrent(host);
    note(`MemoryCurrent of userns-guard.service: ${mib(idle)} at idle, ${mib(after)} after ${commands * 2} docker commands from 8 clients in ${seconds(burstMs)} (MemoryMax=256M)`);
    assert.ok(idle < 256 * 2 ** 20 && after < 256 * 2 ** 20);
  });

  await step('systemctl kill -s KILL userns-guard.service, five times, while docker commands run: none fails but a call in flight at a kill, refused', async () => {
    const restartsBefore = Number(await host.ok('systemctl show -p NRestarts --value userns-guard.service'));
    const workers = ['docker ps -q', 'docker run --rm busybox true', 'docker volume ls -q', 'docker image inspect busybox']
      .map((command, i) => host.sh(`rm -f /run/ug-load.stop; ok=0; fail=0; while [ ! -e /run/ug-load.stop ]; do if ${command} >/dev/null 2>>/run/ug-load-${i}.err; then ok=$((ok+1)); else fail=$((fail+1)); fi; done; echo "$ok $fail"`, { timeoutMs: 300_000 }));
    const pids: string[] = [];
    try {
      await sleep(1_000);
      for (let k = 0; k < 5; k++) {
        const pid = await waitForMainPid(host, pids.at(-1));
        pids.push(pid);
        await host.ok('systemctl kill -s KILL userns-guard.service');
        await sleep(1_500);
      }
      pids.push(await waitForMainPid(host, pids.at(-1)));
    } finally {
      await host.sh('touch /run/ug-load.stop');
    }
    const results = (await Promise.all(workers)).map((r) => r.stdout.trim().split(' ').map(Number));
    const errors = await host.sh('cat /run/ug-load-*.err; rm -f /run/ug-load-*.err /run/ug-load.stop');
    note(`SIGKILL under load: 5 kills, main pids ${pids.join(' -> ')}; docker commands ok/failed per client: ${results.map(([ok, fail]) => `${ok}/${fail}`).join(', ')}`);
    for (const [ok] of results) assert.ok(ok! > 0, 'a client ran no command');
    // Calls that arrive while the plugin is down wait on systemd's socket and
    // go through. The one exception is the engine's, not the plugin's: a call
    // the plugin was answering when it was killed is re-sent by the engine
    // (20.10's plugin client) with the request body it already consumed, i.e.
    // empty, and the plugin refuses what it cannot read. So: at most one
    // failure per kill, and each one that refusal, never anything else.
    const failures = results.reduce((n, [, fail]) => n + fail!, 0);
    // The CLI's own follow-ons of one refused command: its help hint,
    // docker run's wait for the container it was about to start, and its
    // note that the attach (an upgraded connection) was refused.
    const followOn = (l: string) =>
      /^See 'docker \S+ --help'\.$/.test(l) ||
      /level=error msg="error waiting for container: context canceled"/.test(l) ||
      /^unable to upgrade to tcp, received 403$/.test(l);
    const lines = errors.stdout.split('\n').filter((l) => l.trim() !== '' && !followOn(l));
    assert.ok(failures <= 5, `${failures} docker commands failed for 5 kills:\n${errors.stdout}`);
    const refusals = lines.filter((l) => l.includes(`${PLUGIN_REFUSAL}: request refused: empty call envelope`));
    assert.deepEqual(lines.filter((l) => !refusals.includes(l)), [], errors.stdout);
    assert.equal(refusals.length, failures, `every failed command is one such refusal:\n${errors.stdout}`);
    note(`SIGKILL under load: ${failures} docker command(s) refused with "empty call envelope" (in flight at a kill)`);
    assert.equal(new Set(pids).size, pids.length, 'a kill did not bring a new process');
    const restarts = Number(await host.ok('systemctl show -p NRestarts --value userns-guard.service'));
    assert.ok(restarts >= restartsBefore + 5, `NRestarts ${restartsBefore} -> ${restarts}`);
  });

  await step('reboot: the socket is up before the engine, and both refuse host-namespace requests at once', async () => {
    const stopStart = Date.now();
    const stopped = await engine.docker(['stop', '-t', '60', host.name], { timeoutMs: 120_000 });
    assert.equal(stopped.code, 0, stopped.stderr);
    const stopMs = Date.now() - stopStart;
    const started = await engine.docker(['start', host.name]);
    assert.equal(started.code, 0, started.stderr);
    const ms = await firstDockerAnswer(host);
    note(`reboot: shutdown took ${seconds(stopMs)}; first answered docker command (through the plugin) ${seconds(ms)} after the host started`);
    assert.equal(await host.booted(), 'running');
    assert.equal((await host.ok('systemctl is-active userns-guard.socket docker.service userns-guard.service')).trim().split('\n').join(' '), 'active active active');
    const stamp = async (unit: string, prop: string) => Number(await host.ok(`systemctl show -p ${prop} --value ${unit}`));
    const socketUp = await stamp('userns-guard.socket', 'ActiveEnterTimestampMonotonic');
    const engineStart = await stamp('docker.service', 'InactiveExitTimestampMonotonic');
    assert.ok(socketUp > 0 && socketUp <= engineStart, `socket active at ${socketUp}, docker.service started at ${engineStart}`);
    const r = await host.sh('docker run --rm --userns=host busybox true');
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(USERNS_REFUSAL), r.stderr);
    assert.deepEqual((await host.ok('docker run --rm busybox cat /proc/self/uid_map')).trim().split(/\s+/), ['0', subuidStart, '65536']);
    assert.match(await host.ok('journalctl -u userns-guard -b -o cat'), /"msg":"userns-guard started".*"socket":"socket activation"/);
  });

  await step('--audit-only through systemctl edit, and back with systemctl revert', async () => {
    // What the README has the operator type into the editor.
    await host.ok('cat > /root/audit-only.conf', { input: '[Service]\nExecStart=\nExecStart=/usr/local/sbin/userns-guard --audit-only\n' });
    // systemctl edit wants a terminal, and runs $SYSTEMD_EDITOR on a temp file.
    await host.ok('SYSTEMD_EDITOR="cp /root/audit-only.conf" systemctl edit userns-guard.service', { tty: true });
    await host.ok('systemctl restart userns-guard.service');
    assert.match(await host.ok('systemctl cat userns-guard.service'), /ExecStart=\/usr\/local\/sbin\/userns-guard --audit-only/);
    const map = (await host.ok('docker run --rm --name ug-audit --userns=host busybox cat /proc/self/uid_map')).trim().split(/\s+/);
    assert.deepEqual(map, ['0', '0', '4294967295']);
    const messages = await waitForMessages(host, (ms) => ms.some((m) => m.includes('"ug-audit"')));
    const wouldDeny = messages.filter((m) => m.includes('"ug-audit"')).map((m) => JSON.parse(m));
    assert.deepEqual(wouldDeny.map((r) => [r.decision, r.rule]), [['would-deny', 'userns-host']]);
    assert.ok(messages.some((m) => m.includes('audit-only mode: nothing is enforced')));

    await host.ok('systemctl revert userns-guard.service && systemctl restart userns-guard.service');
    const r = await host.sh('docker run --rm --userns=host busybox true');
    assert.ok(r.code !== 0 && r.stderr.includes(USERNS_REFUSAL), r.stderr);
  });

  await step('docker cp out of a container through its bind mount of / is refused (the engine-as-root rules)', async (st) => {
    await host.ok('docker run -d --name ug-cp -v /:/host busybox sleep 600');
    st.after(() => host.sh('docker rm -f ug-cp; rm -rf /root/ug-cp'));
    const r = await host.sh('mkdir -p /root/ug-cp && cd /root/ug-cp && docker cp ug-cp:/host/etc/hostname .');
    assert.notEqual(r.code, 0, `docker cp read the host's /etc/hostname as root: ${JSON.stringify(await host.sh('cat /root/ug-cp/hostname'))}`);
    assert.ok(r.stderr.includes(PLUGIN_REFUSAL), r.stderr);
    assert.match(r.stderr, /docker cp refused: container ug-cp/);
    assert.equal((await host.sh('test -e /root/ug-cp/hostname')).code, 1);

    // From its sandbox the plugin also judges host paths: a bind source the
    // engine would create in root's home is refused; one in a user's 0700
    // home is examined and passes.
    const created = await host.sh('docker run --rm -v /root/ug-new/sub:/d busybox true');
    assert.notEqual(created.code, 0);
    assert.match(created.stderr, /create it first/);
    assert.equal((await host.sh('test -e /root/ug-new')).code, 1, 'the engine created /root/ug-new');
    await host.ok('mkdir -p /home/ug-private/src && chmod 0700 /home/ug-private');
    st.after(() => host.sh('rm -rf /home/ug-private'));
    await host.ok('docker run --rm -v /home/ug-private/src:/src busybox true');
  }, { independent: true });

  await step('uninstall in the README\'s order leaves a working engine and no units', async () => {
    const out = await host.ok('userns-guard uninstall');
    const printed = remainingSteps(out, 'Remaining steps');
    // The README's order: the engine restarts without the plugin before the plugin stops.
    assert.deepEqual(printed, readmeUninstallCommands());
    for (const command of printed) await host.ok(command);
    assert.equal((await host.ok('docker info --format "{{.Plugins.Authorization}}"')).trim(), '[]');
    assert.deepEqual((await host.ok('docker run --rm busybox cat /proc/self/uid_map')).trim().split(/\s+/), ['0', subuidStart, '65536']);
    assert.equal((await host.ok('systemctl list-units --all --no-legend --plain "userns-guard*"')).trim(), '');
    // list-unit-files exits 1 when nothing matches.
    const files = await host.sh('systemctl list-unit-files --no-legend "userns-guard*"');
    assert.deepEqual([files.code, files.stdout.trim()], [1, ''], files.stderr);
    assert.equal((await host.ok('find /etc/systemd /run/systemd/system /usr/local/sbin -name "userns-guard*"')).trim(), '');
    const daemon = JSON.parse(await host.ok('cat /etc/docker/daemon.json'));
    assert.equal(daemon['userns-remap'], 'default');
    assert.ok(!(daemon['authorization-plugins'] ?? []).includes('userns-guard'));
    assert.equal((await host.sh('test -e /run/docker/plugins/userns-guard.sock')).code, 1, 'the socket file is left behind');
  });

  note(`whole test: ${seconds(Date.now() - began)}`);
  t.diagnostic(`what an operator sees:\n  ${figures.join('\n  ')}`);
});

// The indented command lines after the `heading` of install/uninstall output.
function remainingSteps(output: string, heading: string): string[] {
  const lines = output.split('\n');
  const at = lines.findIndex((l) => l.startsWith(heading));
  assert.ok(at >= 0, output);
  const out: string[] = [];
  for (const line of lines.slice(at + 1)) {
    if (line.startsWith('  ')) out.push(line.trim());
    else if (out.length > 0) break; // the heading may go on for a line or two
  }
  return out;
}

// The commands README.md's Uninstall section has the operator run after `userns-guard uninstall`.
function readmeUninstallCommands(): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Uninstall'), readme.indexOf('## Running it as a system service'));
  const commands = [...section.matchAll(/^\$ sudo ((?:systemctl|rm) .*)$/gm)].map((m) => m[1]!.trim());
  assert.ok(commands.length > 0, 'no commands in the README\'s Uninstall section');
  return commands;
}

// From the start of the host's PID 1 to the first `docker ps` that answers.
async function firstDockerAnswer(host: Host, timeoutMs = 120_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await host.sh('docker ps -q', { timeoutMs: 30_000 }).catch(() => null);
    if (r?.code === 0) return Date.now() - (await host.startedAt());
    if (Date.now() > deadline) throw new Error(`no docker command answered: ${r?.stderr}`);
    await sleep(50);
  }
}

// No registry is reachable: the image is the host's own busybox-static.
async function loadBusybox(host: Host): Promise<void> {
  await host.ok([
    'rm -rf /root/busybox-image && mkdir -p /root/busybox-image/bin /root/busybox-image/tmp',
    'cp /bin/busybox /root/busybox-image/bin/',
    'for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox /root/busybox-image/bin/$a; done',
    'tar -C /root/busybox-image -c . | docker import -c "ENV PATH=/bin" - busybox:latest >/dev/null',
    'rm -rf /root/busybox-image',
  ].join(' && '));
}

// The MESSAGE of every journal entry of the unit, this boot, once `ready` holds.
async function waitForMessages(host: Host, ready: (messages: string[]) => boolean): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const out = await host.ok('journalctl -u userns-guard.service -b -o json --no-pager');
    const messages = out.split('\n').filter(Boolean).map((l) => {
      const m = JSON.parse(l).MESSAGE;
      return Array.isArray(m) ? Buffer.from(m).toString('utf8') : String(m);
    });
    if (ready(messages) || Date.now() > deadline) return messages;
    await sleep(200);
  }
}

async function waitForMainPid(host: Host, not: string | undefined): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const pid = (await host.ok('systemctl show -p MainPID --value userns-guard.service')).trim();
    if (pid !== '0' && pid !== not) return pid;
    if (Date.now() > deadline) throw new Error(`userns-guard.service has no new main pid (still ${pid})`);
    await sleep(100);
  }
}

async function memoryCurrent(host: Host): Promise<number> {
  const value = (await host.ok('systemctl show -p MemoryCurrent --value userns-guard.service')).trim();
  assert.match(value, /^\d+$/, `MemoryCurrent=${value}`);
  return Number(value);
}

// The installed unit with only what runs changed: a oneshot of the same
// binary, preloaded with the probe, whose output goes to a file.
function probeUnitFrom(unit: string, env: Record<string, string>): string {
  const out: string[] = [];
  let section = '';
  const replaced = new Set<string>();
  for (const line of unit.split('\n')) {
    if (/^\[.*\]$/.test(line)) section = line;
    if (section === '[Install]') continue;
    const key = /^([A-Za-z]+)=/.exec(line)?.[1];
    const swap = (to: string) => {
      replaced.add(key!);
      out.push(to);
    };
    if (key === 'Description') swap('Description=userns-guard sandbox probe (a copy of the installed unit)');
    else if (key === 'Requires' || key === 'After') replaced.add(key);
    else if (key === 'Type') swap('Type=oneshot');
    else if (key === 'Restart') swap('Restart=no');
    else if (key === 'ExecStart') swap(`${line} --version`);
    else if (key === 'StandardOutput') swap('StandardOutput=truncate:/run/ug-sandbox-probe.out');
    else if (key === 'UnsetEnvironment') swap(line.replace(/(?<==|\s)NODE_OPTIONS(?=\s|$)/, '').replace('= ', '='));
    else out.push(line);
  }
  assert.deepEqual([...replaced].sort(), ['After', 'Description', 'ExecStart', 'Requires', 'Restart', 'StandardOutput', 'Type', 'UnsetEnvironment']);
  const at = out.indexOf('[Service]') + 1;
  out.splice(at, 0, ...Object.entries(env).map(([k, v]) => `Environment=${k}=${v}`));
  return `${out.join('\n')}\n`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
