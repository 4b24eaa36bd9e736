/**
 * Every Group Key epoch in the store reaches the members behind every node (docs/cluster.md), also those that the
 * normal path (commit on a node in the cluster, that node publishes its outbox row) does not cover:
 *
 * - an epoch a node commits while it starts, before it is joined to the cluster (the rotation of every SG after
 *   an unclean stop, src/server/startup.ts): its outbox row must be written all the same;
 * - an epoch whose committing node never published it (killed between commit and publish): another node drains
 *   the shared outbox, so the event names that node as `node`, and that node must still deliver it to its GWs.
 *
 * In-process nodes on PostgreSQL and a private 3-node NATS cluster (test/integration/cluster-failure.test.ts has
 * the same with killed node processes). Needs CPNS_TEST_PG_URL and nats-server; without them: skipped with the
 * reason, except with CI=true, where it fails.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { EventBus } from '../../src/cluster/index.js';
import { openJetStreamBus } from '../../src/cluster/index.js';
import { CpnsError, ErrorCode } from '../../src/core/errors.js';
import { PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { type PrivateCluster, startPrivateCluster } from '../cluster/private-cluster.js';
import { BACKOFF, enrollPne, startGateway, startServer, tempDir, until } from './helpers.js';
import { dropSchemas, failInCiIfSkipped, PG_URL, skipReason } from './pg-env.js';

const SKIP = skipReason({ nats: true });
const schemas: string[] = [];
const tmp = tempDir();
const closers: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  await dropSchemas(schemas);
  tmp.cleanup();
});

failInCiIfSkipped(SKIP);

/**
 * The event buses of one test, on a private NATS cluster of its own: the outbox row id is the idempotency id,
 * and another schema's rows (another test) would carry the same ids within the stream's duplicate window.
 */
async function natsCluster(): Promise<(name: string) => Promise<EventBus>> {
  const nats: PrivateCluster = await startPrivateCluster();
  closers.unshift(() => nats.stop()); // after the nodes and buses (closers run in reverse)
  return async (name) => {
    const b = await openJetStreamBus({
      servers: nats.urls,
      connectionName: name,
      maxStreamBytes: 64 * 1024 * 1024, // the private cluster's servers have 256 MB of file store each
    });
    closers.push(() => b.close());
    return b;
  };
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
  return { dirA, dirB, pg: { storeUrl: PG_URL as string, storeSchema: schema } };
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
      const bus = await natsCluster();
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

    it('an epoch its node never published (killed after the commit) is published by another node, which delivers it too', async () => {
      const d = deployment('orphan');
      const bus = await natsCluster();
      // A's publishes never reach the stream: as if A were killed between each commit and its publish.
      const real = await bus('orphan-a');
      const mute: EventBus = {
        publish: () => Promise.reject(new CpnsError(ErrorCode.TIMEOUT, 'publish refused by the test')),
        subscribe: (...args) => real.subscribe(...args),
        relay: (...args) => real.relay(...args),
        onRelay: (...args) => real.onRelay(...args),
        ping: () => real.ping(),
        close: () => real.close(),
      };
      const a = await node(d.dirA, { ...d.pg, cluster: { bus: mute, nodeId: 'orphan-a' } });
      // B drains the shared outbox often: it publishes A's rows.
      const b = await node(
        d.dirB,
        { ...d.pg, cluster: { bus: await bus('orphan-b'), nodeId: 'orphan-b', outbox: { intervalMs: 100 } } },
        d.dirA,
      );
      const gwA = await startGateway(a);
      const gwB = await startGateway(b);
      closers.push(
        () => gwA.close(),
        () => gwB.close(),
      );
      const p = await pneAt(a, gwA);
      const q = await pneAt(b, gwB);
      const { sgId } = await a.admin.createGroup({ name: 'orphan rows', members: [p.identity, q.identity] });
      await until(() => p.currentEpoch(sgId) === 1, 10_000, 'epoch 1 at A’s member');
      await until(
        () => q.currentEpoch(sgId) === 1,
        15_000,
        "epoch 1 (committed by A, published by B) at B's member",
      );
      const { epoch } = await a.admin.rekey(sgId);
      await until(() => q.currentEpoch(sgId) === epoch, 15_000, `epoch ${epoch} at B's member`);
      expect(p.currentEpoch(sgId)).toBe(epoch);
      expect(await storeEpoch(b, sgId)).toBe(epoch);
    }, 60_000);
  },
);
