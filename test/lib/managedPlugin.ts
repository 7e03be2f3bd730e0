// Managed (v2) Docker plugins built from scratch, to show what installing one
// means on a userns-remapped engine: the engine runs it as real root in the
// host user namespace with the mounts and capabilities its config asks for.
//
// The plugin writes its own /proc/self/uid_map into a host directory it binds,
// which is the evidence a test reads. It never serves a plugin API: it links
// its socket to a listener the test owns on the host, so `enable` returns as
// soon as the engine can dial it instead of after the engine's retries.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const BUSYBOX = '/bin/busybox';
export const HOST_ROOT_UID_MAP = '0 0 4294967295';

export interface PluginSpec {
  // Host directory the plugin binds at /out and writes uid_map into.
  readonly outDir: string;
  // Host path of a listening unix socket the plugin's socket links to.
  readonly listener: string;
  // File under outDir the plugin writes its uid_map to, so two images of one
  // plugin (before and after an upgrade) leave different evidence.
  readonly mark: string;
}

// The config.json of a plugin that proves where it runs. Its mount source is
// settable, so `plugin set out.source=...` can point it elsewhere.
export function pluginConfig(spec: PluginSpec): Record<string, unknown> {
  const script = [
    `cat /proc/self/uid_map > /out/${spec.mark}`,
    `ln -s ${spec.listener} /run/docker/plugins/x.sock`,
    'exec sleep 1000000',
  ].join('; ');
  return {
    Description: 'userns-guard e2e probe',
    Documentation: 'https://example.invalid/userns-guard',
    Entrypoint: ['/bin/sh', '-c', script],
    Env: [{ Name: 'PATH', Description: '', Settable: null, Value: '/bin' }],
    Interface: { Types: ['docker.dummy/1.0'], Socket: 'x.sock' },
    Network: { Type: 'host' },
    Mounts: [
      { Name: 'out', Description: 'evidence', Settable: ['source'], Source: spec.outDir, Destination: '/out', Type: 'bind', Options: ['rbind', 'rw'] },
    ],
    Linux: { Capabilities: ['CAP_SYS_ADMIN'], AllowAllDevices: false, Devices: null },
  };
}

// What the engine makes a client accept before it pulls this plugin
// (moby's computePrivileges), for the body of POST /plugins/pull.
export function pluginPrivileges(spec: PluginSpec): { Name: string; Description: string; Value: string[] }[] {
  return [
    { Name: 'network', Description: 'permissions to access a network', Value: ['host'] },
    { Name: 'mount', Description: 'host path to mount', Value: [spec.outDir] },
    { Name: 'capabilities', Description: 'list of additional capabilities required', Value: ['CAP_SYS_ADMIN'] },
  ];
}

// A busybox rootfs with the mount points the config needs.
export function buildRootfs(dir: string): string {
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'out', 'run/docker/plugins', 'proc', 'dev', 'sys', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  for (const applet of ['sh', 'cat', 'ln', 'sleep']) symlinkSync('busybox', join(rootfs, 'bin', applet));
  return rootfs;
}

// The body of POST /plugins/create: a tar holding config.json and rootfs/
// (moby's splitConfigRootFSFromTar), as `docker plugin create` sends it.
export function pluginCreateTar(workDir: string, rootfs: string, spec: PluginSpec): Buffer {
  const ctx = join(workDir, `ctx-${createHash('sha256').update(spec.outDir + spec.mark).digest('hex').slice(0, 12)}`);
  mkdirSync(join(ctx, 'rootfs'), { recursive: true });
  writeFileSync(join(ctx, 'config.json'), JSON.stringify(pluginConfig(spec)));
  // The engine keeps each plugin's rootfs as a content blob and refuses a
  // second create whose rootfs is byte-identical ("already exists").
  writeFileSync(join(ctx, 'rootfs', 'probe-id'), `${spec.outDir}/${spec.mark}\n`);
  return tarOf(['-C', ctx, 'config.json', 'rootfs/probe-id', '-C', join(rootfs, '..'), 'rootfs']);
}

function tarOf(args: string[]): Buffer {
  const r = spawnSync('tar', ['--owner=0', '--group=0', '-cf', '-', ...args], { maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr.toString()}`);
  return r.stdout;
}

export function readEvidence(spec: PluginSpec): string | null {
  try {
    return readFileSync(join(spec.outDir, spec.mark), 'utf8').trim().split(/\s+/).join(' ');
  } catch {
    return null;
  }
}

// A host unix socket the plugins' sockets link to; the engine only dials it.
export async function startListener(path: string): Promise<{ close(): Promise<void> }> {
  const server = net.createServer((c) => c.destroy());
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
  chmodSync(path, 0o666);
  return { close: () => new Promise((resolve) => server.close(() => resolve())) };
}

// ---------------------------------------------------------------------------
// A registry holding plugin images, so pull and upgrade are real installs.
// 127.0.0.0/8 registries are insecure by default: the engine tries https,
// fails, and falls back to plain http.

export interface PluginRegistry {
  // host:port to put in front of a repository name.
  readonly host: string;
  readonly requests: string[];
  stop(): Promise<void>;
}

export async function startPluginRegistry(rootfs: string, images: Record<string, PluginSpec>): Promise<PluginRegistry> {
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, Buffer>();
  const add = (b: Buffer) => {
    const d = `sha256:${createHash('sha256').update(b).digest('hex')}`;
    blobs.set(d, b);
    return d;
  };
  const layer = tarOf(['-C', rootfs, '.']);
  const diffId = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
  const gz = gzipSync(layer);
  const layerDigest = add(gz);
  for (const [repoTag, spec] of Object.entries(images)) {
    const config = Buffer.from(JSON.stringify({ ...pluginConfig(spec), rootfs: { type: 'layers', diff_ids: [diffId] } }));
    const configDigest = add(config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: { mediaType: 'application/vnd.docker.plugin.v1+json', size: config.length, digest: configDigest },
        layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: gz.length, digest: layerDigest }],
      }),
    );
    const [repo, tag] = repoTag.split(':') as [string, string];
    manifests.set(`${repo}/manifests/${tag}`, manifest);
    manifests.set(`${repo}/manifests/sha256:${createHash('sha256').update(manifest).digest('hex')}`, manifest);
  }

  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const url = (req.url ?? '').split('?')[0]!;
    const send = (type: string, body: Buffer) => {
      res.writeHead(200, {
        'Content-Type': type,
        'Content-Length': body.length,
        'Docker-Content-Digest': `sha256:${createHash('sha256').update(body).digest('hex')}`,
        'Docker-Distribution-Api-Version': 'registry/2.0',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (url === '/v2/' || url === '/v2') return send('application/json', Buffer.from('{}'));
    const m = /^\/v2\/(.+)\/(manifests\/[^/]+|blobs\/sha256:[0-9a-f]{64})$/.exec(url);
    if (m && m[2]!.startsWith('manifests/')) {
      const manifest = manifests.get(`${m[1]}/${m[2]}`);
      if (manifest) return send('application/vnd.docker.distribution.manifest.v2+json', manifest);
    } else if (m) {
      const blob = blobs.get(m[2]!.slice('blobs/'.length));
      if (blob) return send('application/octet-stream', blob);
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not found"}]}');
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
