// Unit tests of the opt-in hardening rules, through decide() exactly as the
// server calls it. Each rule gets the engine's ways of saying the same thing
// (case-folded keys, duplicate keys, merged HostConfig objects, deprecated
// top-level fields, other routes that reach the same HostConfig) and the
// benign requests that look like them.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseServeArgs } from '../src/plugin/cli.ts';
import { decide, DEFAULT_POLICY, type PolicyOptions } from '../src/policy/decide.ts';
import { cleanPath, exposesEngineSocket, HARDENING_RULES } from '../src/policy/rules/hardening.ts';
import type { HardeningRuleId } from '../src/policy/rules/types.ts';
import { envelope } from './lib/plugin.ts';

function denying(rules: readonly HardeningRuleId[], flag?: string): PolicyOptions {
  return { ...DEFAULT_POLICY, deny: new Map(rules.map((r) => [r, flag ?? `--deny ${r}`])) };
}
const HARDEN: PolicyOptions = denying(HARDENING_RULES, '--harden');

type Body = string | object;
const text = (b: Body) => (typeof b === 'string' ? b : JSON.stringify(b));

// Envelopes as the engine forwards them.
const create = (b: Body) => envelope('POST', '/v1.41/containers/create?name=t', text(b));
const exec = (b: Body) => envelope('POST', '/v1.41/containers/abc/exec', text(b));
const legacyStart = (b: Body) => envelope('POST', '/v1.23/containers/abc/start', text(b));
const volume = (b: Body) => envelope('POST', '/v1.41/volumes/create', text(b));
const service = (b: Body) => envelope('POST', '/v1.41/services/create', text(b));
const serviceUpdate = (b: Body) => envelope('POST', '/v1.41/services/web/update?version=3', text(b));
const build = (query: string, headers: Record<string, string> = { 'Content-Type': 'application/x-tar' }) =>
  envelope('POST', `/v1.41/build?${query}`, null, headers);

// A create that passes every other rule, with HostConfig fields added.
const withHost = (hostConfig: object, extra: object = {}) => ({ Image: 'busybox', User: '1000', HostConfig: hostConfig, ...extra });
const task = (containerSpec: object, extra: object = {}) => ({
  Name: 'web',
  TaskTemplate: { ContainerSpec: { Image: 'busybox', User: '1000', ...containerSpec }, ...extra },
});

interface Case {
  readonly name: string;
  readonly env: object;
}

const DENIED: Record<HardeningRuleId, Case[]> = {
  privileged: [
    { name: 'HostConfig.Privileged', env: create(withHost({ Privileged: true })) },
    { name: 'lower-case keys', env: create('{"Image":"b","User":"1000","hostconfig":{"privileged":true}}') },
    { name: 'HostConfig key with U+017F', env: create('{"Image":"b","User":"1000","Ho\\u017ftConfig":{"PRIVILEGED":true}}') },
    { name: 'duplicate key, last wins', env: create('{"Image":"b","HostConfig":{"Privileged":false,"privileged":true}}') },
    { name: 'two HostConfig objects merge', env: create('{"Image":"b","HostConfig":{"Privileged":true},"hostConfig":{"Memory":0}}') },
    { name: 'deprecated top-level field', env: create({ Image: 'b', User: '1000', Privileged: true }) },
    { name: 'top-level field with HostConfig null', env: create('{"Image":"b","HostConfig":null,"Privileged":true}') },
    { name: 'exec create', env: exec({ Privileged: true, Cmd: ['sh'] }) },
    { name: 'exec create, folded key', env: exec('{"PRIVILEGED":true,"Cmd":["sh"]}') },
    { name: 'exec create, percent-encoded route', env: envelope('POST', '/v1.41/containers/abc/%65xec', '{"Privileged":true}') },
    { name: 'legacy start body (API 1.23)', env: legacyStart({ Privileged: true }) },
    { name: 'legacy start body with HostConfig', env: legacyStart({ HostConfig: { Privileged: true } }) },
  ],
  'cap-add': [
    { name: 'CapAdd', env: create(withHost({ CapAdd: ['SYS_ADMIN'] })) },
    { name: 'CAP_ prefix, lower case', env: create(withHost({ CapAdd: ['cap_sys_ptrace'] })) },
    { name: 'ALL', env: create(withHost({ CapAdd: ['all'] })) },
    { name: 'bare string (StrSlice)', env: create(withHost({ CapAdd: 'NET_ADMIN' })) },
    { name: 'duplicate key, last wins', env: create('{"Image":"b","User":"1000","HostConfig":{"CapAdd":[],"capadd":["SYS_ADMIN"]}}') },
    { name: 'deprecated top-level field', env: create({ Image: 'b', User: '1000', CapAdd: ['NET_RAW'] }) },
    { name: 'legacy start body', env: legacyStart({ CapAdd: ['SYS_ADMIN'] }) },
    { name: 'swarm service CapabilityAdd', env: service(task({ CapabilityAdd: ['CAP_SYS_ADMIN'] })) },
  ],
  'security-opt': [
    { name: 'seccomp=unconfined', env: create(withHost({ SecurityOpt: ['seccomp=unconfined'] })) },
    { name: 'legacy seccomp:unconfined', env: create(withHost({ SecurityOpt: ['seccomp:unconfined'] })) },
    { name: 'custom seccomp profile', env: create(withHost({ SecurityOpt: ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'] })) },
    { name: 'apparmor=unconfined', env: create(withHost({ SecurityOpt: ['apparmor=unconfined'] })) },
    { name: 'legacy apparmor:unconfined', env: create(withHost({ SecurityOpt: ['apparmor:unconfined'] })) },
    { name: 'custom apparmor profile', env: create(withHost({ SecurityOpt: ['apparmor=my-loose-profile'] })) },
    { name: 'label=disable', env: create(withHost({ SecurityOpt: ['label=disable'] })) },
    { name: 'label:disable', env: create(withHost({ SecurityOpt: ['label:disable'] })) },
    { name: 'bare disable', env: create(withHost({ SecurityOpt: ['disable'] })) },
    { name: 'label=type:spc_t', env: create(withHost({ SecurityOpt: ['label=type:spc_t'] })) },
    { name: 'label:level:s0', env: create(withHost({ SecurityOpt: ['label:level:s0'] })) },
    { name: 'systempaths=unconfined as sent raw', env: create(withHost({ SecurityOpt: ['systempaths=unconfined'] })) },
    { name: 'MaskedPaths/ReadonlyPaths empty (what the CLI sends for systempaths=unconfined)', env: create(withHost({ MaskedPaths: [], ReadonlyPaths: [] })) },
    { name: 'MaskedPaths replaced', env: create(withHost({ MaskedPaths: ['/proc/kcore'] })) },
    { name: 'key with U+017F', env: create('{"Image":"b","User":"1000","HostConfig":{"\\u017fecurityopt":["seccomp=unconfined"]}}') },
    { name: 'hidden behind a benign duplicate', env: create('{"Image":"b","User":"1000","HostConfig":{"SecurityOpt":["apparmor=unconfined"],"SecurityOpt":["no-new-privileges"]}}') },
    { name: 'deprecated top-level field', env: create({ Image: 'b', User: '1000', SecurityOpt: ['seccomp=unconfined'] }) },
    { name: 'legacy start body', env: legacyStart({ SecurityOpt: ['apparmor=unconfined'] }) },
    { name: 'swarm service SELinux disable', env: service(task({ Privileges: { SELinuxContext: { Disable: true } } })) },
    { name: 'swarm service SELinux type', env: service(task({ Privileges: { SELinuxContext: { Type: 'spc_t' } } })) },
  ],
  'root-user': [
    { name: 'no User (image default)', env: create({ Image: 'busybox' }) },
    { name: 'empty User', env: create({ Image: 'busybox', User: '' }) },
    { name: 'blank User', env: create({ Image: 'busybox', User: '  ' }) },
    { name: 'null User', env: create({ Image: 'busybox', User: null }) },
    { name: 'root', env: create({ Image: 'busybox', User: 'root' }) },
    { name: 'uid 0', env: create({ Image: 'busybox', User: '0' }) },
    { name: 'uid 000', env: create({ Image: 'busybox', User: '000' }) },
    { name: 'uid +0 (strconv.Atoi)', env: create({ Image: 'busybox', User: '+0' }) },
    { name: 'uid -0', env: create({ Image: 'busybox', User: '-0' }) },
    { name: 'root:root', env: create({ Image: 'busybox', User: 'root:root' }) },
    { name: '0:1000', env: create({ Image: 'busybox', User: '0:1000' }) },
    { name: 'empty user part :1000 (uid 0)', env: create({ Image: 'busybox', User: ':1000' }) },
    { name: 'surrounding spaces', env: create({ Image: 'busybox', User: ' 0 ' }) },
    { name: 'duplicate key, last wins', env: create('{"Image":"b","User":"1000","user":"0"}') },
    { name: 'key with U+017F', env: create('{"Image":"b","U\\u017fer":"root"}') },
    { name: 'non-root user overwritten by an empty one', env: create('{"Image":"b","User":"1000","USER":""}') },
    { name: 'exec as root', env: exec({ User: 'root', Cmd: ['sh'] }) },
    { name: 'exec as uid 0:0', env: exec({ User: '0:0', Cmd: ['sh'] }) },
    { name: 'exec with an empty user part (uid 0)', env: exec({ User: ':0', Cmd: ['sh'] }) },
    { name: 'exec, folded key', env: exec('{"u\\u017fer":"00","Cmd":["sh"]}') },
    { name: 'swarm service as root', env: service(task({ User: '0' })) },
    { name: 'swarm service without a user', env: service({ Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'busybox' } } }) },
    { name: 'swarm service update as root', env: serviceUpdate(task({ User: 'root' })) },
  ],
  'host-namespaces': [
    { name: 'PidMode=host', env: create(withHost({ PidMode: 'host' })) },
    { name: 'IpcMode=host', env: create(withHost({ IpcMode: 'host' })) },
    { name: 'UTSMode=host', env: create(withHost({ UTSMode: 'host' })) },
    { name: 'NetworkMode=host', env: create(withHost({ NetworkMode: 'host' })) },
    { name: 'CgroupnsMode=host', env: create(withHost({ CgroupnsMode: 'host' })) },
    { name: 'folded keys', env: create('{"Image":"b","User":"1000","hostconfig":{"pidmode":"host","UT\\u017fMODE":"host"}}') },
    { name: 'network key with the Kelvin sign', env: create('{"Image":"b","User":"1000","HostConfig":{"Networ\\u212aMode":"host"}}') },
    { name: 'duplicate key, last wins', env: create('{"Image":"b","User":"1000","HostConfig":{"NetworkMode":"none","NetworkMode":"host"}}') },
    { name: 'deprecated top-level field', env: create({ Image: 'b', User: '1000', NetworkMode: 'host' }) },
    { name: 'legacy start body', env: legacyStart({ PidMode: 'host' }) },
    { name: 'build --network host', env: build('t=x&networkmode=host') },
    { name: 'build, host after a benign duplicate', env: build('networkmode=default&networkmode=host') },
    { name: 'build, percent-encoded', env: build('network%6Dode=ho%73t') },
    { name: 'build options in a form body', env: build('t=x', { 'Content-Type': 'application/x-www-form-urlencoded' }) },
    { name: 'build options in a multipart body', env: build('t=x', { 'Content-Type': 'Multipart/Form-Data; boundary=x' }) },
    { name: 'BuildKit gRPC API', env: envelope('POST', '/grpc', null, { Upgrade: 'h2c' }) },
    { name: 'swarm init', env: envelope('POST', '/v1.41/swarm/init', '{"ListenAddr":"0.0.0.0:2377"}') },
    { name: 'swarm join', env: envelope('POST', '/v1.41/swarm/join', '{"RemoteAddrs":["10.0.0.1"]}') },
    { name: 'swarm service on the host network', env: service(task({}, { Networks: [{ Target: 'host' }] })) },
    { name: 'swarm service, deprecated Networks', env: service({ ...task({}), Networks: [{ Target: 'host' }] }) },
  ],
  devices: [
    { name: 'Devices', env: create(withHost({ Devices: [{ PathOnHost: '/dev/sda', PathInContainer: '/dev/sda', CgroupPermissions: 'rwm' }] })) },
    { name: 'DeviceCgroupRules', env: create(withHost({ DeviceCgroupRules: ['b 8:* rmw'] })) },
    { name: 'DeviceRequests (--gpus)', env: create(withHost({ DeviceRequests: [{ Count: -1, Capabilities: [['gpu']] }] })) },
    { name: 'folded key', env: create('{"Image":"b","User":"1000","HostConfig":{"DEVICEcgroupRULES":["a *:* rwm"]}}') },
    { name: 'deprecated top-level field', env: create({ Image: 'b', User: '1000', Devices: [{ PathOnHost: '/dev/mem' }] }) },
    { name: 'legacy start body', env: legacyStart({ DeviceCgroupRules: ['a *:* rwm'] }) },
    { name: 'volume of a host block device', env: volume({ Name: 'disk', DriverOpts: { type: 'ext4', device: '/dev/sda1' } }) },
    { name: 'volume of the host procfs', env: volume({ Name: 'p', DriverOpts: { type: 'proc', device: 'proc' } }) },
    { name: 'volume of an overlay over host directories', env: volume({ DriverOpts: { type: 'overlay', device: 'overlay', o: 'lowerdir=/etc' } }) },
    { name: 'volume created by a Mounts entry', env: create(withHost({ Mounts: [{ Type: 'volume', Source: 'v', Target: '/v', VolumeOptions: { DriverConfig: { Name: 'local', Options: { type: 'sysfs', device: 'sysfs' } } } }] })) },
  ],
  'docker-socket': [
    { name: 'bind of /var/run/docker.sock', env: create(withHost({ Binds: ['/var/run/docker.sock:/var/run/docker.sock'] })) },
    { name: 'bind of /run/docker.sock read-only', env: create(withHost({ Binds: ['/run/docker.sock:/s:ro'] })) },
    { name: 'bind of /run', env: create(withHost({ Binds: ['/run:/r'] })) },
    { name: 'bind of /var/run', env: create(withHost({ Binds: ['/var/run:/r'] })) },
    { name: 'bind of /var', env: create(withHost({ Binds: ['/var:/v'] })) },
    { name: 'bind of /', env: create(withHost({ Binds: ['/:/host'] })) },
    { name: '//run', env: create(withHost({ Binds: ['//run:/r'] })) },
    { name: '/run/.', env: create(withHost({ Binds: ['/run/.:/r'] })) },
    { name: '/var/run/../run', env: create(withHost({ Binds: ['/var/run/../run:/r'] })) },
    { name: 'trailing slash', env: create(withHost({ Binds: ['/run/:/r'] })) },
    { name: 'socket with a trailing slash', env: create(withHost({ Binds: ['/var/run/docker.sock/:/s'] })) },
    { name: 'containerd socket directory', env: create(withHost({ Binds: ['/run/containerd:/c'] })) },
    { name: 'engine state under /var/run/docker', env: create(withHost({ Binds: ['/var/run/docker:/d'] })) },
    { name: '/proc', env: create(withHost({ Binds: ['/proc:/host/proc:ro'] })) },
    { name: '/proc/1/root', env: create(withHost({ Binds: ['/proc/1/root:/h'] })) },
    { name: '/proc/self/cwd', env: create(withHost({ Binds: ['/proc/self/cwd:/h'] })) },
    { name: '/proc/1/task/1/root', env: create(withHost({ Binds: ['/proc/1/task/1/root:/h'] })) },
    { name: 'Mounts bind', env: create(withHost({ Mounts: [{ Type: 'bind', Source: '/run', Target: '/r' }] })) },
    { name: 'Mounts bind, duplicate Source, last wins', env: create('{"Image":"b","User":"1000","HostConfig":{"Mounts":[{"Type":"bind","Source":"/srv","\\u017fource":"/var/run/docker.sock","Target":"/s"}]}}') },
    { name: 'Mounts bind, type hidden behind a duplicate', env: create('{"Image":"b","User":"1000","HostConfig":{"Mounts":[{"Type":"volume","type":"bind","Source":"/run","Target":"/r"}]}}') },
    { name: 'top-level Binds', env: create({ Image: 'b', User: '1000', Binds: ['/run:/r'] }) },
    { name: 'legacy start Binds', env: legacyStart({ Binds: ['/var/run/docker.sock:/s'] }) },
    { name: 'volume create o=bind device=/run', env: volume({ Name: 'sock', DriverOpts: { type: 'none', o: 'bind', device: '/run' } }) },
    { name: 'volume create o=rbind, device with tricks', env: volume({ Name: 'sock', DriverOpts: { type: 'none', o: 'ro,rbind', device: '/var/run/./' } }) },
    { name: 'volume create with a relative device (from /)', env: volume({ DriverOpts: { type: 'none', o: 'bind', device: 'run' } }) },
    { name: 'volume create, folded DriverOpts key', env: volume('{"Name":"s","DRIVEROPTS":{"type":"none","o":"bind","device":"/run"}}') },
    { name: 'volume of the host procfs', env: volume({ DriverOpts: { type: 'proc', device: 'proc' } }) },
    { name: 'volume through Mounts VolumeOptions', env: create(withHost({ Mounts: [{ Type: 'volume', Source: 'v', Target: '/v', VolumeOptions: { DriverConfig: { Options: { type: 'none', o: 'bind', device: '/run' } } } }] })) },
    { name: 'swarm service bind', env: service(task({ Mounts: [{ Type: 'bind', Source: '/var/run/docker.sock', Target: '/s' }] })) },
  ],
};

const ALLOWED: Record<HardeningRuleId, Case[]> = {
  privileged: [
    { name: 'Privileged false', env: create(withHost({ Privileged: false })) },
    { name: 'a label and env named Privileged', env: create(withHost({}, { Labels: { Privileged: 'true' }, Env: ['Privileged=true'] })) },
    { name: 'Privileged in NetworkingConfig', env: create(withHost({}, { NetworkingConfig: { Privileged: true } })) },
    { name: 'exec without privileges', env: exec({ Privileged: false, Cmd: ['sh'] }) },
    { name: 'start body on API 1.24+ (the engine refuses it itself)', env: envelope('POST', '/v1.41/containers/abc/start', '{"Privileged":true}') },
    { name: 'legacy start without a body', env: envelope('POST', '/v1.23/containers/abc/start', null, { 'Content-Length': '0' }) },
  ],
  'cap-add': [
    { name: 'CapDrop ALL', env: create(withHost({ CapDrop: ['ALL'] })) },
    { name: 'empty and null CapAdd', env: create('{"Image":"b","User":"1000","HostConfig":{"CapAdd":[],"capadd":null}}') },
    { name: 'label named CapAdd', env: create(withHost({}, { Labels: { CapAdd: 'SYS_ADMIN' } })) },
    { name: 'service CapabilityDrop', env: service(task({ CapabilityDrop: ['ALL'] })) },
  ],
  'security-opt': [
    { name: 'no-new-privileges', env: create(withHost({ SecurityOpt: ['no-new-privileges'] })) },
    { name: 'no-new-privileges=true and :false', env: create(withHost({ SecurityOpt: ['no-new-privileges=true', 'no-new-privileges:false'] })) },
    { name: 'default profiles named', env: create(withHost({ SecurityOpt: ['seccomp=builtin', 'apparmor=docker-default'] })) },
    { name: 'empty SecurityOpt, null MaskedPaths', env: create(withHost({ SecurityOpt: [], MaskedPaths: null, ReadonlyPaths: null })) },
    { name: 'label named SecurityOpt', env: create(withHost({}, { Labels: { SecurityOpt: 'seccomp=unconfined' } })) },
  ],
  'root-user': [
    { name: 'uid 1000', env: create({ Image: 'busybox', User: '1000' }) },
    { name: '1000:1000', env: create({ Image: 'busybox', User: '1000:1000' }) },
    { name: 'nobody', env: create({ Image: 'busybox', User: 'nobody' }) },
    { name: 'uid 0100 is 100', env: create({ Image: 'busybox', User: '0100' }) },
    { name: 'a group of 0 with a non-root uid', env: create({ Image: 'busybox', User: '1000:0' }) },
    { name: 'a null duplicate keeps the user', env: create('{"Image":"b","User":"1000","User":null}') },
    { name: 'env and label named User', env: create({ Image: 'busybox', User: 'app', Env: ['USER=root'], Labels: { User: 'root' } }) },
    { name: 'exec as the container user', env: exec({ Cmd: ['sh'] }) },
    { name: 'exec with an empty user', env: exec({ User: '', Cmd: ['sh'] }) },
    { name: 'exec as nobody', env: exec({ User: 'nobody', Cmd: ['sh'] }) },
    { name: 'swarm service as 1000', env: service(task({ User: '1000' })) },
  ],
  'host-namespaces': [
    { name: 'NetworkMode bridge', env: create(withHost({ NetworkMode: 'bridge' })) },
    { name: 'NetworkMode none', env: create(withHost({ NetworkMode: 'none' })) },
    { name: 'NetworkMode default', env: create(withHost({ NetworkMode: 'default' })) },
    { name: 'a user network named like a mode', env: create(withHost({ NetworkMode: 'hostnet' })) },
    { name: 'joining another container', env: create(withHost({ NetworkMode: 'container:db', PidMode: 'container:db', IpcMode: 'container:db' })) },
    { name: 'IpcMode shareable, CgroupnsMode private', env: create(withHost({ IpcMode: 'shareable', CgroupnsMode: 'private' })) },
    { name: 'labels and env named like the fields', env: create(withHost({}, { Labels: { PidMode: 'host' }, Env: ['NetworkMode=host'] })) },
    { name: 'a build', env: build('t=app&networkmode=default') },
    { name: 'a build with no options', env: build('', {}) },
    { name: 'a build tagged host', env: build('t=host') },
    { name: 'service on an overlay network', env: service(task({}, { Networks: [{ Target: 'backend' }] })) },
  ],
  devices: [
    { name: 'empty Devices and DeviceCgroupRules', env: create(withHost({ Devices: [], DeviceCgroupRules: null, DeviceRequests: [] })) },
    { name: 'a plain volume', env: volume({ Name: 'data' }) },
    { name: 'a tmpfs volume', env: volume({ Name: 't', DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=100m' } }) },
    { name: 'an NFS volume', env: volume({ Name: 'n', DriverOpts: { type: 'nfs', o: 'addr=10.0.0.1,rw', device: ':/export' } }) },
    { name: 'a bind volume (the docker-socket rule judges its path)', env: volume({ Name: 'b', DriverOpts: { type: 'none', o: 'bind', device: '/srv/data' } }) },
  ],
  'docker-socket': [
    { name: 'bind of /srv/data', env: create(withHost({ Binds: ['/srv/data:/data', '/tmp:/tmp:ro'] })) },
    { name: 'named volumes', env: create(withHost({ Binds: ['data:/data', 'docker.sock:/x'] })) },
    { name: 'anonymous volume at /run (no source)', env: create(withHost({ Binds: ['/var/run'] })) },
    { name: 'look-alike prefixes', env: create(withHost({ Binds: ['/runner:/a', '/var/runtime:/b', '/run2:/c', '/procfs-data:/d', '/srv/run/docker.sock:/e'] })) },
    { name: 'Mounts volume and tmpfs at /run', env: create(withHost({ Mounts: [{ Type: 'volume', Source: 'v', Target: '/var/run' }, { Type: 'tmpfs', Target: '/run' }] })) },
    { name: 'Tmpfs at /run', env: create(withHost({ Tmpfs: { '/run': 'rw' } })) },
    { name: 'bind volume of /srv/data', env: volume({ Name: 'b', DriverOpts: { type: 'none', o: 'bind', device: '/srv/data' } }) },
    { name: 'a plain volume', env: volume({ Name: 'data', Labels: { device: '/run' } }) },
    { name: 'swarm service bind of /srv/data', env: service(task({ Mounts: [{ Type: 'bind', Source: '/srv/data', Target: '/d' }] })) },
  ],
};

describe('each hardening rule', () => {
  for (const rule of HARDENING_RULES) {
    describe(rule, () => {
      for (const c of DENIED[rule]) {
        test(`denies: ${c.name}`, () => {
          const d = decide(JSON.stringify(c.env), denying([rule]));
          assert.equal(d.decision, 'deny', d.reason);
          assert.equal(d.rule, rule, d.reason);
          assert.match(d.reason, new RegExp(`\\(rule ${rule}, enabled by --deny ${rule}\\)$`));
          // Off, the same call passes (the core rules have nothing against it).
          assert.equal(decide(JSON.stringify(c.env), DEFAULT_POLICY).decision, 'allow');
        });
      }
      for (const c of ALLOWED[rule]) {
        test(`allows: ${c.name}`, () => {
          const d = decide(JSON.stringify(c.env), denying([rule]));
          assert.equal(d.decision, 'allow', d.reason);
        });
      }
    });
  }
});

describe('--harden', () => {
  test('turns every rule on, naming --harden', () => {
    for (const rule of HARDENING_RULES) {
      const d = decide(JSON.stringify(DENIED[rule][0]!.env), HARDEN);
      assert.equal(d.decision, 'deny');
      assert.equal(d.rule, rule);
      assert.match(d.reason, new RegExp(`\\(rule ${rule}, enabled by --harden\\)$`));
    }
  });

  test('lets an ordinary non-root container through', () => {
    const body = withHost(
      { Binds: ['/srv/data:/data', 'cache:/cache'], NetworkMode: 'bridge', CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], Tmpfs: { '/run': '' } },
      { Env: ['Privileged=1'], Labels: { role: 'web' } },
    );
    assert.equal(decide(JSON.stringify(create(body)), HARDEN).decision, 'allow');
    assert.equal(decide(JSON.stringify(exec({ Cmd: ['ls'], User: 'nobody' })), HARDEN).decision, 'allow');
    assert.equal(decide(JSON.stringify(volume({ Name: 'data' })), HARDEN).decision, 'allow');
    assert.equal(decide(JSON.stringify(build('t=app')), HARDEN).decision, 'allow');
    assert.equal(decide(JSON.stringify(envelope('GET', '/v1.41/containers/json')), HARDEN).decision, 'allow');
  });

  test('the command line maps flags to the text quoted in refusals', () => {
    const harden = parseServeArgs(['--harden']);
    assert.equal(harden.kind, 'serve');
    if (harden.kind !== 'serve') return;
    assert.deepEqual([...harden.options.policy.deny.keys()].sort(), [...HARDENING_RULES].sort());
    assert.ok([...harden.options.policy.deny.values()].every((f) => f === '--harden'));
    const some = parseServeArgs(['--deny', 'privileged,root-user', '--deny', 'devices']);
    assert.equal(some.kind, 'serve');
    if (some.kind !== 'serve') return;
    assert.deepEqual(Object.fromEntries(some.options.policy.deny), {
      privileged: '--deny privileged',
      'root-user': '--deny root-user',
      devices: '--deny devices',
    });
  });
});

describe('rules are independent', () => {
  test('a rule that is off lets its request through while others are on', () => {
    const othersOn = denying(HARDENING_RULES.filter((r) => r !== 'privileged'));
    assert.equal(decide(JSON.stringify(create(withHost({ Privileged: true }))), othersOn).decision, 'allow');
    const noRoot = denying(HARDENING_RULES.filter((r) => r !== 'root-user'));
    assert.equal(decide(JSON.stringify(create({ Image: 'b', User: '0' })), noRoot).decision, 'allow');
  });
});

describe('exemptions and audit-only', () => {
  const hostile = JSON.stringify(create(withHost({ Privileged: true })));
  test('--allow-user exempts a TLS user from hardening rules, and only that user', () => {
    const options = { ...HARDEN, allowUsers: new Set(['alice']) };
    const alice = decide(JSON.stringify(envelope('POST', '/v1.41/containers/create', text(withHost({ Privileged: true })), undefined, 'alice')), options);
    assert.equal(alice.allow, true);
    assert.equal(alice.exempt, true);
    assert.equal(alice.rule, 'privileged');
    const bob = decide(JSON.stringify(envelope('POST', '/v1.41/containers/create', text(withHost({ Privileged: true })), undefined, 'bob')), options);
    assert.equal(bob.decision, 'deny');
    assert.equal(decide(hostile, options).decision, 'deny');
  });
  test('--audit-only logs would-deny and allows', () => {
    const d = decide(hostile, { ...HARDEN, auditOnly: true });
    assert.equal(d.allow, true);
    assert.equal(d.decision, 'would-deny');
    assert.equal(d.rule, 'privileged');
  });
});

describe('fail closed on bodies the plugin cannot read', () => {
  const onlyPrivileged = denying(['privileged']);
  const invisibleExec = envelope('POST', '/v1.41/containers/abc/exec', null, {});
  const invisibleCreate = envelope('POST', '/v1.41/containers/create', null, {});

  test('exec create with an invisible body is denied when any rule is on', () => {
    for (const rule of HARDENING_RULES) {
      const d = decide(JSON.stringify(invisibleExec), denying([rule]));
      assert.equal(d.decision, 'deny', rule);
      assert.equal(d.rule, 'body-not-visible');
      assert.match(d.reason, new RegExp(`--deny ${rule}`));
    }
    assert.equal(decide(JSON.stringify(invisibleExec), DEFAULT_POLICY).decision, 'allow');
  });

  test('exec create with an unparseable body is denied', () => {
    for (const body of ['{"Privileged":true', '[{"Privileged":true}]', '{"User":"0"} trailing']) {
      const d = decide(JSON.stringify(exec(body)), onlyPrivileged);
      assert.equal(d.decision, 'deny', body);
      assert.equal(d.rule, 'body-not-json');
    }
  });

  test('create with an invisible or unparseable body is denied', () => {
    assert.equal(decide(JSON.stringify(invisibleCreate), HARDEN).rule, 'body-not-visible');
    assert.equal(decide(JSON.stringify(create('{"HostConfig":')), HARDEN).rule, 'body-not-json');
  });

  test('volume create: unreadable bodies are denied only while a rule reads volumes', () => {
    const invisible = JSON.stringify(envelope('POST', '/v1.41/volumes/create', null, { 'Content-Type': 'text/plain' }));
    assert.equal(decide(invisible, denying(['docker-socket'])).rule, 'body-not-visible');
    assert.equal(decide(invisible, denying(['devices'])).rule, 'body-not-visible');
    assert.equal(decide(invisible, onlyPrivileged).decision, 'allow');
  });

  test('service create with an invisible body is denied while a rule reads services', () => {
    const invisible = JSON.stringify(envelope('POST', '/v1.41/services/create', null, {}));
    const d = decide(invisible, { ...denying(['root-user']), allowPluginInstall: true });
    assert.equal(d.rule, 'body-not-visible');
    assert.equal(decide(invisible, { ...onlyPrivileged, allowPluginInstall: true }).decision, 'allow');
  });
});

describe('engine socket paths', () => {
  test('cleanPath follows Go path.Clean for absolute paths', () => {
    assert.equal(cleanPath('//run/./docker/../docker.sock/'), '/run/docker.sock');
    assert.equal(cleanPath('/../..'), '/');
    assert.equal(cleanPath('run'), '/run');
  });
  test('exposesEngineSocket', () => {
    for (const p of ['/', '/run', '/var', '/var/run/', '/run/docker.sock', '/proc', '/proc/1/root/run', '/run/docker/plugins', '/var/run/docker/containerd/containerd.sock']) {
      assert.equal(exposesEngineSocket(p), true, p);
    }
    for (const p of ['/srv', '/home/u', '/runx', '/run/user/1000', '/var/lib/docker/volumes', '/tmp']) {
      assert.equal(exposesEngineSocket(p), false, p);
    }
  });
});
