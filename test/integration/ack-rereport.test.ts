/**
 * A PNE's ack that the server never recorded is reported again by its GW on the GW's next upstream session
 * (issue #11 §1, docs/store.md "What a crash can lose"; src/gateway/reports.ts).
 *
 * The GW batches reports for a minute here (`reportBatchMs`), so the PNEs' acks are still queued at the GW when
 * its session up to the server is cut (a TCP proxy between them): the server never heard them. After the
 * reconnect the server's catch-up delivery of the current epoch makes the GW report them again, at once; without
 * it the server would show the members as not holding the epoch for as long as the epoch lasts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { PneClient } from '../../src/pne/index.js';
import { CutProxy } from '../pg-proxy.js';
import { BACKOFF, enrollPne, startGateway, startServer, tempDir, until } from './helpers.js';

const tmp = tempDir();
const closers: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  tmp.cleanup();
});

describe('acks re-reported on a new upstream session', () => {
  it('acks queued at the GW when its session dropped reach the server after the reconnect', async () => {
    const server = await startServer(tmp.dir);
    closers.push(() => server.close());
    const u = new URL(server.url);
    const proxy = new CutProxy({ host: u.hostname, port: Number(u.port) });
    await proxy.start();
    closers.push(() => proxy.cut());
    const viaProxy = new URL(server.url);
    viaProxy.port = String(proxy.port);
    const gw = await startGateway(server, undefined, {
      serverUrl: viaProxy.toString(),
      reportBatchMs: 60_000,
    });
    closers.push(() => gw.close());
    const pnes = await Promise.all(
      [0, 1].map(async () =>
        PneClient.connect({
          gwUrl: gw.url,
          credentials: await enrollPne(server, gw),
          heartbeat: false,
          reconnect: BACKOFF,
        }),
      ),
    );
    for (const p of pnes) closers.push(() => p.close());
    const [p, q] = pnes;
    if (!p || !q) throw new Error('PNEs did not start');
    const { sgId } = await p.createGroup({ name: 're-report', joinPolicy: 'open' });
    await q.joinGroup(sgId);
    await until(() => p.currentEpoch(sgId) === 2 && q.currentEpoch(sgId) === 2, 5000, 'epoch 2 at the PNEs');
    // Both acked epoch 2 at the GW (the PNE acks once it installed the key); the reports wait in the GW's batch.
    await until(() => gw.ackedEpochs(sgId).size === 2, 5000, 'acks at the GW');
    expect([...gw.ackedEpochs(sgId).values()]).toEqual([2, 2]);
    const before = await server.admin.groupStatus(sgId);
    expect(before.members.map((m) => m.ackedEpoch)).not.toContain(2);

    await proxy.cut();
    await proxy.restore();
    await until(
      async () => (await server.admin.groupStatus(sgId)).members.every((m) => m.ackedEpoch === 2),
      10_000,
      'acks of epoch 2 at the server',
    );
    // No new epoch was needed for it: the server learned the acks of the epoch it already had.
    const after = await server.admin.groupStatus(sgId);
    expect(after.currentEpoch).toBe(2);
    expect(after.members.map((m) => m.method)).toEqual(['unicast', 'unicast']);
  }, 30_000);
});
