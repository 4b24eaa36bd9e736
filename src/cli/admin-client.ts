import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

/** Client of the server's operator endpoint (src/server/admin-http.ts), used by `cpns admin ...`. */
export interface AdminEndpoint {
  readonly url: string;
  readonly token: string;
  readonly caPem: string;
}

/** `<dataDir>/server.json` is written by `cpns server` with its URLs; admin.token and ca.pem sit beside it. */
export function endpointFromDataDir(dataDir: string): AdminEndpoint {
  const info = JSON.parse(readFileSync(join(dataDir, 'server.json'), 'utf8')) as { adminUrl: string };
  return {
    url: info.adminUrl,
    token: readFileSync(join(dataDir, 'admin.token'), 'utf8').trim(),
    caPem: readFileSync(join(dataDir, 'ca.pem'), 'utf8'),
  };
}

export class AdminCallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function adminCall(ep: AdminEndpoint, action: string, body: unknown = {}): Promise<unknown> {
  const payload = Buffer.from(JSON.stringify(body));
  const u = new URL(`/admin/${action}`, ep.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        ca: ep.caPem,
        minVersion: 'TLSv1.3',
        // The server certificate names 127.0.0.1/localhost and chains to the CPNS CA.
        headers: {
          authorization: `Bearer ${ep.token}`,
          'content-type': 'application/json',
          'content-length': payload.length,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
              error?: { code: string; message: string };
            };
            if (parsed.error) reject(new AdminCallError(parsed.error.code, parsed.error.message));
            else resolve(parsed);
          } catch {
            reject(new AdminCallError('MALFORMED', 'admin endpoint sent an invalid reply'));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
