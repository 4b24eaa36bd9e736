/**
 * Every Group Key epoch in the store reaches the members behind every node (docs/cluster.md), also those that the
 * normal path (commit on a node in the cluster, that node publishes its outbox row) does not cover:
 *
 * - an epoch a node commits while it starts, before it is joined to the cluster (the rotation of every SG after
 *   an unclean stop, src/server/startup.ts): its outbox row must be written all the same;
 *
 * In-process nodes on PostgreSQL and a private 3-node NATS cluster (test/integration/cluster-failure.test.ts has
 * the same with killed node processes). Needs CPNS_TEST_PG_URL and nats-server; without them: skipped with the
 * reason, except with CI=true, where it fails.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { EventBus } from '../../src/cluster/index.js';
import { openJetStreamBus } from '../../src/cluster/index.js';
import { PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { HAS_NATS_SERVER } from '../cluster/env.js';
import { type PrivateCluster, startPrivateCluster } from '../cluster/private-cluster.js';
import { BACKOFF, enrollPne, startGateway, startServer, tempDir, until } from './helpers.js';

const URL_ = process.env.CPNS_TEST_PG_URL;
const IN_CI = process.env.CI === 'true';
const SKIP = !URL_
  ? 'CPNS_TEST_PG_URL is not set (scripts/dev/postgres.sh up)'
  : !HAS_NATS_SERVER
    ? 'nats-server is not installed'
    : undefined;
const schemas: string[] = [];
const tmp = tempDir();
const closers: (() => Promise<unknown>)[] = [];
let nats: PrivateCluster | undefined;

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  await nats?.stop();
  if (URL_) {
    const admin = new pg.Client({ connectionString: URL_ });
    await admin.connect();
    for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
    await admin.end();
  }
  tmp.cleanup();
});

if (IN_CI && SKIP) {
  it('PostgreSQL and nats-server are available in CI (.ci/services)', () => {
    expect.fail(SKIP);
  });
}

async function bus(name: string): Promise<EventBus> {
  nats ??= await startPrivateCluster();
  const b = await openJetStreamBus({
    servers: nats.urls,
    connectionName: name,
    maxStreamBytes: 64 * 1024 * 1024, // the private cluster's servers have 256 MB of file store each
  });
  closers.push(() => b.close());
  return b;
}

/** Two node data directories with the same master key, on a fresh schema. */
function deployment(name: string): {
  dirA: string;
  dirB: string;
  pg: { storeUrl: string; storeSchema: string };
} {
  const schema = `cpns_an_${randomBytes(6).toString('hex')}`;
  schemas.push(schema);
  const dirA = join(tmp.dir, `${name}-a`);
  const dirB = join(tmp.dir, `${name}-b`);
  return { dirA, dirB, pg: { storeUrl: URL_ as string, storeSchema: schema } };
}

async function node(
  dir: string,
  opts: Parameters<typeof startServer>[1],
  from?: string,
): Promise<CpnsServer> {
  if (from !== undefined) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    copyFileSync(join(from, 'master.key'), join(dir, 'master.key')); // every node holds the same master key
  }
  const s = await startServer(dir, opts);
  closers.push(() => s.close());
  return s;
}

async function pneAt(server: CpnsServer, gw: Awaited<ReturnType<typeof startGateway>>): Promise<PneClient> {
  const p = await PneClient.connect({
    gwUrl: gw.url,
    credentials: await enrollPne(server, gw),
    heartbeat: false,
    reconnect: BACKOFF,
  });
  closers.push(() => p.close());
  return p;
}

const storeEpoch = async (s: CpnsServer, sgId: string) => {
  const k = await s.store.getCurrentKey(sgId);
  k?.key.fill(0);
  return k?.epoch ?? 0;
};

describe.skipIf(SKIP !== undefined)(
  `epochs no node announced as usual${SKIP ? ` (skipped: ${SKIP})` : ''}`,
  () => {
    it("an epoch a node commits while it starts (restart rotation) reaches the members behind the other node's GW", async () => {
      const d = deployment('start');
      // A drains the outbox only when it commits: the row of B's start-up epoch goes out through B.
      const a = await node(d.dirA, {
        ...d.pg,
        cluster: { bus: await bus('start-a'), nodeId: 'start-a', outbox: { intervalMs: 3_600_000 } },
      });
      const gw = await startGateway(a);
      closers.push(() => gw.close());
      const p = await pneAt(a, gw);
      const { sgId } = await p.createGroup({ name: 'start-up epoch', joinPolicy: 'open' });
      await until(() => p.currentEpoch(sgId) === 1, 10_000, 'epoch 1 at A');

      // B starts on the database while A runs: no clean-shutdown marker, so it rotates every SG once while it
      // starts, before it has joined the cluster.
      const b = await node(
        d.dirB,
        { ...d.pg, cluster: { bus: await bus('start-b'), nodeId: 'start-b' } },
        d.dirA,
      );
      const top = await storeEpoch(b, sgId);
      expect(top).toBeGreaterThanOrEqual(1);
      await until(
        () => p.currentEpoch(sgId) === top,
        15_000,
        `epoch ${top} (committed by B at its start) at A's member`,
      );
      expect(a.currentEpoch(sgId)).toBe(top);
    }, 60_000);
  },
);
