/**
 * Grace of broadcast-delivered Group Keys (docs/broadcast.md §12): a periodic (or operator) update delivered by broadcast
 * keeps the previous epoch acceptable for the same grace as the unicast delivery would, so steady traffic loses
 * no message across switches; a leave-type update (remove) by broadcast still cuts the previous epoch at once.
 * Real TLS sessions, real UDP multicast on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PnGateway } from '../../src/gateway/index.js';
import type { GroupMessageEvent, PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import {
  sleep,
  startBroadcastGateway,
  startServer,
  startWifiPnes,
  tempDir,
  until,
  untilAcked,
} from './helpers.js';

const port = 40000 + Math.floor(Math.random() * 15000);
/** Messages per second sent by the traffic source during the switches. */
const RATE = Number(process.env.CPNS_GRACE_RATE ?? 200);
const SWITCHES = 3;

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;
const pnes: PneClient[] = [];

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir, {
    deliveryPolicy: { broadcast: true, broadcastThreshold: 2, ackTimeoutMs: 1500 },
    periodicGraceSec: 5,
  });
  gw = await startBroadcastGateway(server, `${tmp.dir}/gw`, { group: '239.255.77.6', port });
  pnes.push(...(await startWifiPnes(server, gw, 4)));
  await until(() => gw.broadcastCapable.length === 4, 5000, 'GKDK acks');
});

afterAll(async () => {
  await Promise.all(pnes.map((p) => p.close()));
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

interface KeyEvent {
  sgId: string;
  epoch: number;
  method: string;
  reason?: string;
}

describe('grace of broadcast-delivered keys', () => {
  let sgId: string;

  it(`periodic updates by broadcast under ${RATE} msgs/s: 0 messages lost across ${SWITCHES} switches`, async () => {
    const [a, ...receivers] = pnes as [PneClient, ...PneClient[]];
    ({ sgId } = await server.admin.createGroup({ name: 'grace', members: pnes.map((p) => p.identity) }));
    await until(() => pnes.every((p) => p.currentEpoch(sgId) === 1), 10_000, 'epoch 1');
    await untilAcked(server, sgId, 1);
    const keys: KeyEvent[] = [];
    const got = receivers.map(() => new Set<string>());
    const expired = receivers.map(() => 0);
    receivers.forEach((r, k) => {
      r.on('key', (e: KeyEvent) => {
        if (e.sgId === sgId) keys.push(e);
      });
      r.on('message', (m: GroupMessageEvent) => {
        if (m.sgId === sgId) got[k]!.add(m.plaintext.toString());
      });
      r.on('drop', (d: { code: string; sgId?: string }) => {
        if (d.sgId === sgId && d.code === 'EXPIRED_EPOCH') expired[k]!++;
      });
    });
    // Steady traffic from a: RATE messages/s in 10 ms ticks.
    let seq = 0;
    const perTick = Math.max(1, Math.round(RATE / 100));
    const sentEpochs = new Set<number>();
    const timer = setInterval(() => {
      for (let k = 0; k < perTick; k++) {
        a.send(sgId, `m${seq++}`);
        sentEpochs.add(a.currentEpoch(sgId) ?? 0);
      }
    }, 10);
    try {
      await sleep(300);
      // Periodic updates: the server's rekey timer (rekeyIntervalSec), here one every second.
      await server.admin.updatePolicy(sgId, { rekeyIntervalSec: 1 });
      await until(
        () => pnes.every((p) => (p.currentEpoch(sgId) ?? 0) >= 1 + SWITCHES),
        SWITCHES * 1000 + 5000,
        `${SWITCHES} switches`,
      );
      await server.admin.updatePolicy(sgId, { rekeyIntervalSec: null });
      await sleep(300);
    } finally {
      clearInterval(timer);
    }
    const sent = seq;
    // Let the last messages arrive.
    await until(() => got.every((g) => g.size >= sent), 3000, 'last messages').catch(() => {});
    const lost = got.map((g) => sent - [...g].filter((s) => s.startsWith('m')).length);
    const switches = (a.currentEpoch(sgId) ?? 1) - 1;
    console.log(
      `broadcast grace: ${sent} messages at ${RATE}/s over ${switches} switches; lost per receiver ${lost.join(', ')}` +
        ` (${(lost.reduce((x, y) => x + y, 0) / lost.length / switches).toFixed(1)} per switch); EXPIRED_EPOCH ${expired.join(', ')}`,
    );
    // The switches went by broadcast (not by the unicast fallback), with the periodic reason and its grace.
    const updates = keys.filter((k) => k.epoch > 1 && k.epoch <= 1 + SWITCHES);
    expect(updates.length).toBeGreaterThanOrEqual(receivers.length * SWITCHES);
    expect(updates.every((k) => k.method === 'broadcast')).toBe(true);
    expect(updates.every((k) => k.reason === 'periodic')).toBe(true);
    expect(sentEpochs.size).toBeGreaterThanOrEqual(SWITCHES);
    expect(lost).toEqual(receivers.map(() => 0));
    expect(expired).toEqual(receivers.map(() => 0));
  }, 30_000);

  it('a remove by broadcast still cuts the previous epoch at once (EXPIRED_EPOCH)', async () => {
    const [a, b, c, d] = pnes as [PneClient, PneClient, PneClient, PneClient];
    const e0 = a.currentEpoch(sgId)!;
    await until(() => pnes.every((p) => p.currentEpoch(sgId) === e0), 5000, 'same epoch');
    await sleep(200);
    // A periodic update by broadcast keeps the previous epoch: a message under it is a replay, not expired.
    const underPrev = a.send(sgId, 'before periodic');
    await until(() => {
      try {
        b.open(underPrev);
        return false;
      } catch (err) {
        return (err as { code?: string }).code === 'REPLAY';
      }
    }, 3000);
    const keys: KeyEvent[] = [];
    b.on('key', (k: KeyEvent) => {
      if (k.sgId === sgId) keys.push(k);
    });
    await server.admin.rekey(sgId); // operator update: grace like periodic
    await until(() => b.currentEpoch(sgId) === e0 + 1, 5000, 'operator update');
    expect(keys.at(-1)).toMatchObject({ epoch: e0 + 1, method: 'broadcast', reason: 'operator' });
    expect(codeOf(() => b.open(underPrev))).toBe('REPLAY'); // previous epoch still accepted (grace)
    await until(() => pnes.every((p) => p.currentEpoch(sgId) === e0 + 1), 5000, 'operator update everywhere');
    await sleep(200);
    // Now a leave-type update by broadcast: d is removed; the previous epoch must stop at once.
    const beforeRemove = a.send(sgId, 'before remove');
    await until(() => codeOf(() => b.open(beforeRemove)) === 'REPLAY', 3000, 'message received');
    await server.admin.removeMember(sgId, d.identity);
    await until(() => [a, b, c].every((p) => p.currentEpoch(sgId) === e0 + 2), 5000, 'remove update');
    expect(keys.at(-1)).toMatchObject({ epoch: e0 + 2, method: 'broadcast', reason: 'remove' });
    for (const p of [b, c]) expect(codeOf(() => p.open(beforeRemove))).toBe('EXPIRED_EPOCH');
  }, 20_000);
});

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}
