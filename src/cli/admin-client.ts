import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { CodedError } from '../core/errors.js';

/**
 * Client of the server's admin REST API (src/admin/app.ts, docs/operator.md), used by `cpns admin ...`:
 * HTTPS (TLS 1.3, the server certificate chains to the CPNS CA in `<dataDir>/ca.pem`), bearer token.
 */
export interface AdminEndpoint {
  readonly url: string;
  readonly token: string;
  readonly caPem: string;
}

/**
 * `<dataDir>/server.json` is written by `cpns server` with its URLs; admin.token and ca.pem sit beside it.
 * `token` (from --token-file or CPNS_ADMIN_TOKEN) replaces admin.token.
 */
export function endpointFromDataDir(dataDir: string, token?: string): AdminEndpoint {
  const info = JSON.parse(readFileSync(join(dataDir, 'server.json'), 'utf8')) as { adminUrl: string };
  return {
    url: info.adminUrl,
    token: token ?? readFileSync(join(dataDir, 'admin.token'), 'utf8').trim(),
    caPem: readFileSync(join(dataDir, 'ca.pem'), 'utf8'),
  };
}

/**
 * A typed API error (`{error:{code,message,field?}}`): the CLI prints `cpns: <code>: <message>`. The message is
 * the admin API's own fixed text for the code (docs/errors.md), from the server this CLI authenticated.
 */
export class AdminCallError extends CodedError {
  readonly family = 'cli';
  readonly status: number;

  constructor(code: string, message: string, status = 0, field?: string) {
    super(code, message, field);
    this.name = 'AdminCallError';
    this.status = status;
  }
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
const MAX_REPLY = 16 * 1024 * 1024;

/**
 * One API call: `path` relative to `/api/v1` (e.g. `/service-groups`), `query` appended URL-encoded.
 * Resolves with the parsed JSON body, or `undefined` for `204 No Content`.
 */
export function adminRequest(
  ep: AdminEndpoint,
  method: Method,
  path: string,
  o: { body?: unknown; query?: Record<string, string | number | undefined> } = {},
): Promise<unknown> {
  const u = new URL(`/api/v1${path}`, ep.url);
  for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
  const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname: u.hostname.replace(/^\[|\]$/g, ''),
        port: u.port,
        path: `${u.pathname}${u.search}`,
        method,
        ca: ep.caPem,
        minVersion: 'TLSv1.3',
        // The server certificate names 127.0.0.1/localhost and chains to the CPNS CA.
        headers: {
          authorization: `Bearer ${ep.token}`,
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY) {
            req.destroy(new AdminCallError('TOO_LARGE', 'admin API reply too large'));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          if (status === 204 || (text === '' && status < 300)) {
            resolve(undefined);
            return;
          }
          let parsed: { error?: { code?: string; message?: string; field?: string } } | undefined;
          try {
            parsed = JSON.parse(text);
          } catch {
            reject(
              new AdminCallError('MALFORMED', `admin API sent an invalid reply (HTTP ${status})`, status),
            );
            return;
          }
          if (status >= 400 || parsed?.error) {
            const e = parsed?.error ?? {};
            const field = e.field ? ` (${e.field})` : '';
            reject(
              new AdminCallError(
                e.code ?? `HTTP_${status}`,
                `${e.message ?? 'request failed'}${field}`,
                status,
                e.field,
              ),
            );
          } else resolve(parsed);
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
