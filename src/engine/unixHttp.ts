// One HTTP exchange over a unix socket, bounded in time and size: doctor
// talks to the plugin and to the engine with it. (The plugin's own lookups
// have a cheaper client, lookupClient.ts.)

import http from 'node:http';

export interface UnixResponse {
  readonly status: number;
  readonly body: string;
}

const MAX_BODY = 4 << 20;

export function unixRequest(
  socketPath: string,
  method: string,
  path: string,
  opts: { body?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<UnixResponse> {
  const headers: Record<string, string> = { Host: 'docker', ...opts.headers };
  if (opts.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(opts.body));
  return new Promise((resolve, reject) => {
    // agent:false: one connection per call, none left open when doctor exits.
    const req = http.request({ socketPath, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) req.destroy(new Error(`answer larger than ${MAX_BODY} bytes`));
        else chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${opts.timeoutMs ?? 10_000} ms`)), opts.timeoutMs ?? 10_000);
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end(opts.body);
  });
}
