// Request bodies for the policy's differential and table tests: bodies the
// real docker CLI sends, and seeded generators and mutators of hostile ones.
//
// Everything is driven by a small seeded PRNG so a failing body can be
// reproduced from the seed the test prints. Bodies are built as bytes, not
// strings, because invalid UTF-8 inside keys and values is part of the
// grammar. Nothing here decides what a body means: the Go reference decoder
// (test/gojson) is the oracle.

export interface Rng {
  // Uniform in [0, 1).
  next(): number;
  // Uniform integer in [0, n).
  int(n: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
}

// mulberry32: tiny, fast and good enough to explore a grammar.
export function makeRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: (items) => items[int(items.length)]!,
  };
}

// The seed a test runs with: DIFF_SEED when set (to reproduce a failure or to
// explore), else a fixed one so CI runs are repeatable.
export function seedFromEnv(fallback = 0x5eed3): number {
  const v = process.env.DIFF_SEED;
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`DIFF_SEED must be an integer, got ${JSON.stringify(v)}`);
  return n >>> 0;
}

type Piece = string | Buffer;

function bytes(...pieces: Piece[]): Buffer {
  return Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
}

function weighted<T>(rng: Rng, table: ReadonlyArray<readonly [number, () => T]>): T {
  const total = table.reduce((s, [w]) => s + w, 0);
  let r = rng.next() * total;
  for (const [w, make] of table) {
    r -= w;
    if (r < 0) return make();
  }
  return table[table.length - 1]![1]();
}

// ---------------------------------------------------------------------------
// Bodies the docker 20.10.24 CLI really sent, captured byte for byte from
// /usr/bin/docker talking to a socket that recorded its requests. Untouched,
// the non-host ones are ordinary traffic that must keep working.

export interface CliBody {
  readonly argv: string;
  readonly uri: string;
  // HostConfig.UsernsMode is "host" in this body.
  readonly hostUserns: boolean;
  readonly body: string;
}

export const CLI_CREATE_BODIES: readonly CliBody[] = [
  {
    argv: "docker create busybox true",
    uri: "/v1.41/containers/create",
    hostUserns: false,
    body: "{\"Hostname\":\"\",\"Domainname\":\"\",\"User\":\"\",\"AttachStdin\":false,\"AttachStdout\":true,\"AttachStderr\":true,\"Tty\":false,\"OpenStdin\":false,\"StdinOnce\":false,\"Env\":null,\"Cmd\":[\"true\"],\"Image\":\"busybox\",\"Volumes\":{},\"WorkingDir\":\"\",\"Entrypoint\":null,\"OnBuild\":null,\"Labels\":{},\"HostConfig\":{\"Binds\":null,\"ContainerIDFile\":\"\",\"LogConfig\":{\"Type\":\"\",\"Config\":{}},\"NetworkMode\":\"default\",\"PortBindings\":{},\"RestartPolicy\":{\"Name\":\"no\",\"MaximumRetryCount\":0},\"AutoRemove\":false,\"VolumeDriver\":\"\",\"VolumesFrom\":null,\"CapAdd\":null,\"CapDrop\":null,\"CgroupnsMode\":\"\",\"Dns\":[],\"DnsOptions\":[],\"DnsSearch\":[],\"ExtraHosts\":null,\"GroupAdd\":null,\"IpcMode\":\"\",\"Cgroup\":\"\",\"Links\":null,\"OomScoreAdj\":0,\"PidMode\":\"\",\"Privileged\":false,\"PublishAllPorts\":false,\"ReadonlyRootfs\":false,\"SecurityOpt\":null,\"UTSMode\":\"\",\"UsernsMode\":\"\",\"ShmSize\":0,\"ConsoleSize\":[0,0],\"Isolation\":\"\",\"CpuShares\":0,\"Memory\":0,\"NanoCpus\":0,\"CgroupParent\":\"\",\"BlkioWeight\":0,\"BlkioWeightDevice\":[],\"BlkioDeviceReadBps\":null,\"BlkioDeviceWriteBps\":null,\"BlkioDeviceReadIOps\":null,\"BlkioDeviceWriteIOps\":null,\"CpuPeriod\":0,\"CpuQuota\":0,\"CpuRealtimePeriod\":0,\"CpuRealtimeRuntime\":0,\"CpusetCpus\":\"\",\"CpusetMems\":\"\",\"Devices\":[],\"DeviceCgroupRules\":null,\"DeviceRequests\":null,\"KernelMemory\":0,\"KernelMemoryTCP\":0,\"MemoryReservation\":0,\"MemorySwap\":0,\"MemorySwappiness\":-1,\"OomKillDisable\":false,\"PidsLimit\":0,\"Ulimits\":null,\"CpuCount\":0,\"CpuPercent\":0,\"IOMaximumIOps\":0,\"IOMaximumBandwidth\":0,\"MaskedPaths\":null,\"ReadonlyPaths\":null},\"NetworkingConfig\":{\"EndpointsConfig\":{}}}\n",
  },
  {
    argv: "docker create --name web -p 8080:80 -e A=b -e UsernsMode=host -l UsernsMode=host -l com.example=1 -v /tmp/data:/data:ro --restart unless-stopped -w /srv --user 1000:1000 --memory 64m --cpus 0.5 busybox sh -c 'echo hi'",
    uri: "/v1.41/containers/create?name=web",
    hostUserns: false,
    body: "{\"Hostname\":\"\",\"Domainname\":\"\",\"User\":\"1000:1000\",\"AttachStdin\":false,\"AttachStdout\":true,\"AttachStderr\":true,\"ExposedPorts\":{\"80/tcp\":{}},\"Tty\":false,\"OpenStdin\":false,\"StdinOnce\":false,\"Env\":[\"A=b\",\"UsernsMode=host\"],\"Cmd\":[\"sh\",\"-c\",\"echo hi\"],\"Image\":\"busybox\",\"Volumes\":{},\"WorkingDir\":\"/srv\",\"Entrypoint\":null,\"OnBuild\":null,\"Labels\":{\"UsernsMode\":\"host\",\"com.example\":\"1\"},\"HostConfig\":{\"Binds\":[\"/tmp/data:/data:ro\"],\"ContainerIDFile\":\"\",\"LogConfig\":{\"Type\":\"\",\"Config\":{}},\"NetworkMode\":\"default\",\"PortBindings\":{\"80/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"8080\"}]},\"RestartPolicy\":{\"Name\":\"unless-stopped\",\"MaximumRetryCount\":0},\"AutoRemove\":false,\"VolumeDriver\":\"\",\"VolumesFrom\":null,\"CapAdd\":null,\"CapDrop\":null,\"CgroupnsMode\":\"\",\"Dns\":[],\"DnsOptions\":[],\"DnsSearch\":[],\"ExtraHosts\":null,\"GroupAdd\":null,\"IpcMode\":\"\",\"Cgroup\":\"\",\"Links\":null,\"OomScoreAdj\":0,\"PidMode\":\"\",\"Privileged\":false,\"PublishAllPorts\":false,\"ReadonlyRootfs\":false,\"SecurityOpt\":null,\"UTSMode\":\"\",\"UsernsMode\":\"\",\"ShmSize\":0,\"ConsoleSize\":[0,0],\"Isolation\":\"\",\"CpuShares\":0,\"Memory\":67108864,\"NanoCpus\":500000000,\"CgroupParent\":\"\",\"BlkioWeight\":0,\"BlkioWeightDevice\":[],\"BlkioDeviceReadBps\":null,\"BlkioDeviceWriteBps\":null,\"BlkioDeviceReadIOps\":null,\"BlkioDeviceWriteIOps\":null,\"CpuPeriod\":0,\"CpuQuota\":0,\"CpuRealtimePeriod\":0,\"CpuRealtimeRuntime\":0,\"CpusetCpus\":\"\",\"CpusetMems\":\"\",\"Devices\":[],\"DeviceCgroupRules\":null,\"DeviceRequests\":null,\"KernelMemory\":0,\"KernelMemoryTCP\":0,\"MemoryReservation\":0,\"MemorySwap\":0,\"MemorySwappiness\":-1,\"OomKillDisable\":false,\"PidsLimit\":0,\"Ulimits\":null,\"CpuCount\":0,\"CpuPercent\":0,\"IOMaximumIOps\":0,\"IOMaximumBandwidth\":0,\"MaskedPaths\":null,\"ReadonlyPaths\":null},\"NetworkingConfig\":{\"EndpointsConfig\":{}}}\n",
  },
  {
    argv: "docker create --userns=host busybox true",
    uri: "/v1.41/containers/create",
    hostUserns: true,
    body: "{\"Hostname\":\"\",\"Domainname\":\"\",\"User\":\"\",\"AttachStdin\":false,\"AttachStdout\":true,\"AttachStderr\":true,\"Tty\":false,\"OpenStdin\":false,\"StdinOnce\":false,\"Env\":null,\"Cmd\":[\"true\"],\"Image\":\"busybox\",\"Volumes\":{},\"WorkingDir\":\"\",\"Entrypoint\":null,\"OnBuild\":null,\"Labels\":{},\"HostConfig\":{\"Binds\":null,\"ContainerIDFile\":\"\",\"LogConfig\":{\"Type\":\"\",\"Config\":{}},\"NetworkMode\":\"default\",\"PortBindings\":{},\"RestartPolicy\":{\"Name\":\"no\",\"MaximumRetryCount\":0},\"AutoRemove\":false,\"VolumeDriver\":\"\",\"VolumesFrom\":null,\"CapAdd\":null,\"CapDrop\":null,\"CgroupnsMode\":\"\",\"Dns\":[],\"DnsOptions\":[],\"DnsSearch\":[],\"ExtraHosts\":null,\"GroupAdd\":null,\"IpcMode\":\"\",\"Cgroup\":\"\",\"Links\":null,\"OomScoreAdj\":0,\"PidMode\":\"\",\"Privileged\":false,\"PublishAllPorts\":false,\"ReadonlyRootfs\":false,\"SecurityOpt\":null,\"UTSMode\":\"\",\"UsernsMode\":\"host\",\"ShmSize\":0,\"ConsoleSize\":[0,0],\"Isolation\":\"\",\"CpuShares\":0,\"Memory\":0,\"NanoCpus\":0,\"CgroupParent\":\"\",\"BlkioWeight\":0,\"BlkioWeightDevice\":[],\"BlkioDeviceReadBps\":null,\"BlkioDeviceWriteBps\":null,\"BlkioDeviceReadIOps\":null,\"BlkioDeviceWriteIOps\":null,\"CpuPeriod\":0,\"CpuQuota\":0,\"CpuRealtimePeriod\":0,\"CpuRealtimeRuntime\":0,\"CpusetCpus\":\"\",\"CpusetMems\":\"\",\"Devices\":[],\"DeviceCgroupRules\":null,\"DeviceRequests\":null,\"KernelMemory\":0,\"KernelMemoryTCP\":0,\"MemoryReservation\":0,\"MemorySwap\":0,\"MemorySwappiness\":-1,\"OomKillDisable\":false,\"PidsLimit\":0,\"Ulimits\":null,\"CpuCount\":0,\"CpuPercent\":0,\"IOMaximumIOps\":0,\"IOMaximumBandwidth\":0,\"MaskedPaths\":null,\"ReadonlyPaths\":null},\"NetworkingConfig\":{\"EndpointsConfig\":{}}}\n",
  },
  {
    argv: "docker create --userns= -it --rm --network none --cap-drop ALL --security-opt no-new-privileges --read-only --tmpfs /run --mount type=volume,source=vol1,target=/v busybox sh",
    uri: "/v1.41/containers/create",
    hostUserns: false,
    body: "{\"Hostname\":\"\",\"Domainname\":\"\",\"User\":\"\",\"AttachStdin\":true,\"AttachStdout\":true,\"AttachStderr\":true,\"Tty\":true,\"OpenStdin\":true,\"StdinOnce\":true,\"Env\":null,\"Cmd\":[\"sh\"],\"Image\":\"busybox\",\"Volumes\":{},\"WorkingDir\":\"\",\"Entrypoint\":null,\"OnBuild\":null,\"Labels\":{},\"HostConfig\":{\"Binds\":null,\"ContainerIDFile\":\"\",\"LogConfig\":{\"Type\":\"\",\"Config\":{}},\"NetworkMode\":\"none\",\"PortBindings\":{},\"RestartPolicy\":{\"Name\":\"no\",\"MaximumRetryCount\":0},\"AutoRemove\":true,\"VolumeDriver\":\"\",\"VolumesFrom\":null,\"CapAdd\":null,\"CapDrop\":[\"ALL\"],\"CgroupnsMode\":\"\",\"Dns\":[],\"DnsOptions\":[],\"DnsSearch\":[],\"ExtraHosts\":null,\"GroupAdd\":null,\"IpcMode\":\"\",\"Cgroup\":\"\",\"Links\":null,\"OomScoreAdj\":0,\"PidMode\":\"\",\"Privileged\":false,\"PublishAllPorts\":false,\"ReadonlyRootfs\":true,\"SecurityOpt\":[\"no-new-privileges\"],\"Tmpfs\":{\"/run\":\"\"},\"UTSMode\":\"\",\"UsernsMode\":\"\",\"ShmSize\":0,\"ConsoleSize\":[0,0],\"Isolation\":\"\",\"CpuShares\":0,\"Memory\":0,\"NanoCpus\":0,\"CgroupParent\":\"\",\"BlkioWeight\":0,\"BlkioWeightDevice\":[],\"BlkioDeviceReadBps\":null,\"BlkioDeviceWriteBps\":null,\"BlkioDeviceReadIOps\":null,\"BlkioDeviceWriteIOps\":null,\"CpuPeriod\":0,\"CpuQuota\":0,\"CpuRealtimePeriod\":0,\"CpuRealtimeRuntime\":0,\"CpusetCpus\":\"\",\"CpusetMems\":\"\",\"Devices\":[],\"DeviceCgroupRules\":null,\"DeviceRequests\":null,\"KernelMemory\":0,\"KernelMemoryTCP\":0,\"MemoryReservation\":0,\"MemorySwap\":0,\"MemorySwappiness\":-1,\"OomKillDisable\":false,\"PidsLimit\":0,\"Ulimits\":null,\"CpuCount\":0,\"CpuPercent\":0,\"IOMaximumIOps\":0,\"IOMaximumBandwidth\":0,\"Mounts\":[{\"Type\":\"volume\",\"Source\":\"vol1\",\"Target\":\"/v\"}],\"MaskedPaths\":null,\"ReadonlyPaths\":null},\"NetworkingConfig\":{\"EndpointsConfig\":{}}}\n",
  },
  {
    argv: "docker create --userns=host --privileged --pid=host busybox true",
    uri: "/v1.41/containers/create",
    hostUserns: true,
    body: "{\"Hostname\":\"\",\"Domainname\":\"\",\"User\":\"\",\"AttachStdin\":false,\"AttachStdout\":true,\"AttachStderr\":true,\"Tty\":false,\"OpenStdin\":false,\"StdinOnce\":false,\"Env\":null,\"Cmd\":[\"true\"],\"Image\":\"busybox\",\"Volumes\":{},\"WorkingDir\":\"\",\"Entrypoint\":null,\"OnBuild\":null,\"Labels\":{},\"HostConfig\":{\"Binds\":null,\"ContainerIDFile\":\"\",\"LogConfig\":{\"Type\":\"\",\"Config\":{}},\"NetworkMode\":\"default\",\"PortBindings\":{},\"RestartPolicy\":{\"Name\":\"no\",\"MaximumRetryCount\":0},\"AutoRemove\":false,\"VolumeDriver\":\"\",\"VolumesFrom\":null,\"CapAdd\":null,\"CapDrop\":null,\"CgroupnsMode\":\"\",\"Dns\":[],\"DnsOptions\":[],\"DnsSearch\":[],\"ExtraHosts\":null,\"GroupAdd\":null,\"IpcMode\":\"\",\"Cgroup\":\"\",\"Links\":null,\"OomScoreAdj\":0,\"PidMode\":\"host\",\"Privileged\":true,\"PublishAllPorts\":false,\"ReadonlyRootfs\":false,\"SecurityOpt\":null,\"UTSMode\":\"\",\"UsernsMode\":\"host\",\"ShmSize\":0,\"ConsoleSize\":[0,0],\"Isolation\":\"\",\"CpuShares\":0,\"Memory\":0,\"NanoCpus\":0,\"CgroupParent\":\"\",\"BlkioWeight\":0,\"BlkioWeightDevice\":[],\"BlkioDeviceReadBps\":null,\"BlkioDeviceWriteBps\":null,\"BlkioDeviceReadIOps\":null,\"BlkioDeviceWriteIOps\":null,\"CpuPeriod\":0,\"CpuQuota\":0,\"CpuRealtimePeriod\":0,\"CpuRealtimeRuntime\":0,\"CpusetCpus\":\"\",\"CpusetMems\":\"\",\"Devices\":[],\"DeviceCgroupRules\":null,\"DeviceRequests\":null,\"KernelMemory\":0,\"KernelMemoryTCP\":0,\"MemoryReservation\":0,\"MemorySwap\":0,\"MemorySwappiness\":-1,\"OomKillDisable\":false,\"PidsLimit\":0,\"Ulimits\":null,\"CpuCount\":0,\"CpuPercent\":0,\"IOMaximumIOps\":0,\"IOMaximumBandwidth\":0,\"MaskedPaths\":null,\"ReadonlyPaths\":null},\"NetworkingConfig\":{\"EndpointsConfig\":{}}}\n",
  },
  {
    argv: "docker create --health-cmd true --health-interval 5s --entrypoint /bin/sh --add-host a:1.2.3.4 --dns 8.8.8.8 --ulimit nofile=1024:2048 --device-cgroup-rule 'c 1:3 mr' --sysctl net.ipv4.ip_forward=1 --init --stop-signal SIGTERM --stop-timeout 5 -h myhost busybox -c true",
    uri: "/v1.41/containers/create",
    hostUserns: false,
    body: "{\"Hostname\":\"myhost\",\"Domainname\":\"\",\"User\":\"\",\"AttachStdin\":false,\"AttachStdout\":true,\"AttachStderr\":true,\"Tty\":false,\"OpenStdin\":false,\"StdinOnce\":false,\"Env\":null,\"Cmd\":[\"-c\",\"true\"],\"Healthcheck\":{\"Test\":[\"CMD-SHELL\",\"true\"],\"Interval\":5000000000},\"Image\":\"busybox\",\"Volumes\":{},\"WorkingDir\":\"\",\"Entrypoint\":[\"/bin/sh\"],\"OnBuild\":null,\"Labels\":{},\"StopSignal\":\"SIGTERM\",\"StopTimeout\":5,\"HostConfig\":{\"Binds\":null,\"ContainerIDFile\":\"\",\"LogConfig\":{\"Type\":\"\",\"Config\":{}},\"NetworkMode\":\"default\",\"PortBindings\":{},\"RestartPolicy\":{\"Name\":\"no\",\"MaximumRetryCount\":0},\"AutoRemove\":false,\"VolumeDriver\":\"\",\"VolumesFrom\":null,\"CapAdd\":null,\"CapDrop\":null,\"CgroupnsMode\":\"\",\"Dns\":[\"8.8.8.8\"],\"DnsOptions\":[],\"DnsSearch\":[],\"ExtraHosts\":[\"a:1.2.3.4\"],\"GroupAdd\":null,\"IpcMode\":\"\",\"Cgroup\":\"\",\"Links\":null,\"OomScoreAdj\":0,\"PidMode\":\"\",\"Privileged\":false,\"PublishAllPorts\":false,\"ReadonlyRootfs\":false,\"SecurityOpt\":null,\"UTSMode\":\"\",\"UsernsMode\":\"\",\"ShmSize\":0,\"Sysctls\":{\"net.ipv4.ip_forward\":\"1\"},\"ConsoleSize\":[0,0],\"Isolation\":\"\",\"CpuShares\":0,\"Memory\":0,\"NanoCpus\":0,\"CgroupParent\":\"\",\"BlkioWeight\":0,\"BlkioWeightDevice\":[],\"BlkioDeviceReadBps\":null,\"BlkioDeviceWriteBps\":null,\"BlkioDeviceReadIOps\":null,\"BlkioDeviceWriteIOps\":null,\"CpuPeriod\":0,\"CpuQuota\":0,\"CpuRealtimePeriod\":0,\"CpuRealtimeRuntime\":0,\"CpusetCpus\":\"\",\"CpusetMems\":\"\",\"Devices\":[],\"DeviceCgroupRules\":[\"c 1:3 mr\"],\"DeviceRequests\":null,\"KernelMemory\":0,\"KernelMemoryTCP\":0,\"MemoryReservation\":0,\"MemorySwap\":0,\"MemorySwappiness\":-1,\"OomKillDisable\":false,\"PidsLimit\":0,\"Ulimits\":[{\"Name\":\"nofile\",\"Hard\":2048,\"Soft\":1024}],\"CpuCount\":0,\"CpuPercent\":0,\"IOMaximumIOps\":0,\"IOMaximumBandwidth\":0,\"MaskedPaths\":null,\"ReadonlyPaths\":null,\"Init\":true},\"NetworkingConfig\":{\"EndpointsConfig\":{}}}\n",
  },
];

// Benign bodies that look like hostile ones: "UsernsMode" and "host" appear,
// but nowhere the engine reads a user namespace mode from.
export const BENIGN_LOOKALIKES: ReadonlyArray<readonly [name: string, body: string]> = [
  ['label named UsernsMode = host', '{"Image":"busybox","Labels":{"UsernsMode":"host","usernsmode":"host"}}'],
  ['Env entries', '{"Image":"busybox","Env":["UsernsMode=host","HostConfig={\\"UsernsMode\\":\\"host\\"}"]}'],
  ['NetworkingConfig endpoint named UsernsMode', '{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"UsernsMode":{"Aliases":["host"]}}}}'],
  ['unknown key in NetworkingConfig', '{"Image":"busybox","NetworkingConfig":{"UsernsMode":"host"}}'],
  ['explicit empty UsernsMode', '{"Image":"busybox","HostConfig":{"UsernsMode":""}}'],
  ['upper-case HOST is a private namespace', '{"Image":"busybox","HostConfig":{"UsernsMode":"HOST"}}'],
  ['HostConfig nested in HostConfig', '{"Image":"busybox","HostConfig":{"HostConfig":{"UsernsMode":"host"}}}'],
  ['unknown top-level object', '{"Image":"busybox","Spec":{"HostConfig":{"UsernsMode":"host"}}}'],
  ['log and sysctl maps', '{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"json-file","Config":{"UsernsMode":"host"}},"Sysctls":{"UsernsMode":"host"}}}'],
  ['Cmd mentions it', '{"Image":"busybox","Cmd":["sh","-c","echo UsernsMode=host --userns=host"]}'],
  ['dotless i: not HostConfig', '{"Image":"busybox","HostConf\u0131g":{"UsernsMode":"host"}}'],
  ['volume named host', '{"Image":"busybox","Volumes":{"/host":{}},"HostConfig":{"Binds":["host:/host"],"NetworkMode":"default"}}'],
];

// ---------------------------------------------------------------------------
// Key spellings.

// The only non-ASCII runes Go's key matching folds onto ASCII letters.
const FOLDED: Readonly<Record<string, string>> = { s: '\u017f', S: '\u017f', k: '\u212a', K: '\u212a' };

function hex4(rng: Rng, code: number): string {
  const h = code.toString(16).padStart(4, '0');
  return rng.chance(0.5) ? h : h.toUpperCase();
}

// One character as it may appear inside a JSON string: raw or \u-escaped.
function encodeChar(rng: Rng, ch: string, escapeP: number): string {
  const code = ch.charCodeAt(0);
  if (ch === '"' || ch === '\\' || code < 0x20) return `\\u${hex4(rng, code)}`;
  if (ch.length === 1 && rng.chance(escapeP)) return `\\u${hex4(rng, code)}`;
  return ch;
}

// A JSON string literal (quotes included) that Go decodes into the field
// `name`: random ASCII case, U+017F / U+212A for s / k, \u escapes. With
// probability 1 - wild, the plain spelling.
export function spellKey(rng: Rng, name: string, wild = 0.6): Buffer {
  if (!rng.chance(wild)) return Buffer.from(JSON.stringify(name));
  const caseP = rng.next();
  const foldP = rng.chance(0.4) ? 0 : rng.next() * 0.7;
  const escapeP = rng.chance(0.5) ? 0 : rng.next() * 0.6;
  let out = '"';
  for (const c of name) {
    let ch = rng.chance(caseP) ? (rng.chance(0.5) ? c.toLowerCase() : c.toUpperCase()) : c;
    const folded = FOLDED[ch];
    if (folded !== undefined && rng.chance(foldP)) ch = folded;
    out += encodeChar(rng, ch, escapeP);
  }
  return Buffer.from(`${out}"`, 'utf8');
}

// A key that looks like `name` but that Go does NOT decode into it.
export function nearMissKey(rng: Rng, name: string): Buffer {
  const base = spellKey(rng, name, 0.7);
  const inner = base.subarray(1, base.length - 1);
  const around = (at: number, drop: number, what: Piece): Buffer =>
    bytes(base.subarray(0, 1 + at), what, base.subarray(1 + at + drop));
  // Positions of ASCII letters in the literal (escapes and multi-byte runes
  // are left alone so the result stays a near miss, not a different error).
  const letters = (re: RegExp): number[] => {
    const out: number[] = [];
    for (let i = 0; i < inner.length; i++) {
      if (inner[i] === 0x5c) {
        i += inner[i + 1] === 0x75 ? 5 : 1; // skip \uXXXX or \x
        continue;
      }
      if (re.test(String.fromCharCode(inner[i]!))) out.push(i);
    }
    return out;
  };
  const replaceLetter = (re: RegExp, by: Piece): Buffer | null => {
    const at = letters(re);
    return at.length === 0 ? null : around(rng.pick(at), 1, by);
  };
  const variants: Array<() => Buffer | null> = [
    // Turkish dotted / dotless i: Unicode case pairs, but not simple folds onto ASCII.
    () => replaceLetter(/[iI]/, rng.pick(['\u0130', '\u0131', '\\u0130', '\\u0131'])),
    // Sharp s, Cyrillic dze, full-width s, a Kelvin sign in place of s.
    () => replaceLetter(/[sS]/, rng.pick(['\u00df', '\u0455', '\uff53', '\\u00df', '\\u212a', '\u212a'])),
    () => replaceLetter(/[sS]/, Buffer.from([0xc1, 0xb3])), // overlong UTF-8 for 's': invalid
    () => replaceLetter(/[sS]/, Buffer.from([0xc5])), // truncated U+017F
    () => replaceLetter(/[a-zA-Z]/, '\\ud800'), // lone surrogate: U+FFFD
    () => replaceLetter(/[a-zA-Z]/, ''), // a letter dropped
    () => around(rng.int(inner.length + 1), 0, rng.pick(['\u200b', '\\u200b', ' ', '\\u0000', '\\t', '\u00ad', '-', '_'])),
    () => around(rng.int(inner.length + 1), 0, Buffer.from([rng.pick([0x80, 0xbf, 0xfe, 0xff])])), // stray invalid byte
  ];
  for (;;) {
    const made = rng.pick(variants)();
    if (made !== null) return made;
  }
}

// ---------------------------------------------------------------------------
// Values.

function spelledHost(rng: Rng): string {
  const escapeP = 0.2 + rng.next() * 0.8;
  let out = '"';
  for (const c of 'host') out += encodeChar(rng, c, escapeP);
  return `${out}"`;
}

// Anything a UsernsMode key may hold: "host" in many spellings, near misses,
// null (a no-op for a Go string), and values of the wrong type.
export function usernsValue(rng: Rng): Piece {
  return weighted<Piece>(rng, [
    [30, () => '"host"'],
    [10, () => spelledHost(rng)],
    [5, () => rng.pick(['"HOST"', '"Host"', '"hOst"', '"ho\\u0053t"'])],
    [10, () => 'null'],
    [8, () => '""'],
    [4, () => rng.pick(['"private"', '"default"', '"container:x"'])],
    [
      6,
      () =>
        rng.pick<Piece>([
          '" host"',
          '"host "',
          '"host\\u0000"',
          '"ho\\u017ft"',
          '"ho\u017ft"',
          '"host\\n"',
          '"\\ufeffhost"',
          bytes('"h', Buffer.from([0xff]), 'ost"'),
          bytes('"host', Buffer.from([0xc5]), '"'),
        ]),
    ],
    [3, () => rng.pick(['0', 'true', '["host"]', '{"host":"host"}', '-1e3'])],
  ]);
}

// ---------------------------------------------------------------------------
// Objects, arrays and white space.

// Mostly none; sometimes JSON white space; rarely white space JSON does not
// allow (form feed, vertical tab, NBSP), which Go refuses.
function ws(rng: Rng): Piece {
  const r = rng.next();
  if (r < 0.8) return '';
  if (r < 0.9) return ' ';
  if (r < 0.95) return '\n  ';
  if (r < 0.975) return '\t';
  if (r < 0.997) return '\r\n';
  return rng.pick<Piece>(['\f', '\v', Buffer.from([0xc2, 0xa0])]);
}

type Entry = readonly [key: Piece, value: Piece];

function object(rng: Rng, entries: readonly Entry[]): Buffer {
  const parts: Piece[] = ['{', ws(rng)];
  entries.forEach(([k, v], i) => {
    if (i > 0) parts.push(ws(rng), ',', ws(rng));
    parts.push(k, ws(rng), ':', ws(rng), v);
  });
  parts.push(ws(rng), '}');
  return bytes(...parts);
}

function someOf(rng: Rng, min: number, max: number, table: ReadonlyArray<readonly [number, () => Entry]>): Entry[] {
  const n = min + rng.int(max - min + 1);
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) out.push(weighted(rng, table));
  return out;
}

// An object under a HostConfig key: UsernsMode in every spelling, near-miss
// keys, ordinary fields, and look-alikes Go ignores.
function hostConfigObject(rng: Rng, depth: number): Buffer {
  return object(
    rng,
    someOf(rng, 0, 5, [
      [8, () => [spellKey(rng, 'UsernsMode'), usernsValue(rng)]],
      [2, () => [nearMissKey(rng, 'UsernsMode'), '"host"']],
      [1, () => ['"Privileged"', 'false']],
      [1, () => ['"NetworkMode"', rng.pick(['"default"', '"none"'])]],
      [1, () => ['"Binds"', rng.pick(['null', '[]', '["/tmp:/tmp"]'])]],
      [1, () => [spellKey(rng, 'Memory'), rng.pick(['0', '67108864'])]],
      [1, () => ['"LogConfig"', '{"Type":"","Config":{"UsernsMode":"host"}}']],
      [1, () => ['"Sysctls"', '{"UsernsMode":"host"}']],
      [depth < 2 ? 1 : 0, () => ['"HostConfig"', hostConfigObject(rng, depth + 1)]],
    ]),
  );
}

function hostConfigValue(rng: Rng): Piece {
  return weighted<Piece>(rng, [
    [75, () => hostConfigObject(rng, 0)],
    [10, () => 'null'],
    [4, () => '{}'],
    [4, () => rng.pick(['[]', '"host"', '0', 'true'])],
    [3, () => bytes('[', hostConfigObject(rng, 0), ']')],
  ]);
}

function labels(rng: Rng): Buffer {
  return object(rng, [
    [spellKey(rng, 'UsernsMode'), '"host"'],
    ['"com.example"', rng.pick(['"1"', '"host"'])],
  ]);
}

// A create (or legacy start) body from a grammar of hostile variants. Go
// decides what it means; most are well-formed, many say "host".
export function hostileBody(rng: Rng): Buffer {
  const entries = someOf(rng, 1, 7, [
    [2, () => ['"Image"', rng.pick<Piece>(['"busybox"', bytes('"busy', Buffer.from([0xff]), 'box"')])]],
    [6, () => [spellKey(rng, 'HostConfig'), hostConfigValue(rng)]],
    [1, () => [nearMissKey(rng, 'HostConfig'), hostConfigObject(rng, 1)]],
    [3, () => [spellKey(rng, 'UsernsMode'), usernsValue(rng)]],
    [1, () => [nearMissKey(rng, 'UsernsMode'), '"host"']],
    [1, () => ['"Labels"', labels(rng)]],
    [1, () => ['"Env"', '["UsernsMode=host","HostConfig={\\"UsernsMode\\":\\"host\\"}"]']],
    [1, () => ['"NetworkingConfig"', rng.pick(['{"EndpointsConfig":{"UsernsMode":{"Aliases":["host"]}}}', '{"UsernsMode":"host"}'])]],
    [1, () => ['"Cmd"', rng.pick(['["true"]', '"true"', 'null'])]],
    [1, () => [rng.pick(['"Spec"', '"Config"', '"X-HostConfig"', '"Hostconfigs"']), `{"HostConfig":{"UsernsMode":"host"},"UsernsMode":"host"}`]],
    [1, () => [spellKey(rng, 'Memory'), rng.pick(['0', '64'])]], // a deprecated top-level HostConfig field
    [0.5, () => ['"Cpuset"', '""']],
  ]);
  const value = rng.chance(0.02)
    ? rng.pick<Piece>(['null', '[]', '"host"', '{"HostConfig":{"UsernsMode":"host"}', '[{"UsernsMode":"host"}]'])
    : object(rng, entries);
  return frame(rng, value);
}

// What may surround the value: a BOM, white space, trailing data.
function frame(rng: Rng, value: Piece): Buffer {
  const lead: Piece = rng.chance(0.02) ? Buffer.from([0xef, 0xbb, 0xbf]) : rng.chance(0.1) ? ' \n\t' : '';
  const trail = weighted<Piece>(rng, [
    [70, () => ''],
    [10, () => '\n'],
    [
      20,
      () =>
        rng.pick<Piece>([
          ' ',
          'x',
          '}',
          '{}',
          ',',
          '\u0000',
          ' {"HostConfig":{"UsernsMode":"host"}}',
          '{"UsernsMode":"host"}',
          Buffer.from([0xff]),
        ]),
    ],
  ]);
  return bytes(lead, value, trail);
}

// ---------------------------------------------------------------------------
// Mutations of realistic bodies.

// A JSON document as a tree whose objects keep every entry, in order, with
// their keys as raw literal bytes, so a mutation can duplicate or respell keys.
type Tree =
  | { readonly t: 'obj'; readonly entries: Array<[key: Buffer, value: Tree]> }
  | { readonly t: 'arr'; readonly items: Tree[] }
  | { readonly t: 'raw'; readonly text: Piece };

function toTree(v: unknown): Tree {
  if (Array.isArray(v)) return { t: 'arr', items: v.map(toTree) };
  if (typeof v === 'object' && v !== null) {
    return { t: 'obj', entries: Object.entries(v).map(([k, x]) => [Buffer.from(JSON.stringify(k)), toTree(x)]) };
  }
  return { t: 'raw', text: JSON.stringify(v) };
}

function serialize(rng: Rng, tree: Tree): Buffer {
  if (tree.t === 'raw') return bytes(tree.text);
  if (tree.t === 'arr') {
    const parts: Piece[] = ['[', ws(rng)];
    tree.items.forEach((item, i) => parts.push(...(i > 0 ? [',', ws(rng)] : []), serialize(rng, item)));
    return bytes(...parts, ws(rng), ']');
  }
  return object(
    rng,
    tree.entries.map(([k, v]) => [k, serialize(rng, v)] as const),
  );
}

function objectsIn(tree: Tree, out: Array<Extract<Tree, { t: 'obj' }>> = []): Array<Extract<Tree, { t: 'obj' }>> {
  if (tree.t === 'obj') {
    out.push(tree);
    for (const [, v] of tree.entries) objectsIn(v, out);
  } else if (tree.t === 'arr') {
    for (const v of tree.items) objectsIn(v, out);
  }
  return out;
}

function keyName(key: Buffer): string {
  try {
    return String(JSON.parse(key.toString('utf8')));
  } catch {
    return key.toString('utf8');
  }
}

// Structural edits of the kind that confuse a plugin: duplicated and
// respelled keys, a second HostConfig, the deprecated top-level field, null.
function mutateTree(rng: Rng, root: Extract<Tree, { t: 'obj' }>): void {
  const objects = objectsIn(root);
  const hostConfigs = root.entries.filter(([k, v]) => keyName(k).toLowerCase() === 'hostconfig' && v.t === 'obj');
  const ops: Array<() => void> = [
    () => {
      // Duplicate an entry (maybe respelled) somewhere in its own object.
      const o = rng.pick(objects);
      if (o.entries.length === 0) return;
      const [k, v] = rng.pick(o.entries);
      const key = rng.chance(0.5) ? spellKey(rng, keyName(k)) : k;
      o.entries.splice(rng.int(o.entries.length + 1), 0, [key, v]);
    },
    () => {
      const o = rng.pick(objects);
      if (o.entries.length === 0) return;
      const i = rng.int(o.entries.length);
      o.entries[i] = [spellKey(rng, keyName(o.entries[i]![0]), 1), o.entries[i]![1]];
    },
    () => {
      // Set UsernsMode in an existing HostConfig, or next to it.
      const target = hostConfigs.length > 0 ? (rng.pick(hostConfigs)[1] as Extract<Tree, { t: 'obj' }>) : root;
      target.entries.splice(rng.int(target.entries.length + 1), 0, [spellKey(rng, 'UsernsMode'), { t: 'raw', text: usernsValue(rng) }]);
    },
    () => root.entries.splice(rng.int(root.entries.length + 1), 0, [spellKey(rng, 'UsernsMode'), { t: 'raw', text: usernsValue(rng) }]),
    () => root.entries.splice(rng.int(root.entries.length + 1), 0, [spellKey(rng, 'HostConfig'), { t: 'raw', text: hostConfigValue(rng) }]),
    () => {
      const i = root.entries.findIndex(([k]) => keyName(k).toLowerCase() === 'hostconfig');
      if (i >= 0) root.entries[i] = [root.entries[i]![0], { t: 'raw', text: rng.pick(['null', '{}']) }];
    },
    () => {
      const o = rng.pick(objects);
      if (o.entries.length > 0) o.entries.splice(rng.int(o.entries.length), 1);
    },
    () => {
      const o = rng.pick(objects);
      if (o.entries.length < 2) return;
      const i = rng.int(o.entries.length);
      const j = rng.int(o.entries.length);
      [o.entries[i], o.entries[j]] = [o.entries[j]!, o.entries[i]!];
    },
  ];
  const n = 1 + rng.int(3);
  for (let i = 0; i < n; i++) rng.pick(ops)();
}

// Snippets that turn into a host request when they land in the right place.
function hostileSnippet(rng: Rng): Piece {
  return rng.pick<() => Piece>([
    () => bytes(spellKey(rng, 'UsernsMode'), ':', usernsValue(rng), ','),
    () => bytes(',', spellKey(rng, 'UsernsMode'), ':', usernsValue(rng)),
    () => bytes(spellKey(rng, 'HostConfig'), ':', hostConfigObject(rng, 0), ','),
    () => '"host"',
    () => 'null,',
    () => Buffer.from([rng.int(256)]),
  ])();
}

const FLIP_BYTES = [0x22, 0x5c, 0x2c, 0x3a, 0x7b, 0x7d, 0x5b, 0x5d, 0x20, 0x00, 0xff, 0xc5, 0x6e];

// Byte-level damage: flips, deletions, insertions at structural positions,
// duplicated ranges. Most results are not JSON; some are, in surprising ways.
export function mutateBytes(rng: Rng, input: Buffer): Buffer {
  let buf: Buffer = Buffer.from(input);
  const n = 1 + rng.int(3);
  for (let i = 0; i < n; i++) {
    const at = rng.int(buf.length + 1);
    const op = rng.int(5);
    if (op === 0 && buf.length > 0) {
      const p = Math.min(at, buf.length - 1);
      const b = buf[p]!;
      const isLetter = (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7a;
      buf[p] = isLetter && rng.chance(0.5) ? b ^ 0x20 : rng.chance(0.5) ? rng.pick(FLIP_BYTES) : 0x20 + rng.int(0x5f);
    } else if (op === 1) {
      buf = Buffer.concat([buf.subarray(0, at), buf.subarray(Math.min(buf.length, at + 1 + rng.int(8)))]);
    } else if (op === 2 || op === 3) {
      // After a '{' or ',' a snippet has a fair chance of staying valid JSON.
      const structural: number[] = [];
      for (let p = 0; p < buf.length; p++) if (buf[p] === 0x7b || buf[p] === 0x2c) structural.push(p + 1);
      const p = op === 2 && structural.length > 0 ? rng.pick(structural) : at;
      buf = bytes(buf.subarray(0, p), hostileSnippet(rng), buf.subarray(p));
    } else {
      const from = rng.int(buf.length + 1);
      const len = rng.int(40);
      buf = bytes(buf.subarray(0, at), buf.subarray(from, from + len), buf.subarray(at));
    }
  }
  return buf;
}

// A realistic CLI body, structurally and/or byte-wise mutated.
export function mutatedCliBody(rng: Rng): { readonly from: string; readonly body: Buffer } {
  const cli = rng.pick(CLI_CREATE_BODIES);
  const tree = toTree(JSON.parse(cli.body));
  if (tree.t !== 'obj') throw new Error('CLI body is not an object');
  const mode = rng.int(3);
  if (mode !== 1) mutateTree(rng, tree);
  let body = mode === 1 ? Buffer.from(cli.body) : frame(rng, serialize(rng, tree));
  if (mode !== 0) body = mutateBytes(rng, body);
  return { from: cli.argv, body };
}
