// A recording authz plugin: allows every call and appends what the engine
// sent (plugin path + the raw JSON envelope, byte for byte as text) to a
// JSON-lines file. Put behind a real dockerd, it captures the traffic the
// benchmark replays.
//
//   node bench/record-plugin.ts --socket /path/plugin.sock --out calls.jsonl
//
// bench/make-recording.ts uses startRecorder() in-process instead.

import { appendFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

export interface RecordedCall {
  readonly path: string;
  // The envelope exactly as received; kept as text so replay sends the same bytes.
  readonly body: string;
}

export interface Recorder {
  readonly server: http.Server;
  // Only calls that arrive while recording is on are written.
  setRecording(on: boolean): void;
  count(): number;
  close(): Promise<void>;
}

const CONTENT_TYPE = { 'Content-Type': 'application/vnd.docker.plugins.v1.2+json' };
const ACTIVATE = JSON.stringify({ Implements: ['authz'] });
const ALLOW = JSON.stringify({ Allow: true, Msg: '' });

export async function startRecorder(socket: string, out: string, recording = true): Promise<Recorder> {
  let on = recording;
  let written = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      const body = Buffer.concat(chunks).toString('utf8');
      if (on && path.startsWith('/AuthZPlugin.')) {
        const line: RecordedCall = { path, body };
        appendFileSync(out, `${JSON.stringify(line)}\n`);
        written++;
      }
      const answer = path === '/Plugin.Activate' ? ACTIVATE : ALLOW;
      res.writeHead(200, { ...CONTENT_TYPE, 'Content-Length': Buffer.byteLength(answer) });
      res.end(answer);
    });
  });
  rmSync(socket, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  return {
    server,
    setRecording: (value) => {
      on = value;
    },
    count: () => written,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { socket: { type: 'string' }, out: { type: 'string' } }, strict: true });
  if (values.socket === undefined || values.out === undefined) {
    process.stderr.write('usage: node bench/record-plugin.ts --socket PATH --out FILE.jsonl\n');
    process.exit(2);
  }
  const rec = await startRecorder(values.socket, values.out);
  process.stderr.write(`record-plugin: listening on ${values.socket}, appending to ${values.out}\n`);
  const stop = () => void rec.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
