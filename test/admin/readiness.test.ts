/**
 * The probes against real dependencies (docs/operator.md "Probes"): `/readyz` is 200 while the store answers and,
 * when the app is given the cluster's bus, while the bus answers a round trip; 503 NOT_READY naming what did not
 * answer otherwise, and nothing more (no error text, no version, no id). `/healthz` stays 200 throughout.
 *
 * The store is a real SQLite store, closed under the app. The bus is a real JetStream bus on a private 3-node NATS
 * cluster (needs nats-server; skipped with the reason without it, failing with CI=true), whose servers are killed
 * under the app.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAdminApp } from '../../src/admin/app.js';
import { type JetStreamBus, openJetStreamBus } from '../../src/cluster/index.js';
import { openServerStore } from '../../src/embed/index.js';
import { CpnsMetrics } from '../../src/metrics/index.js';
import type { Store } from '../../src/store/store.js';
import { HAS_NATS_SERVER, IN_CI } from '../cluster/env.js';
import { type PrivateCluster, startPrivateCluster } from '../cluster/private-cluster.js';
import { type Stack, startStack } from './fixture.js';

let s: Stack;
const dirs: string[] = [];
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  s = await startStack();
});

afterAll(async () => {
  for (const a of apps) await a.close();
  await s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A store of its own (so the test may close it), and an admin app over it on a real plain-HTTP socket. */
async function probeApp(o: { bus?: JetStreamBus; readyTimeoutMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'cpns-ready-'));
  dirs.push(dir);
  const store: Store = await openServerStore(dir);
  const app = await buildAdminApp({
    admin: s.server.admin,
    store,
    metrics: new CpnsMetrics({ defaultMetrics: false }),
    auth: { token: randomBytes(24).toString('base64url') },
    ...(o.bus ? { bus: o.bus } : {}),
    ...(o.readyTimeoutMs ? { readyTimeoutMs: o.readyTimeoutMs } : {}),
  });
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  return { store, url };
}

const probe = (url: string, path: string): Promise<{ status: number; body: string; cache: unknown }> =>
  new Promise((resolve, reject) => {
    get(`${url}${path}`, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          cache: res.headers['cache-control'],
        }),
      );
    }).on('error', reject);
  });

describe('/readyz and /healthz: the store', () => {
  it('ready while the store answers; 503 NOT_READY "store unavailable" once it is closed; live throughout', async () => {
    const { store, url } = await probeApp();
    const ready = await probe(url, '/readyz');
    expect([ready.status, JSON.parse(ready.body), ready.cache]).toEqual([
      200,
      { status: 'ready' },
      'no-store',
    ]);

    await store.close();
    const r = await probe(url, '/readyz');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toEqual({ error: { code: 'NOT_READY', message: 'store unavailable' } });
    expect(r.cache).toBe('no-store');
    // The store's own error ('store is closed') goes to the log only.
    expect(r.body).not.toMatch(/closed|sqlite|version|urn:|\d+\.\d+\.\d+/i);
    const h = await probe(url, '/healthz');
    expect([h.status, JSON.parse(h.body)]).toEqual([200, { status: 'ok' }]);
  });
});

const NATS_SKIP = HAS_NATS_SERVER ? undefined : 'nats-server is not installed';
if (IN_CI && NATS_SKIP) {
  it('nats-server is available in CI (.ci/services)', () => {
    expect.fail(NATS_SKIP);
  });
}

describe.skipIf(NATS_SKIP !== undefined)(
  `/readyz: the cluster's bus${NATS_SKIP ? ` (skipped: ${NATS_SKIP})` : ''}`,
  () => {
    let nats: PrivateCluster;
    let bus: JetStreamBus;

    beforeAll(async () => {
      nats = await startPrivateCluster();
      bus = await openJetStreamBus({
        servers: nats.urls,
        connectionName: 'readyz-test',
        maxStreamBytes: 16 * 1024 * 1024,
        pingTimeoutMs: 500,
        reconnectWaitMs: 100,
      });
    }, 60_000);

    afterAll(async () => {
      await bus?.close();
      await nats?.stop();
    });

    it('ready while the bus answers; 503 NOT_READY "bus unavailable" when its NATS servers are gone; "store and bus" when both', async () => {
      const { store, url } = await probeApp({ bus, readyTimeoutMs: 1000 });
      expect((await probe(url, '/readyz')).status).toBe(200);
      await bus.ping(); // one round trip

      await nats.stop(); // every NATS server killed: the connection is down, reconnecting
      const t0 = Date.now();
      const r = await probe(url, '/readyz');
      expect(Date.now() - t0).toBeLessThan(5_000); // the probe does not hang on the bus
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body)).toEqual({ error: { code: 'NOT_READY', message: 'bus unavailable' } });
      expect(r.body).not.toMatch(/nats|127\.0\.0\.1|\d+\.\d+\.\d+/i);
      expect((await probe(url, '/healthz')).status).toBe(200);
      await expect(bus.ping()).rejects.toMatchObject({ code: 'TIMEOUT', field: 'bus' });

      await store.close();
      const both = await probe(url, '/readyz');
      expect(JSON.parse(both.body)).toEqual({
        error: { code: 'NOT_READY', message: 'store and bus unavailable' },
      });
    }, 30_000);
  },
);
