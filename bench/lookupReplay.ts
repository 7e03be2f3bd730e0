// The engine's side of the plugin's lookups, for the plugin-level benchmark:
// the replayed traffic starts, execs into and copies from containers, and
// userns-guard looks those up on the engine's socket before it answers. No
// engine runs in that section, so this answers the lookups with the engine's
// own recorded answers (the AuthZRes bodies of the recording's inspects):
// containers by name, or by the id their create answered; a container the
// recording never inspected gets a plain recorded container's answer under
// its own id. The end-to-end section measures the same against real engines.

import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RecordedCall } from './record-plugin.ts';

interface Envelope {
  RequestMethod: string;
  RequestUri: string;
  ResponseBody?: string | null;
}

export interface LookupReplay {
  readonly socket: string;
  readonly answered: () => number;
  stop(): Promise<void>;
}

function pathOf(uri: string): string {
  return decodeURIComponent(uri.split('?', 1)[0]!).replace(/^\/v[0-9.]+/, '');
}

export async function startLookupReplay(recorded: readonly RecordedCall[]): Promise<LookupReplay> {
  const answers = new Map<string, string>(); // path -> recorded JSON answer
  const idToName = new Map<string, string>();
  for (const c of recorded) {
    if (c.path !== '/AuthZPlugin.AuthZRes') continue;
    const env = JSON.parse(c.body) as Envelope;
    if (env.RequestMethod !== 'GET' && !(env.RequestMethod === 'POST' && /\/containers\/create/.test(env.RequestUri))) continue;
    const body = env.ResponseBody ? Buffer.from(env.ResponseBody, 'base64').toString('utf8') : '';
    if (body === '') continue;
    if (env.RequestMethod === 'POST') {
      const name = new URLSearchParams(env.RequestUri.split('?')[1] ?? '').get('name');
      const id = (JSON.parse(body) as { Id?: string }).Id;
      if (name && id) idToName.set(id, name);
      continue;
    }
    answers.set(pathOf(env.RequestUri), body);
  }
  const plain = [...answers].find(([p, b]) => /^\/containers\/[^/]+\/json$/.test(p) && (JSON.parse(b) as { Mounts?: unknown[] }).Mounts?.length === 0)?.[1];
  if (plain === undefined || !answers.has('/info')) throw new Error('the recording holds no plain container inspect or no /info answer');

  let answered = 0;
  const containerAnswer = (ref: string): string => {
    const byName = answers.get(`/containers/${idToName.get(ref) ?? ref}/json`);
    if (byName !== undefined) return byName;
    const c = JSON.parse(plain) as Record<string, unknown>;
    return JSON.stringify({ ...c, Id: /^[0-9a-f]{64}$/.test(ref) ? ref : 'f'.repeat(64), Name: `/${ref}` });
  };
  const server = http.createServer((req, res) => {
    answered++;
    const p = pathOf(req.url ?? '');
    let body: string | undefined;
    let m: RegExpExecArray | null;
    if ((m = /^\/containers\/([^/]+)\/json$/.exec(p))) body = containerAnswer(m[1]!);
    else if ((m = /^\/exec\/([^/]+)\/json$/.exec(p))) body = answers.get(p) ?? JSON.stringify({ ID: m[1], ContainerID: 'f'.repeat(64) });
    else body = answers.get(p);
    res.writeHead(body === undefined ? 404 : 200, { 'Content-Type': 'application/json' });
    res.end(body ?? JSON.stringify({ message: `no recorded answer for ${p}` }));
  });
  const dir = mkdtempSync(join(tmpdir(), 'ug-bench-engine-'));
  const socket = join(dir, 'engine.sock');
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    socket,
    answered: () => answered,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}
