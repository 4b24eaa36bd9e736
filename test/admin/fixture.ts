/**
 * A real CPNS Server (SQLite store in a temp dir), optionally a real enrolled PN Gateway and a PNE identity
 * enrolled through it, and the admin app on top, listening on HTTPS (TLS 1.3, certificate from a test CA).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildAdminApp } from '../../src/admin/app.js';
import { startServer } from '../../src/embed/index.js';
import { type Credentials, enrollAt, PnGateway } from '../../src/gateway/index.js';
import { CpnsMetrics } from '../../src/metrics/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { createCa, formatIdentity, issueServerCert, loadCa } from '../../src/transport/ca.js';

export interface Stack {
  server: CpnsServer;
  app: FastifyInstance;
  /** https://127.0.0.1:<port> */
  url: string;
  /** CA of the admin app's TLS certificate. */
  caPem: string;
  token: string;
  metrics: CpnsMetrics;
  events: EventEmitter;
  gw: PnGateway | undefined;
  /** A PNE identity enrolled through the GW (in the store, not attached). */
  pneIdentity: string | undefined;
  /** Its credentials (to attach it with `PneClient.connect`). */
  pneCredentials: Credentials | undefined;
  /** Everything the app logged (JSON lines). */
  logs: string[];
  /** The server's data directory (its SQLite store is `cpns.db` there). */
  dataDir: string;
  close(): Promise<void>;
}

/**
 * `serverWired`: the app gets the server's own `events` and `metrics` (what `cpns server` does); otherwise a
 * private EventEmitter and CpnsMetrics the test drives by hand.
 */
export async function startStack(
  o: { withGateway?: boolean; serverWired?: boolean; publicMetrics?: boolean } = {},
): Promise<Stack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cpns-admin-'));
  const server = await startServer({ dataDir, heartbeat: false });
  let gw: PnGateway | undefined;
  let pneIdentity: string | undefined;
  let pneCredentials: Credentials | undefined;
  try {
    if (o.withGateway) {
      const gwToken = await server.admin.createToken('gw', 600);
      const creds = await PnGateway.enroll({
        enrollUrl: server.enrollUrl,
        caPem: server.caPem,
        token: gwToken,
      });
      gw = await PnGateway.start({ serverUrl: server.url, credentials: creds, heartbeat: false });
      const pneToken = await server.admin.createToken('pne', 600);
      pneCredentials = await enrollAt(gw.enrollUrl, server.caPem, pneToken, 'pne', 'gw');
      pneIdentity = pneCredentials.identity;
    }
  } catch (e) {
    await gw?.close();
    await server.close();
    throw e;
  }
  const ca = await loadCa(await createCa('admin test CA'));
  const tls = await issueServerCert(ca, formatIdentity('server', 'admin'), {
    ips: ['127.0.0.1'],
    dnsNames: ['localhost'],
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink) as unknown as FastifyBaseLogger;
  const token = randomBytes(32).toString('base64url');
  const metrics = o.serverWired ? server.metrics : new CpnsMetrics();
  const events = o.serverWired ? server.events : new EventEmitter();
  const app = await buildAdminApp({
    admin: server.admin,
    store: server.store,
    events,
    metrics,
    auth: { token },
    logger,
    https: { cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.3' },
    keepAliveMs: 1000,
    ...(o.publicMetrics ? { publicMetrics: true } : {}),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    server,
    app,
    url: `https://127.0.0.1:${port}`,
    caPem: ca.certPem,
    token,
    metrics,
    events,
    gw,
    pneIdentity,
    pneCredentials,
    logs,
    dataDir,
    async close() {
      await app.close();
      await gw?.close();
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const randomPne = (): string => `urn:cpns:pne:${randomUUID()}`;

/**
 * Records PNE identities as enrolled, straight in the store (only enrolled PNEs can be members, docs/operator.md;
 * enrollment itself is tested elsewhere). Takes urns or bare UUIDs; returns them unchanged.
 */
export async function enrolled<T extends string | string[]>(s: Stack, ids: T): Promise<T> {
  for (const id of (Array.isArray(ids) ? ids : [ids]) as string[]) {
    await s.server.store.putIdentity({
      id: id.startsWith('urn:') ? id : `urn:cpns:pne:${id}`,
      role: 'pne',
      certSerial: randomBytes(8).toString('hex'),
      certPem: s.caPem,
    });
  }
  return ids;
}
