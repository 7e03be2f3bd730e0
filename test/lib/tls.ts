// A throwaway certificate authority made with openssl: a server certificate
// for 127.0.0.1 and client certificates whose common names the engine hands
// to authorization plugins as the calling user.

import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

export interface Pki {
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  client(name: string): { cert: string; key: string };
}

export function opensslMissing(): string | null {
  return existsSync('/usr/bin/openssl') ? null : 'TLS tests need /usr/bin/openssl (Debian package openssl)';
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

export function makePki(dir: string, clients: readonly string[]): Pki {
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=userns-guard test CA', '-keyout', caKey, '-out', ca]);
  const issue = (name: string, ext: string) => {
    const key = join(dir, `${name}-key.pem`);
    const csr = join(dir, `${name}.csr`);
    const cert = join(dir, `${name}.pem`);
    const extFile = join(dir, `${name}.ext`);
    writeFileSync(extFile, ext);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr]);
    openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-days', '1', '-extfile', extFile, '-out', cert]);
    return { cert, key };
  };
  const server = issue('server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  const issued = new Map(clients.map((c) => [c, issue(c, 'extendedKeyUsage=clientAuth\n')]));
  return {
    ca,
    serverCert: server.cert,
    serverKey: server.key,
    client: (name) => {
      const c = issued.get(name);
      if (c === undefined) throw new Error(`no client certificate for ${name}`);
      return c;
    },
  };
}

// A loopback port nothing listens on right now.
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
