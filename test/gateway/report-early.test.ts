/**
 * The GW's delivery report of an epoch goes upstream as soon as the last attached target has acked it, not after
 * `reportBatchMs` (src/gateway/reports.ts; issue #11 §1: the delay only postponed the server's count of the
 * update as delivered). Here the delay is a minute, so a report seen within seconds went early.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PnGateway } from '../../src/gateway/index.js';
import type { PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { enrollPne, startGateway, startPne, startServer, tempDir, until } from '../integration/helpers.js';
import { silentPne } from '../integration/raw.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;
let a: PneClient;
let b: PneClient;
let quiet: Awaited<ReturnType<typeof silentPne>>;
let quiet2: Awaited<ReturnType<typeof silentPne>>;

/** The epochs the server has recorded as acked, per member, in member order (groupStatus writes its queue first). */
const acked = async (sgId: string) =>
  (await server.admin.groupStatus(sgId)).members.map((m) => [m.pneId, m.ackedEpoch]);

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  gw = await startGateway(server, undefined, { reportBatchMs: 60_000 });
  [a, b] = await Promise.all([startPne(server, gw), startPne(server, gw)]);
  quiet = await silentPne(gw.url, await enrollPne(server, gw));
  quiet2 = await silentPne(gw.url, await enrollPne(server, gw));
});

afterAll(async () => {
  quiet?.close();
  quiet2?.close();
  await Promise.all([a?.close(), b?.close()]);
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

describe('delivery reports at the GW', () => {
  it('every attached target acked: the report goes at once', async () => {
    const { sgId } = await server.admin.createGroup({ name: 'all-ack', members: [a.identity, b.identity] });
    await until(
      async () => (await acked(sgId)).every(([, e]) => e === 1),
      5000,
      'both acks at the server long before the minute of reportBatchMs',
    );
    const { epoch } = await server.admin.rekey(sgId);
    await until(async () => (await acked(sgId)).every(([, e]) => e === epoch), 5000, 'acks of the rekey');
  });

  it('one attached target has not acked: the others wait in the batch; its ack sends them all', async () => {
    const { sgId } = await server.admin.createGroup({
      name: 'one-silent',
      members: [a.identity, b.identity, quiet.identity],
    });
    await until(
      () => quiet.peer.got.some((m) => m.t === 'key.deliver' && m.sgId === sgId),
      5000,
      'key at the silent PNE',
    );
    await until(() => gw.ackedEpochs(sgId).size === 2, 5000, 'a and b acked at the GW');
    await new Promise((r) => setTimeout(r, 300));
    // Nothing reached the server: the report waits for the silent target (or the minute).
    expect((await acked(sgId)).map(([, e]) => e)).toEqual([null, null, null]);
    quiet.ack(sgId, 1);
    await until(
      async () => (await acked(sgId)).every(([, e]) => e === 1),
      5000,
      'all three acks at the server',
    );
  });

  it('a target repeating its ack (or acking an older epoch) does not count twice: the batch still waits', async () => {
    const { sgId } = await server.admin.createGroup({
      name: 'repeat',
      members: [a.identity, quiet.identity, quiet2.identity],
    });
    await until(
      () => [quiet, quiet2].every((q) => q.peer.got.some((m) => m.t === 'key.deliver' && m.sgId === sgId)),
      5000,
      'key at both silent PNEs',
    );
    await until(() => gw.ackedEpochs(sgId).size === 1, 5000, 'a acked at the GW');
    // the attacker: a member that acks again and again, and an epoch that is not the current one
    for (let i = 0; i < 5; i++) quiet.ack(sgId, 1);
    quiet.ack(sgId, 0);
    await until(() => gw.ackedEpochs(sgId).size === 2, 5000, 'quiet acked at the GW');
    await new Promise((r) => setTimeout(r, 300));
    // quiet2 is still outstanding: nothing went upstream (a count released by repeats would show a and quiet)
    expect((await acked(sgId)).map(([, e]) => e)).toEqual([null, null, null]);
    quiet2.ack(sgId, 1);
    await until(
      async () => (await acked(sgId)).every(([, e]) => e === 1),
      5000,
      'all three acks at the server',
    );
  });

  it('a report that fills the batch (reportBatchMax) still counts: the last ack of the epoch goes at once', async () => {
    const gw2 = await startGateway(server, undefined, { reportBatchMs: 60_000, reportBatchMax: 2 });
    const three = await Promise.all([0, 1, 2].map(() => startPne(server, gw2)));
    try {
      const { sgId } = await server.admin.createGroup({
        name: 'max-2',
        members: three.map((p) => p.identity),
      });
      // two acks fill a batch of 2 (sent); the third is the last outstanding one and goes at once too
      await until(
        async () => (await acked(sgId)).every(([, e]) => e === 1),
        5000,
        'all three acks at the server',
      );
    } finally {
      await Promise.all(three.map((p) => p.close()));
      await gw2.close();
    }
  });
});
