/**
 * Two CPNS Server nodes on one PostgreSQL database and a real 3-node NATS JetStream cluster (docs/cluster.md):
 * PN GW 1 is served by node A, PN GW 2 by node B, and one Service Group spans both PNs. A Group Key epoch
 * committed on either node reaches the members behind the other node's GW (outbox → bus → the other node reads
 * the sealed key from PostgreSQL and delivers it). A member removed on node A gets no key from node B: B reloads
 * the membership from the store before it delivers.
 *
 * Needs CPNS_TEST_PG_URL and nats-server (a private NATS cluster is started here). Without them: skipped with the
 * reason, except with CI=true, where it fails.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { type JetStreamBus, openJetStreamBus } from '../../src/cluster/index.js';
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
const schema = `cpns_cl_${randomBytes(6).toString('hex')}`;
const tmp = tempDir();
const closers: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  if (URL_) {
    const admin = new pg.Client({ connectionString: URL_ });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  }
  tmp.cleanup();
});

if (IN_CI && SKIP) {
  it('PostgreSQL and nats-server are available in CI (.ci/services)', () => {
    expect.fail(SKIP);
  });
}

describe.skipIf(SKIP !== undefined)(`two server nodes${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  it('an epoch committed on one node reaches the members behind the other; a removed member gets nothing', async () => {
    const nats: PrivateCluster = await startPrivateCluster();
    closers.push(() => nats.stop());
    const bus = async (name: string): Promise<JetStreamBus> => {
      const b = await openJetStreamBus({
        servers: nats.urls,
        connectionName: name,
        maxStreamBytes: 64 * 1024 * 1024, // the private cluster's servers have 256 MB of file store each
      });
      closers.push(() => b.close());
      return b;
    };
    const dirA = join(tmp.dir, 'a');
    const dirB = join(tmp.dir, 'b');
    const pgOpts = { storeUrl: URL_ as string, storeSchema: schema };
    const a: CpnsServer = await startServer(dirA, {
      ...pgOpts,
      cluster: { bus: await bus('a'), nodeId: 'a' },
    });
    closers.push(() => a.close());
    mkdirSync(dirB, { recursive: true, mode: 0o700 });
    copyFileSync(join(dirA, 'master.key'), join(dirB, 'master.key')); // every node holds the same master key
    const b: CpnsServer = await startServer(dirB, {
      ...pgOpts,
      cluster: { bus: await bus('b'), nodeId: 'b' },
    });
    closers.push(() => b.close());
    expect(b.caPem).toBe(a.caPem);

    const gw1 = await startGateway(a);
    const gw2 = await startGateway(b);
    closers.push(
      () => gw1.close(),
      () => gw2.close(),
    );
    const connect = async (server: CpnsServer, gw: typeof gw1) => {
      const c = await PneClient.connect({
        gwUrl: gw.url,
        credentials: await enrollPne(server, gw),
        heartbeat: false,
        reconnect: BACKOFF,
      });
      closers.push(() => c.close());
      return c;
    };
    const p1 = await connect(a, gw1); // behind node A
    const p2 = await connect(b, gw2); // behind node B
    const p3 = await connect(b, gw2);

    const { sgId } = await p1.createGroup({ name: 'spans both nodes', joinPolicy: 'open' });
    // Node B learns of the group from its first epoch's event; until then a join through B is NOT_FOUND.
    for (const p of [p2, p3]) {
      await until(
        () =>
          p.joinGroup(sgId).then(
            () => true,
            () => false,
          ),
        15_000,
        'join through node B',
      );
    }
    // The joins committed on node B (update on join); node A delivers those epochs to p1 behind GW 1.
    const top = async () => (await a.admin.listGroups()).find((g) => g.sgId === sgId)?.currentEpoch ?? 0;
    await until(
      async () => {
        const e = await top();
        return e >= 3 && [p1, p2, p3].every((p) => p.currentEpoch(sgId) === e);
      },
      20_000,
      'every member at the epoch of the last join',
    );

    // Removed on node A: node A rotates; node B delivers the new epoch to p2 only.
    const before = p3.currentEpoch(sgId);
    await a.admin.removeMember(sgId, p3.identity);
    const removed = await top();
    expect(removed).toBe((before ?? 0) + 1);
    await until(
      () => p1.currentEpoch(sgId) === removed && p2.currentEpoch(sgId) === removed,
      20_000,
      'the epoch after the removal at both nodes',
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(p3.currentEpoch(sgId)).toBe(before);

    // And the other way: a rekey on node B reaches p1 behind node A.
    const { epoch } = await b.admin.rekey(sgId);
    await until(
      () => p1.currentEpoch(sgId) === epoch && p2.currentEpoch(sgId) === epoch,
      20_000,
      'rekey at B',
    );
    expect(p3.currentEpoch(sgId)).toBe(before);
  }, 120_000);
});
