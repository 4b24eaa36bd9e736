/**
 * The JetStream event bus against a real 3-node NATS cluster (docs/cluster.md "Delivery guarantees"): every node
 * gets every event once and in order, an idempotency id is delivered once, a node that was down catches up, hostile
 * messages on the subject are refused with a typed code without stopping the consumer, and publishing resumes after
 * the stream leader is killed (a private cluster started here, so the shared one is not disturbed).
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type ClusterEvent,
  type Delivery,
  type JetStreamBus,
  NATS_BUS_DEFAULTS,
  type NatsBusLimits,
  openJetStreamBus,
  type Refusal,
  type Subscription,
} from '../../src/cluster/index.js';
import { HAS_NATS_SERVER, IN_CI, NATS_URLS, SKIP_REASON } from './env.js';
import { startPrivateCluster } from './private-cluster.js';

const SG = '0b6f1a52-6f43-4c39-9a39-1f9c4f1d8e01';
const GW = 'urn:cpns:gw:7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6';
const PNE = (i: number) => `urn:cpns:pne:00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;

const epochEvent = (epoch: number): ClusterEvent => ({
  type: 'key.epoch',
  at: Date.now(),
  node: 'node-a',
  sgId: SG,
  epoch,
  reason: 'periodic',
});

const mixed = (i: number): ClusterEvent => {
  const base = { at: Date.now(), node: 'node-a' };
  switch (i % 5) {
    case 0:
      return { ...base, type: 'key.epoch', sgId: SG, epoch: i + 1, reason: 'member_left' };
    case 1:
      return { ...base, type: 'membership.changed', sgId: SG, added: [PNE(i)], removed: [], reason: 'join' };
    case 2:
      return { ...base, type: 'gw.lease', gwId: GW, nodeId: 'node-b', generation: i };
    case 3:
      return {
        ...base,
        type: 'membership.changed',
        sgId: SG,
        added: [PNE(1)],
        removed: [PNE(2)],
        reason: 'remove',
      };
    default:
      return { ...base, type: 'identity.revoked', identity: PNE(i) };
  }
};

async function until(cond: () => boolean, ms = 15_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Node {
  readonly bus: JetStreamBus;
  readonly got: Delivery[];
  readonly refused: Refusal[];
  sub: Subscription;
}

async function node(
  urls: readonly string[],
  nodeId: string,
  got: Delivery[] = [],
  opts: Partial<NatsBusLimits> = {},
): Promise<Node> {
  const bus = await openJetStreamBus({ servers: urls, connectionName: `test-${nodeId}`, ...opts });
  const refused: Refusal[] = [];
  const sub = await bus.subscribe(nodeId, (d) => void got.push(d), { onRefused: (r) => refused.push(r) });
  return { bus, got, refused, sub };
}

if (IN_CI && SKIP_REASON) {
  it('CPNS_TEST_NATS_URLS is set in CI (.ci/services/nats.sh)', () => {
    expect.fail(SKIP_REASON);
  });
}

describe.skipIf(SKIP_REASON !== undefined)(
  `event bus on the shared 3-node cluster${SKIP_REASON ? ` (skipped: ${SKIP_REASON})` : ''}`,
  () => {
    const open: JetStreamBus[] = [];

    beforeEach(async () => {
      // A fresh stream per test: events of earlier tests (or runs) are not delivered to new consumers.
      const nc = await connect({ servers: [...NATS_URLS] });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(NATS_BUS_DEFAULTS.stream).catch(() => false);
      await nc.close();
    });
    afterEach(async () => {
      await Promise.allSettled(open.splice(0).map((b) => b.close()));
    });
    const start = async (id: string, got?: Delivery[]) => {
      const n = await node(NATS_URLS, id, got);
      open.push(n.bus);
      return n;
    };

    it('three nodes each receive every event once, in publish order', async () => {
      const nodes = [await start('a'), await start('b'), await start('c')];
      const publisher = nodes[0]!.bus;
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) {
        const id = `outbox:${i + 1}`;
        ids.push(id);
        const r = await publisher.publish(mixed(i), id);
        expect(r.duplicate).toBe(false);
      }
      for (const n of nodes) {
        await until(() => n.got.length >= 40, 15_000, 'all events');
        await new Promise((r) => setTimeout(r, 200)); // nothing more arrives
        expect(n.got.map((d) => d.id)).toEqual(ids);
        expect(n.got.map((d) => d.event.type)).toEqual(ids.map((_, i) => mixed(i).type));
        const seqs = n.got.map((d) => d.seq);
        expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
        expect(n.refused).toEqual([]);
      }
      // An event is exactly what was published, and carries no key bytes: only {sgId, epoch, reason}.
      expect(nodes[1]!.got[0]!.event).toMatchObject({ type: 'key.epoch', sgId: SG, epoch: 1 });
      expect(Object.keys(nodes[1]!.got[0]!.event).sort()).toEqual([
        'at',
        'epoch',
        'node',
        'reason',
        'sgId',
        'type',
      ]);
    });

    it('a re-published idempotency id (outbox row after a crash) is stored and delivered once', async () => {
      const [a, b] = [await start('a'), await start('b')];
      const first = await a.bus.publish(epochEvent(7), 'outbox:42');
      // Another node (another connection) re-publishes the same outbox row.
      const again = await b.bus.publish(epochEvent(7), 'outbox:42');
      expect(again).toEqual({ seq: first.seq, duplicate: true });
      await a.bus.publish(epochEvent(8), 'outbox:43');
      for (const n of [a, b]) {
        await until(() => n.got.some((d) => d.id === 'outbox:43'), 15_000, 'marker');
        expect(n.got.map((d) => d.id)).toEqual(['outbox:42', 'outbox:43']);
      }
    });

    it('a node that was down catches up from its last acknowledged event', async () => {
      const pub = await start('pub');
      const got: Delivery[] = [];
      let c = await start('c', got);
      for (let i = 1; i <= 5; i++) await pub.bus.publish(epochEvent(i), `outbox:${i}`);
      await until(() => got.length === 5, 15_000, 'first five');
      await c.bus.close(); // node c goes down
      for (let i = 6; i <= 12; i++) await pub.bus.publish(epochEvent(i), `outbox:${i}`);
      c = await start('c', got); // node c restarts: same durable consumer
      await until(() => got.length >= 12, 15_000, 'catch-up');
      await new Promise((r) => setTimeout(r, 300));
      expect(got.map((d) => (d.event as { epoch: number }).epoch)).toEqual([
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
      ]);
      // A node that joins later (new node id) gets the whole history.
      const late = await start('late');
      await until(() => late.got.length === 12, 15_000, 'history');
    });

    it('a failing handler gets the same event again, before any later one (not acknowledged until it succeeds)', async () => {
      const pub = await start('pub');
      const bus = await openJetStreamBus({ servers: NATS_URLS, handlerRetryMs: 50 });
      open.push(bus);
      const seen: number[] = [];
      let failures = 0;
      await bus.subscribe(
        'flaky',
        (d) => {
          const epoch = (d.event as { epoch: number }).epoch;
          seen.push(epoch);
          if (epoch === 2 && failures < 3) {
            failures++;
            throw new Error('transient');
          }
        },
        { onHandlerError: () => undefined },
      );
      for (let i = 1; i <= 4; i++) await pub.bus.publish(epochEvent(i), `outbox:${i}`);
      await until(() => seen.includes(4), 15_000, 'last event');
      expect(seen).toEqual([1, 2, 2, 2, 2, 3, 4]);
    });

    it('refuses malformed, oversized and key-carrying messages with a typed code and keeps consuming', async () => {
      const n = await start('a');
      const js = jetstream(n.bus.nc);
      const raw = (subject: string, body: string | Uint8Array, msgID?: string) =>
        js.publish(subject, typeof body === 'string' ? Buffer.from(body) : body, msgID ? { msgID } : {});
      const good = (e: ClusterEvent) => JSON.stringify({ v: 1, ...e });
      const ev = epochEvent(3) as Extract<ClusterEvent, { type: 'key.epoch' }>;
      const evil = 'EVIL<script>';
      await raw('cpns.ev.key.epoch', Buffer.from([0xff, 0xfe, 0x00]), 'x:1'); // not UTF-8
      await raw('cpns.ev.key.epoch', `{"v":1,"type":"key.epoch",${evil}`, 'x:2'); // truncated JSON
      await raw('cpns.ev.key.epoch', JSON.stringify({ ...JSON.parse(good(ev)), key: 'AAAA' }), 'x:3'); // key bytes
      await raw('cpns.ev.key.epoch', `${good(ev).slice(0, -1)},"pad":"${'A'.repeat(20_000)}"}`, 'x:4'); // > 16 KiB
      await raw('cpns.ev.key.epoch', good({ ...ev, epoch: -1 }), 'x:5'); // bad value
      await raw('cpns.ev.sg.created', good(ev), 'x:6'); // body of another subject
      await raw('cpns.ev.key.epoch', good(ev)); // no idempotency id
      await raw('cpns.ev.key.epoch', JSON.stringify({ ...JSON.parse(good(ev)), v: 2 }), 'x:8');
      await raw('cpns.ev.nope', JSON.stringify({ v: 1, type: evil }), 'x:9'); // unknown type
      await raw('cpns.ev.key.epoch', JSON.stringify({ ...JSON.parse(good(ev)), ['__proto__']: {} }), 'x:10');
      // Bigger than the stream's max_msg_size: the servers refuse it at publish.
      await expect(
        raw('cpns.ev.key.epoch', 'A'.repeat(NATS_BUS_DEFAULTS.maxStreamMsgBytes + 1), 'x:11'),
      ).rejects.toThrow();
      await n.bus.publish(epochEvent(4), 'outbox:ok');
      await until(() => n.got.length === 1, 15_000, 'the valid event after the hostile ones');
      expect(n.got[0]!.id).toBe('outbox:ok');
      expect(n.refused.map((r) => r.error.code)).toEqual([
        'MALFORMED',
        'MALFORMED',
        'SCHEMA',
        'TOO_LARGE',
        'SCHEMA',
        'SCHEMA',
        'SCHEMA',
        'UNSUPPORTED_VERSION',
        'SCHEMA',
        'SCHEMA',
      ]);
      for (const r of n.refused) {
        expect(r.error.message).not.toContain('EVIL');
        expect(String(r.error.field)).not.toContain('EVIL');
        expect(r.error.message).not.toContain('AAAA');
      }
      // Refused messages were terminated: a restart of the node does not see them again.
      await n.bus.close();
      const again = await start('a');
      await again.bus.publish(epochEvent(5), 'outbox:ok2');
      await until(() => again.got.length === 1, 15_000, 'next event');
      expect(again.refused).toEqual([]);
      expect(again.got[0]!.id).toBe('outbox:ok2');
    });
  },
);

const FAILOVER_SKIP = HAS_NATS_SERVER ? undefined : 'no nats-server on PATH (apt-get install nats-server)';

if (IN_CI && FAILOVER_SKIP) {
  it('nats-server is installed in CI (.ci/services/nats.sh)', () => {
    expect.fail(FAILOVER_SKIP);
  });
}

describe.skipIf(FAILOVER_SKIP !== undefined)(
  `stream leader failover on a private 3-node cluster${FAILOVER_SKIP ? ` (skipped: ${FAILOVER_SKIP})` : ''}`,
  () => {
    let stop: (() => Promise<void>) | undefined;
    afterAll(async () => stop?.());

    it('publishing resumes after the stream leader process is killed; every node still gets every event', async () => {
      const cluster = await startPrivateCluster();
      const buses: JetStreamBus[] = [];
      stop = async () => {
        await Promise.allSettled(buses.map((b) => b.close()));
        await cluster.stop();
      };
      // The private cluster's servers have 256 MB of file store each.
      const small = { maxStreamBytes: 64 * 1024 * 1024 };
      const nodes = [await node(cluster.urls, 'a', [], small), await node(cluster.urls, 'b', [], small)];
      buses.push(...nodes.map((n) => n.bus));
      const pub = nodes[0]!.bus;
      const jsm = pub.jsm;
      const leader = (await jsm.streams.info(NATS_BUS_DEFAULTS.stream)).cluster?.leader;
      expect(leader).toMatch(/^n[123]$/);

      const acks: number[] = [];
      let i = 0;
      const publishSome = async (count: number) => {
        for (let k = 0; k < count; k++, i++) {
          await pub.publish(epochEvent(i + 1), `outbox:${i + 1}`);
          acks.push(Date.now());
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      await publishSome(30);
      const pid = cluster.kill(leader!);
      const killedAt = Date.now();
      const before = acks.length;
      await publishSome(30);
      const firstAfter = acks[before]!;
      let maxGap = 0;
      for (let k = 1; k < acks.length; k++) maxGap = Math.max(maxGap, acks[k]! - acks[k - 1]!);
      const newLeader = (await jsm.streams.info(NATS_BUS_DEFAULTS.stream)).cluster?.leader;
      console.log(
        `[failover] killed stream leader ${leader} (pid ${pid}); new leader ${newLeader}; ` +
          `first publish ack ${firstAfter - killedAt} ms after the kill; longest gap between acks ${maxGap} ms`,
      );
      expect(newLeader).not.toBe(leader);
      for (const n of nodes) {
        await until(() => n.got.length >= 60, 30_000, 'all events after failover');
        await new Promise((r) => setTimeout(r, 300));
        const ids = n.got.map((d) => d.id);
        expect(new Set(ids).size).toBe(60);
        expect(ids).toEqual(Array.from({ length: 60 }, (_, k) => `outbox:${k + 1}`));
      }
    }, 60_000);
  },
);
