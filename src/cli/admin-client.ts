import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { CodedError } from '../core/errors.js';
import { certInfo } from '../transport/ca.js';

/**
 * Client of the server's admin REST API (src/admin/app.ts, docs/operator.md), used by `cpns admin ...`:
 * HTTPS (TLS 1.3; the server certificate chains to the CPNS CA and names the CPNS Server), bearer token.
 */
export interface AdminEndpoint {
  readonly url: string;
  readonly token: string;
  readonly caPem: string;
  /** Where caPem was read from (named in a TLS_REFUSED error). */
  readonly caFile?: string;
}

/** Where the admin endpoint comes from (`cpns admin` flags and environment; each may be absent). */
export interface AdminEndpointSources {
  /** The server's data directory (its server.json, admin.token, ca.pem): the fallback for what is not given. */
  dataDir: string;
  /** --url / CPNS_ADMIN_URL: the admin listener, https://host:port. */
  url?: string;
  /** The admin token read from --token-file / CPNS_ADMIN_TOKEN_FILE / CPNS_ADMIN_TOKEN. */
  token?: string;
  /** --ca / CPNS_ADMIN_CA: the CPNS CA certificate (PEM file). */
  ca?: string;
}

/**
 * The admin endpoint: each of URL, token and CA from its flag or environment variable, else from the server's
 * data directory (`<dataDir>/server.json` written by `cpns server` with its URLs; admin.token and ca.pem beside
 * it). On another machine than the server, --url, --token-file and --ca (or their variables) are all it needs.
 * A file that is missing is named, with the flag that replaces it (AdminCallError CONFIG, exit 1).
 */
export function resolveAdminEndpoint(src: AdminEndpointSources): AdminEndpoint {
  const remote = src.url !== undefined;
  const inDataDir = (name: string, flag: string, what: string): string => {
    const path = join(src.dataDir, name);
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read';
      const where = remote
        ? `give ${flag}`
        : `is --data-dir (default $CPNS_DATA_DIR/server) the server's data directory? On another machine, give --url, --token-file and --ca (CPNS_ADMIN_URL, CPNS_ADMIN_TOKEN_FILE, CPNS_ADMIN_CA)`;
      throw new AdminCallError('CONFIG', `${what}: ${path}: ${why}; ${where}`);
    }
  };
  let url = src.url;
  if (url === undefined) {
    let info: { adminUrl?: unknown };
    try {
      info = JSON.parse(inDataDir('server.json', '--url', 'admin URL'));
    } catch (e) {
      if (e instanceof AdminCallError) throw e;
      throw new AdminCallError('CONFIG', `${join(src.dataDir, 'server.json')} is not valid JSON`);
    }
    if (typeof info.adminUrl !== 'string')
      throw new AdminCallError('CONFIG', `${join(src.dataDir, 'server.json')} names no adminUrl; give --url`);
    url = info.adminUrl;
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {}
  if (parsed?.protocol !== 'https:')
    throw new AdminCallError(
      'CONFIG',
      `--url must be an https:// URL (the server's admin listener), not ${JSON.stringify(url)}`,
    );
  const token = src.token ?? inDataDir('admin.token', '--token-file', 'admin token').trim();
  let caPem: string;
  if (src.ca !== undefined) {
    try {
      caPem = readFileSync(src.ca, 'utf8');
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read';
      throw new AdminCallError('CONFIG', `CA certificate (--ca, CPNS_ADMIN_CA): ${src.ca}: ${why}`);
    }
  } else caPem = inDataDir('ca.pem', '--ca', 'CA certificate');
  return { url, token, caPem, caFile: src.ca ?? join(src.dataDir, 'ca.pem') };
}

/** The endpoint from `<dataDir>` alone; `token` (from --token-file or CPNS_ADMIN_TOKEN) replaces admin.token. */
export function endpointFromDataDir(dataDir: string, token?: string): AdminEndpoint {
  return resolveAdminEndpoint({ dataDir, ...(token !== undefined ? { token } : {}) });
}

/**
 * `--wait`: the endpoint once the server answers /readyz, trying again (every 500 ms, up to `timeoutMs`) while
 * it is not there yet: its data directory files not written yet (CONFIG), nothing answers (UNREACHABLE), not
 * ready (NOT_READY). Says once on stderr what it waits for. Other errors (a wrong CA, say) fail at once.
 */
export async function waitForAdminEndpoint(
  src: AdminEndpointSources,
  timeoutMs: number,
  say: (line: string) => void,
): Promise<AdminEndpoint> {
  const end = Date.now() + timeoutMs;
  let said = false;
  for (;;) {
    try {
      const ep = resolveAdminEndpoint(src);
      await adminRequest(ep, 'GET', '/readyz');
      return ep;
    } catch (e) {
      const code = (e as { code?: string }).code;
      const notYet = code === 'CONFIG' || code === 'UNREACHABLE' || code === 'NOT_READY';
      if (!notYet || Date.now() > end) throw e;
      if (!said) {
        said = true;
        say(`waiting for the CPNS Server (${src.url ?? `data directory ${src.dataDir}`}) to be up...`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * The admin listener's certificate must be the CPNS Server's (identity `urn:cpns:server:…`, chaining to the
 * pinned CA): that, not the host name, authenticates it, so `--url` may use any name or address of the server
 * (its certificate names only the session host and localhost). A GW's or PNE's certificate is refused.
 */
function checkServerIdentity(_host: string, cert: PeerCertificate): Error | undefined {
  try {
    if (certInfo(cert).role === 'server') return undefined;
  } catch {}
  return new AdminCallError(
    'NOT_SERVER',
    "the admin URL answered with a certificate that is not the CPNS Server's",
  );
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

/** Nothing answered at the admin URL (the server is down, or that is not its address or admin port). */
const UNREACHABLE: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** OpenSSL: the admin certificate does not chain to the CA given. */
const UNTRUSTED: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
]);

/** A failed request as an AdminCallError a person can act on (no raw Node error text). */
function requestError(e: Error & { code?: string }, url: string, caSource = 'the CA file'): Error {
  if (e instanceof CodedError) return e;
  const code = e.code ?? '';
  if (UNREACHABLE.has(code))
    return new AdminCallError(
      'UNREACHABLE',
      `nothing answers at ${url}: is the server running, and is that its admin URL (--url, CPNS_ADMIN_URL, or server.json)?`,
    );
  if (UNTRUSTED.has(code))
    return new AdminCallError(
      'TLS_REFUSED',
      `${url} presented a certificate not issued by the CA in ${caSource}: use the server's ca.pem (--ca, CPNS_ADMIN_CA)`,
    );
  if (code === 'ECONNRESET' || code === 'EPROTO' || code.startsWith('ERR_SSL'))
    return new AdminCallError(
      'TLS_REFUSED',
      `no TLS 1.3 session with ${url}: is that the server's admin URL?`,
    );
  return new AdminCallError('REQUEST_FAILED', `the request to ${url} failed`);
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
  const u = new URL(path.startsWith('/readyz') ? path : `/api/v1${path}`, ep.url);
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
        checkServerIdentity,
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
    req.on('error', (e: Error & { code?: string }) => reject(requestError(e, ep.url, ep.caFile)));
    req.end(payload);
  });
}
