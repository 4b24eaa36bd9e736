/**
 * Delivery tracking that keeps up (issue #11 §1), end to end on a real server: accepted acks are queued and written
 * in batches (here: only by a status read or at close, the delay is a minute), the ack latency comes from the
 * in-memory tracker (once per epoch, offline members not waited for), and close writes what is still queued.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openServerStore } from '../../src/embed/index.js';
import type { PnGateway } from '../../src/gateway/index.js';
import { CpnsMetrics } from '../../src/metrics/index.js';
import type { PneClient } from '../../src/pne/index.js';
import type { ChangeEvent } from '../../src/server/events.js';
import type { CpnsServer } from '../../src/server/index.js';
import { startGateway, startPne, startServer, tempDir, until } from '../integration/helpers.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer | undefined;
let gw: PnGateway | undefined;
let pnes: PneClient[] = [];
const metrics = new CpnsMetrics({ defaultMetrics: false });
const latency = vi.spyOn(metrics, 'ackLatency');
const acks: ChangeEvent[] = [];
/** key.ack and key.delivered events, in the order the server emitted them. */
const seen: ChangeEvent[] = [];
/** The key.delivered events of `sgId`: their epochs, in order. */
const delivered = (sgId: string) =>
  seen.filter((e) => e.kind === 'key.delivered' && e.sgId === sgId).map((e) => e.epoch);
/** Acks the server accepted of `epoch` (the GW reports several PNEs in one key.delivery.report: one event). */
const ackEvents = (sgId: string, epoch: number) => acks.filter((e) => e.sgId === sgId && e.epoch === epoch);

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir, { metrics, deliveryBatchMs: 60_000 });
  server.events.on('change', (e: ChangeEvent) => {
    if (e.kind === 'key.ack') acks.push(e);
    if (e.kind === 'key.ack' || e.kind === 'key.delivered') seen.push(e);
  });
  gw = await startGateway(server);
  pnes = await Promise.all([startPne(server, gw), startPne(server, gw), startPne(server, gw)]);
});

afterAll(async () => {
  await Promise.all(pnes.map((p) => p.close()));
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

describe('batched delivery records and the in-memory ack tracker', () => {
  it('acks are queued, shown by groupStatus (it flushes first), timed once per epoch, and written at close', async () => {
    const srv = server!;
    const [a, b, c] = pnes as [PneClient, PneClient, PneClient];
    const { sgId } = await srv.admin.createGroup({
      name: 'batched',
      members: [a.identity, b.identity, c.identity],
    });
    // The ack latency is observed when the last member's ack is accepted (not written).
    await until(() => latency.mock.calls.length === 1, 5000, 'acks of epoch 1');
    expect(ackEvents(sgId, 1).length).toBeGreaterThan(0);
    // ... and said once, as 'key.delivered', after the last accepted ack of the epoch, with the update's id.
    expect(delivered(sgId)).toEqual([1]);
    const d1 = seen.findIndex((e) => e.kind === 'key.delivered' && e.sgId === sgId);
    expect(seen.findLastIndex((e) => e.kind === 'key.ack' && e.sgId === sgId && e.epoch === 1)).toBeLessThan(
      d1,
    );
    expect(seen[d1]!.updateId).toMatch(/^[0-9a-f-]{36}$/);

    // Accepted but still queued (nothing reached 512 rows, the delay is a minute): the store has none yet...
    expect((await srv.store.deliveryStatus(sgId)).members.map((m) => m.ackedEpoch)).toEqual([
      null,
      null,
      null,
    ]);
    // ... the operator's status writes the queue first.
    const st = await srv.admin.groupStatus(sgId);
    expect(st.members.map((m) => [m.ackedEpoch, m.lag])).toEqual([
      [1, 0],
      [1, 0],
      [1, 0],
    ]);

    // An offline member does not hold the latency up.
    await c.close();
    pnes = [a, b];
    await until(
      async () => (await srv.store.getPne(c.identity))?.online === false,
      5000,
      'c offline at the server',
    );
    const { epoch } = await srv.admin.rekey(sgId);
    await until(() => latency.mock.calls.length === 2, 5000, `acks of epoch ${epoch}`);
    await srv.admin.rekey(sgId);
    await until(() => latency.mock.calls.length === 3, 5000, `acks of epoch ${epoch + 1}`);
    await Promise.all([a.waitForKey(sgId, epoch + 1), b.waitForKey(sgId, epoch + 1)]);
    // Once per epoch: late or repeated acks do not observe it again.
    await new Promise((r) => setTimeout(r, 100));
    expect(latency).toHaveBeenCalledTimes(3);
    expect(delivered(sgId)).toEqual([1, epoch, epoch + 1]);
    expect((await srv.store.deliveryStatus(sgId)).members.filter((m) => m.ackedEpoch === epoch + 1)).toEqual(
      [],
    );

    // Close writes the queued acks before the store closes.
    await Promise.all(pnes.map((p) => p.close()));
    pnes = [];
    await gw?.close();
    gw = undefined;
    await srv.close();
    server = undefined;
    const store = await openServerStore(tmp.dir);
    try {
      const after = await store.deliveryStatus(sgId);
      const by = new Map(after.members.map((m) => [m.pneId, m.ackedEpoch]));
      expect(by.get(a.identity)).toBe(epoch + 1);
      expect(by.get(b.identity)).toBe(epoch + 1);
      expect(by.get(c.identity)).toBe(1);
    } finally {
      await store.close();
    }
  });
});
