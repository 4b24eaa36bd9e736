/**
 * Why nothing that needs a single writer is built on NATS compare-and-set (docs/store.md "Epoch allocation rule",
 * docs/cluster.md "nats-server 2.9.10 constraints"): on a 3-node cluster, nats-server before 2.9.21 may accept
 * several concurrent KV `update(key, value, revision)` calls that all expect the same revision (upstream
 * nats-server#4320: the expected-last-subject-sequence check is made against the leader's applied state, not the
 * proposals still in flight, so concurrent proposals can all pass). Debian 12 ships 2.9.10.
 *
 * This test records how many writers win per round and prints it; it asserts only what is safe on every version:
 * at least one writer wins, every winner got a distinct revision, and the stored value is one winner's. The epoch
 * allocation and every other single-writer decision use PostgreSQL row locks (`SELECT ... FOR UPDATE`) instead.
 */
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IN_CI, NATS_URLS, SKIP_REASON } from './env.js';

const BUCKET = 'cpns_test_cas_4320';
const ROUNDS = 20;
const WRITERS_PER_CONNECTION = 10;

if (IN_CI && SKIP_REASON) {
  it('CPNS_TEST_NATS_URLS is set in CI (.ci/services/nats.sh)', () => {
    expect.fail(SKIP_REASON);
  });
}

describe.skipIf(SKIP_REASON !== undefined)(
  `KV compare-and-set under concurrent writers (nats-server#4320)${SKIP_REASON ? ` (skipped: ${SKIP_REASON})` : ''}`,
  () => {
    const conns: NatsConnection[] = [];

    beforeAll(async () => {
      // One connection per server, so the writers' proposals come in through every node of the cluster.
      for (const url of NATS_URLS) conns.push(await connect({ servers: url, noRandomize: true }));
      const admin = new Kvm(conns[0]!);
      const old = await admin.open(BUCKET).catch(() => undefined);
      await old?.destroy().catch(() => false);
    });
    afterAll(async () => {
      await Promise.allSettled(conns.map((c) => c.close()));
    });

    it('records how many same-revision updates succeed; asserts at least one', async () => {
      const kvs = await Promise.all(
        conns.map((c, i) =>
          i === 0 ? new Kvm(c).create(BUCKET, { replicas: 3, history: 1 }) : new Kvm(c).open(BUCKET),
        ),
      );
      const kv0 = kvs[0]!;
      // Sequentially, the check holds: a stale revision is refused. Only concurrency breaks it.
      const r1 = await kv0.put('epoch.seq', 'a');
      await kv0.update('epoch.seq', 'b', r1);
      await expect(kvs[1]!.update('epoch.seq', 'c', r1)).rejects.toThrow();
      const counts: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const key = `epoch.r${round}`;
        const rev = await kv0.put(key, 'start');
        const attempts = kvs.flatMap((kv, c) =>
          Array.from({ length: WRITERS_PER_CONNECTION }, (_, w) => {
            const value = `w${c}-${w}`;
            return kv.update(key, value, rev).then(
              (newRev) => ({ value, newRev }),
              () => undefined,
            );
          }),
        );
        const winners = (await Promise.all(attempts)).filter((x) => x !== undefined);
        counts.push(winners.length);
        expect(winners.length).toBeGreaterThanOrEqual(1);
        expect(new Set(winners.map((w) => w.newRev)).size).toBe(winners.length);
        const stored = await kv0.get(key);
        expect(winners.map((w) => w.value)).toContain(stored?.string());
      }
      const server = conns[0]!.info?.version;
      const multi = counts.filter((n) => n > 1).length;
      console.log(
        `[cas-4320] nats-server ${server}: ${ROUNDS} rounds x ${conns.length * WRITERS_PER_CONNECTION} writers ` +
          `with the same expected revision; winners per round: [${counts.join(', ')}]; ` +
          `rounds with more than one winner: ${multi} (nats-server#4320, fixed in 2.9.21)`,
      );
      await kv0.destroy();
    }, 60_000);
  },
);
