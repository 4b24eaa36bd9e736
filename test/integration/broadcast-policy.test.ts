/**
 * Per-Service-Group delivery policy (docs/broadcast.md §12 "Policy"; seed §5.3.3: the PN GW selects
 * unicast or broadcast under operator policy): an SG's own policy, carried with its key deliveries, overrides
 * the server-wide policy at the GW; changing it applies from the next update.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PnGateway } from '../../src/gateway/index.js';
import type { PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { startBroadcastGateway, startServer, startWifiPnes, tempDir, until } from './helpers.js';

const port = 40000 + Math.floor(Math.random() * 15000);
let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;
const pnes: PneClient[] = [];

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir, {
    deliveryPolicy: { broadcast: true, broadcastThreshold: 2, ackTimeoutMs: 3000 },
  });
  gw = await startBroadcastGateway(server, `${tmp.dir}/gw`, { group: '239.255.77.4', port });
  pnes.push(...(await startWifiPnes(server, gw, 3)));
  await until(() => gw.broadcastCapable.length === 3, 5000, 'GKDK acks');
});

afterAll(async () => {
  await Promise.all(pnes.map((p) => p.close()));
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

async function methodsAt(sgId: string, epoch: number): Promise<string[]> {
  await until(
    async () => (await server.admin.groupStatus(sgId)).members.every((m) => m.ackedEpoch === epoch),
    5000,
    `acks of epoch ${epoch}`,
  );
  return (await server.admin.groupStatus(sgId)).members.map((m) => String(m.method));
}

describe('delivery policy per Service Group', () => {
  it("an SG's own policy overrides the server-wide policy at the GW, and can be changed", async () => {
    const members = pnes.map((p) => p.identity);
    const dflt = await server.admin.createGroup({ name: 'default policy', members });
    const uni = await server.admin.createGroup({
      name: 'unicast only',
      members,
      deliveryPolicy: { broadcast: false, broadcastThreshold: 1, ackTimeoutMs: 1000 },
    });
    await until(() => pnes.every((p) => p.currentEpoch(dflt.sgId) === 1 && p.currentEpoch(uni.sgId) === 1));
    // The GW sends a PNE's first key of an SG by unicast; wait until the first keys' acks are through the GW
    // (the server has them), so the next update is chosen by policy alone.
    await methodsAt(dflt.sgId, 1);
    await methodsAt(uni.sgId, 1);

    const a = await server.admin.rekey(dflt.sgId);
    const b = await server.admin.rekey(uni.sgId);
    expect(await methodsAt(dflt.sgId, a.epoch)).toEqual(['broadcast', 'broadcast', 'broadcast']);
    expect(await methodsAt(uni.sgId, b.epoch)).toEqual(['unicast', 'unicast', 'unicast']);

    await server.admin.updatePolicy(uni.sgId, { deliveryPolicy: null });
    const c = await server.admin.rekey(uni.sgId);
    expect(await methodsAt(uni.sgId, c.epoch)).toEqual(['broadcast', 'broadcast', 'broadcast']);
    // the policy survives in the store
    expect((await server.store.getGroup(uni.sgId))?.deliveryPolicy).toBeNull();
    expect((await server.store.getGroup(dflt.sgId))?.deliveryPolicy).toBeNull();
  });
});
