/**
 * A PNE's ack that the server never recorded is reported again by its GW on the GW's next upstream session
 * (issue #11 §1, docs/store.md "What a crash can lose"; src/gateway/reports.ts).
 *
 * The GW batches reports for a minute here (`reportBatchMs`), and a third member attached at the GW never acks (a
 * report goes at once when every attached target has acked), so the PNEs' acks are still queued at the GW when
 * its session up to the server is cut (a TCP proxy between them): the server never heard them. After the
 * reconnect the server's catch-up delivery of the current epoch makes the GW report them again, at once; without
 * it the server would show the members as not holding the epoch for as long as the epoch lasts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { PneClient } from '../../src/pne/index.js';
import { CutProxy } from '../pg-proxy.js';
import { BACKOFF, enrollPne, startGateway, startServer, tempDir, until } from './helpers.js';
import { silentPne } from './raw.js';

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
    const quiet = await silentPne(gw.url, await enrollPne(server, gw));
    closers.push(async () => quiet.close());
    const { sgId } = await p.createGroup({ name: 're-report', joinPolicy: 'open' });
    await server.admin.addMember(sgId, quiet.identity);
    await q.joinGroup(sgId);
    // epoch 1 at creation, 2 when the silent member was added, 3 when q joined
    const E = 3;
    await until(() => p.currentEpoch(sgId) === E && q.currentEpoch(sgId) === E, 5000, 'epoch 3 at the PNEs');
    // Both acked epoch 3 at the GW (the PNE acks once it installed the key); the reports wait in the GW's batch.
    await until(
      () => [...gw.ackedEpochs(sgId).values()].filter((e) => e === E).length === 2,
      5000,
      'acks at the GW',
    );
    const ours = (st: Awaited<ReturnType<typeof server.admin.groupStatus>>) =>
      st.members.filter((m) => m.pneId === p.identity || m.pneId === q.identity);
    expect(ours(await server.admin.groupStatus(sgId)).map((m) => m.ackedEpoch)).not.toContain(E);

    await proxy.cut();
    await proxy.restore();
    await until(
      async () => ours(await server.admin.groupStatus(sgId)).every((m) => m.ackedEpoch === E),
      10_000,
      'acks of epoch 3 at the server',
    );
    // No new epoch was needed for it: the server learned the acks of the epoch it already had.
    const after = await server.admin.groupStatus(sgId);
    expect(after.currentEpoch).toBe(E);
    expect(ours(after).map((m) => m.method)).toEqual(['unicast', 'unicast']);
  }, 30_000);
});
