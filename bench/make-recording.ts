// Makes bench/recording.jsonl: starts a throwaway dockerd (test/lib/engine.ts)
// with the recording plugin as its only authz plugin, runs typical CLI work
// against it, and keeps every AuthZReq/AuthZRes envelope the engine sent.
// Re-run it to re-make the recording against another engine version:
//
//   node bench/make-recording.ts [--out bench/recording.jsonl]
//
// Needs root, dockerd, /usr/bin/docker and busybox-static (as the tests do).

import { mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { engineSkipReason, startEngine, type Engine } from '../test/lib/engine.ts';
import { makeTempDir } from '../test/lib/plugin.ts';
import { startRecorder } from './record-plugin.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const RECORDING = path.join(HERE, 'recording.jsonl');

// [args, must succeed]. Anything a CI job or a developer does often; the
// failures that are allowed are engine-configuration ones (no bridge here).
type Step = readonly [args: readonly string[], mustSucceed: boolean];

function workload(image: string, hostDir: string): Step[] {
  const ps: Step = [['ps'], true];
  return [
    [['version'], true],
    [['info'], true],
    [['images'], true],
    [['image', 'inspect', image], true],
    [['run', '--rm', image, 'echo', 'hello'], true],
    [['run', '--rm', '-e', 'CI=true', '-w', '/tmp', image, 'sh', '-c', 'id; ls /'], true],
    [['volume', 'create', 'bench-data'], true],
    [['volume', 'ls'], true],
    [['volume', 'inspect', 'bench-data'], true],
    [
      [
        'create', '--name', 'bench-web',
        '-e', 'APP_ENV=production', '-e', 'APP_PORT=8080', '-e', 'DATABASE_URL=postgres://app@db/app',
        '--label', 'com.example.team=platform', '--label', 'com.example.service=web',
        '-v', 'bench-data:/data', '-v', `${hostDir}:/config:ro`, '--tmpfs', '/run',
        '--restart', 'unless-stopped', '--memory', '64m', '--cpus', '0.5',
        image, 'sh', '-c', 'while true; do echo tick; sleep 1; done',
      ],
      true,
    ],
    [['start', 'bench-web'], true],
    [['create', '--name', 'bench-worker', '--label', 'com.example.service=worker', '-e', 'QUEUE=jobs', image, 'sleep', '600'], true],
    [['start', 'bench-worker'], true],
    [['run', '-d', '--name', 'bench-job', '-e', 'JOB=1', image, 'sleep', '600'], true],
    ps,
    [['ps', '-a'], true],
    [['ps', '-q', '--filter', 'label=com.example.service=web'], true],
    [['exec', 'bench-web', 'ls', '/data'], true],
    [['exec', '-e', 'FOO=bar', '-w', '/tmp', 'bench-worker', 'env'], true],
    [['exec', '-u', '0', 'bench-web', 'id'], true],
    [['logs', 'bench-web'], true],
    [['logs', '--tail', '2', '--timestamps', 'bench-web'], true],
    [['inspect', 'bench-web'], true],
    [['inspect', '--format', '{{.State.Status}}', 'bench-worker'], true],
    [['container', 'inspect', 'bench-job'], true],
    [['top', 'bench-worker'], true],
    [['stats', '--no-stream'], true],
    [['port', 'bench-web'], true],
    [['cp', 'bench-web:/bin/busybox', `${hostDir}/busybox.copy`], true],
    [['rename', 'bench-job', 'bench-job-1'], true],
    [['pause', 'bench-job-1'], true],
    [['unpause', 'bench-job-1'], true],
    [['restart', '-t', '1', 'bench-worker'], true],
    [['commit', 'bench-worker', 'bench-snapshot:1'], true],
    [['tag', 'bench-snapshot:1', 'bench-snapshot:latest'], true],
    [['images', '--filter', 'reference=bench-*'], true],
    [['image', 'history', image], true],
    [['network', 'ls'], true],
    [['network', 'inspect', 'none'], true],
    [['network', 'create', 'bench-net'], false],
    [['network', 'rm', 'bench-net'], false],
    [['system', 'df'], true],
    ps,
    ps,
    [['stop', '-t', '1', 'bench-web', 'bench-worker', 'bench-job-1'], true],
    [['wait', 'bench-job-1'], true],
    [['ps', '-a', '--format', '{{.Names}} {{.Status}}'], true],
    [['rm', 'bench-web', 'bench-worker', 'bench-job-1'], true],
    [['rmi', 'bench-snapshot:1', 'bench-snapshot:latest'], true],
    [['volume', 'rm', 'bench-data'], true],
    [['container', 'prune', '-f'], true],
    [['volume', 'prune', '-f'], true],
    [['info', '--format', '{{.SecurityOptions}}'], true],
  ];
}

async function runWorkload(engine: Engine, hostDir: string): Promise<void> {
  for (const [args, must] of workload(engine.image, hostDir)) {
    const r = await engine.docker([...args]);
    const line = `docker ${args.join(' ')} -> ${r.code}`;
    if (r.code !== 0 && must) throw new Error(`${line}\n${r.stderr}`);
    process.stderr.write(`make-recording: ${line}${r.code !== 0 ? ` (allowed to fail: ${r.stderr.trim()})` : ''}\n`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' } }, strict: true });
  const out = path.resolve(values.out ?? RECORDING);
  const skip = engineSkipReason();
  if (skip !== null) throw new Error(`cannot make a recording: ${skip}`);

  const dir = makeTempDir('ug-rec-');
  const hostDir = path.join(dir, 'config');
  mkdirSync(hostDir);
  writeFileSync(path.join(hostDir, 'app.conf'), 'port = 8080\n');
  const partial = `${out}.partial`;
  rmSync(partial, { force: true });
  // Engine start-up (ping, the busybox import) is not CLI work: record only
  // what the workload sends.
  const recorder = await startRecorder(path.join(dir, 'record.sock'), partial, false);
  let engine: Engine | undefined;
  try {
    engine = await startEngine({ authzPlugins: [{ socket: path.join(dir, 'record.sock') }] });
    recorder.setRecording(true);
    await runWorkload(engine, hostDir);
    recorder.setRecording(false);
  } finally {
    await engine?.stop();
    await recorder.close();
    rmSync(dir, { recursive: true, force: true });
  }
  renameSync(partial, out);
  process.stderr.write(`make-recording: ${recorder.count()} calls, ${(statSync(out).size / 1024).toFixed(0)} KiB -> ${out}\n`);
}

await main();
