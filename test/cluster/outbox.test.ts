/**
 * The outbox publisher (docs/cluster.md, docs/store.md "Outbox") from a real store to a real 3-node JetStream
 * cluster (a private one: the shared cluster's stream is reset by other tests): every committed epoch reaches
 * every node once and in order, the outbox empties, and a row left behind by a crash between publish and delete
 * is published again and still delivered once.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Delivery,
  type JetStreamBus,
  openJetStreamBus,
  type Subscription,
} from '../../src/cluster/index.js';
import { Suite } from '../../src/core/crypto/aead.js';
import { silentLogger } from '../../src/protocol/control.js';
import { eventOf, OutboxPublisher } from '../../src/server/outbox.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/store.js';
import { HAS_NATS_SERVER, IN_CI } from './env.js';
import { type PrivateCluster, startPrivateCluster } from './private-cluster.js';

const SKIP = HAS_NATS_SERVER ? undefined : 'nats-server is not installed (apt-get install nats-server)';
/** The private cluster's servers have 256 MB of file store each. */
const SMALL = { maxStreamBytes: 64 * 1024 * 1024 };
const KEY = { audit: { actor: 'operator', action: 'key.update' as const }, outbox: true };

if (IN_CI && SKIP) {
  it('nats-server is installed in CI (.ci/services/nats.sh)', () => {
    expect.fail(SKIP);
  });
}

async function until(cond: () => boolean | Promise<boolean>, ms = 15_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.skipIf(SKIP !== undefined)(`outbox → JetStream${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let cluster: PrivateCluster;
  let store: Store;
  let pub: JetStreamBus;
  const nodes: { bus: JetStreamBus; sub: Subscription; got: Delivery[] }[] = [];

  beforeAll(async () => {
    cluster = await startPrivateCluster();
    store = await openSqliteStore({ path: ':memory:', masterKey: randomBytes(32) });
    pub = await openJetStreamBus({ servers: cluster.urls, connectionName: 'outbox-pub', ...SMALL });
    for (const id of ['node-b', 'node-c']) {
      const bus = await openJetStreamBus({ servers: cluster.urls, connectionName: id, ...SMALL });
      const got: Delivery[] = [];
      nodes.push({ bus, got, sub: await bus.subscribe(id, (d) => void got.push(d)) });
    }
  }, 60_000);

  afterAll(async () => {
    for (const n of nodes) {
      await n.sub.close().catch(() => {});
      await n.bus.close().catch(() => {});
    }
    await pub?.close().catch(() => {});
    await store?.close();
    await cluster?.stop();
  });

  it('every committed epoch reaches every node once, in order; a row left by a crash is delivered once', async () => {
    const g = await store.createGroup({
      name: 'sg',
      ownerId: 'operator',
      joinPolicy: 'open',
      suite: Suite.AES_256_GCM,
      sourceAuth: false,
    });
    for (let i = 0; i < 5; i++) await store.rotateGroupKey(g.sgId, randomBytes(32), 'periodic', KEY);
    const publisher = new OutboxPublisher(store, pub, 'node-a', silentLogger, { intervalMs: 60_000 });
    try {
      await publisher.kick();
      expect(await store.listOutbox()).toEqual([]);
      await until(() => nodes.every((n) => n.got.length === 5), 15_000, 'five events at each node');
      for (const n of nodes) {
        expect(n.got.map((d) => d.event)).toEqual(
          [1, 2, 3, 4, 5].map((epoch) => expect.objectContaining({ type: 'key.epoch', sgId: g.sgId, epoch })),
        );
        // ids, epoch and reason only: a node reads the key itself from the store
        expect(Object.keys(n.got[0]!.event).sort()).toEqual([
          'at',
          'epoch',
          'node',
          'reason',
          'sgId',
          'type',
        ]);
      }

      // A crash between publish and delete: the row was published but is still in the outbox.
      await store.rotateGroupKey(g.sgId, randomBytes(32), 'member_left', KEY);
      const [row] = await store.listOutbox();
      const ev = row && eventOf(row, 'node-a');
      if (!row || !ev) throw new Error('no outbox row');
      expect((await pub.publish(ev, `outbox-${row.seq}`)).duplicate).toBe(false);
      await publisher.kick(); // after the restart: published again, deduplicated by the bus
      expect(await store.listOutbox()).toEqual([]);
      await until(() => nodes.every((n) => n.got.length >= 6), 15_000, 'the sixth event');
      await new Promise((r) => setTimeout(r, 500));
      for (const n of nodes) {
        expect(n.got.filter((d) => d.event.type === 'key.epoch' && d.event.epoch === 6)).toHaveLength(1);
      }
    } finally {
      await publisher.close();
    }
  }, 90_000);
});
