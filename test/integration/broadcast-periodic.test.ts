/**
 * Periodic update distributed ahead of its activation (docs/broadcast.md §12): the server sends the next key with
 * activateIn (relative) and activateAt (absolute); members stage it, keep sending with the current epoch, and all
 * switch at activation. Such a key goes by unicast even when the broadcast policy applies (wire v2 can carry the
 * activation, but the GW does not broadcast staged keys).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PnGateway } from '../../src/gateway/index.js';
import type { GroupMessageEvent, PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { startBroadcastGateway, startServer, startWifiPnes, tempDir, until, untilAcked } from './helpers.js';

const port = 40000 + Math.floor(Math.random() * 15000);
let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;
const pnes: PneClient[] = [];

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir, {
    deliveryPolicy: { broadcast: true, broadcastThreshold: 2, ackTimeoutMs: 400 },
    periodicLeadSec: 1,
    periodicGraceSec: 1,
  });
  gw = await startBroadcastGateway(server, `${tmp.dir}/gw`, { group: '239.255.77.3', port });
  pnes.push(...(await startWifiPnes(server, gw, 4)));
  await until(() => gw.broadcastCapable.length === 4, 5000, 'GKDK acks');
});

afterAll(async () => {
  await Promise.all(pnes.map((p) => p.close()));
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

describe('periodic update ahead of activation', () => {
  it('members stage the next key, keep the current epoch until activation, then switch together', async () => {
    const [a, b] = pnes as [PneClient, PneClient];
    const staged: { epoch: number; activateAt: number; at: number; method: string }[] = [];
    a.on('key', (k: { epoch: number; activateAt?: number; method: string }) => {
      if (k.activateAt !== undefined)
        staged.push({ epoch: k.epoch, activateAt: k.activateAt, at: Date.now(), method: k.method });
    });
    const got: GroupMessageEvent[] = [];
    b.on('message', (m: GroupMessageEvent) => got.push(m));
    const { sgId } = await server.admin.createGroup({
      name: 'periodic',
      rekeyIntervalSec: 2,
      members: pnes.map((p) => p.identity),
    });
    await until(() => pnes.every((p) => p.currentEpoch(sgId) === 1), 10_000, 'epoch 1');
    await untilAcked(server, sgId, 1);
    await until(() => pnes.every((p) => p.stagedEpoch(sgId) === 2), 5000, 'epoch 2 staged');
    // Staged, not active: the current epoch is still 1 everywhere, and messages still go out under it.
    for (const p of pnes) expect(p.currentEpoch(sgId)).toBe(1);
    const s = staged.find((x) => x.epoch === 2)!;
    expect(s.method).toBe('unicast');
    // Relative activation, converted to the device's clock at receipt (about 1 s later).
    expect(s.activateAt - s.at).toBeGreaterThan(500);
    expect(s.activateAt - s.at).toBeLessThanOrEqual(1000);
    a.send(sgId, 'before');
    await until(() => got.some((m) => m.plaintext.toString() === 'before'), 3000, 'message before');
    expect(got.find((m) => m.plaintext.toString() === 'before')!.epoch).toBe(1);
    // Everyone switches at activation.
    await until(() => pnes.every((p) => p.currentEpoch(sgId) === 2), 3000, 'activation');
    a.send(sgId, 'after');
    await until(() => got.some((m) => m.plaintext.toString() === 'after'), 3000, 'message after');
    expect(got.find((m) => m.plaintext.toString() === 'after')!.epoch).toBe(2);
    const st = await server.admin.groupStatus(sgId);
    for (const m of st.members) {
      expect(m.ackedEpoch).toBeGreaterThanOrEqual(2);
      if (m.ackedEpoch === 2) expect(m.method).toBe('unicast');
    }
  });
});
