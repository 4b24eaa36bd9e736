/**
 * A flood of junk on the broadcast medium during a genuine Group Key delivery (docs/broadcast.md §12): random bytes,
 * oversized datagrams, truncated copies of a real one, forgeries, replays and GW-signed datagrams of another tree
 * are sent on the multicast group while the server updates the key. Every member still gets the key (by broadcast,
 * or by the unicast fallback), and each PNE's drop counters show the flood by code. Real UDP multicast on loopback.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBroadcast, SIGNATURE_CONTEXT } from '../../src/core/broadcast/index.js';
import { ed25519Sign } from '../../src/core/crypto/ed25519.js';
import type { PnGateway } from '../../src/gateway/index.js';
import type { PneClient } from '../../src/pne/index.js';
import { GatewayBroadcastState } from '../../src/protocol/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { BroadcastMedium } from '../../src/transport/udp.js';
import {
  sleep,
  startBroadcastGateway,
  startServer,
  startWifiPnes,
  tempDir,
  until,
  untilAcked,
} from './helpers.js';

const GROUP = '239.255.77.11';
const port = 40000 + Math.floor(Math.random() * 15000);
/** Datagrams per junk category. */
const PER_KIND = 300;

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;
let pnes: PneClient[] = [];
let tx: dgram.Socket;

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir, {
    deliveryPolicy: { broadcast: true, broadcastThreshold: 2, ackTimeoutMs: 1500 },
  });
  gw = await startBroadcastGateway(server, `${tmp.dir}/gw`, { group: GROUP, port });
  pnes = await startWifiPnes(server, gw, 4);
  await until(() => gw.broadcastCapable.length === 4, 5000, 'GKDK acks');
  tx = dgram.createSocket('udp4');
  await new Promise<void>((r) => tx.bind(0, '127.0.0.1', () => r()));
  tx.setMulticastInterface('127.0.0.1');
  tx.setMulticastLoopback(true);
});

afterAll(async () => {
  tx?.close();
  await Promise.all(pnes.map((p) => p.close()));
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

const send = (d: Buffer) => new Promise<void>((r, j) => tx.send(d, port, GROUP, (e) => (e ? j(e) : r())));
const total = (p: PneClient) => [...p.broadcastDrops.values()].reduce((a, b) => a + b, 0);

describe('junk flood on the multicast group during a genuine delivery', () => {
  it('members get the key; drops are counted by code', async () => {
    const { sgId } = await server.admin.createGroup({ name: 'flood', members: pnes.map((p) => p.identity) });
    await until(() => pnes.every((p) => p.currentEpoch(sgId) === 1), 10_000, 'epoch 1 (unicast)');
    await untilAcked(server, sgId, 1);
    // One genuine broadcast (epoch 2), captured: the raw material of the truncated, forged and replayed junk.
    const tap = await BroadcastMedium.open({ name: 'wifi', group: GROUP, port });
    const captured: Buffer[] = [];
    tap.on('datagram', (d: Buffer) => captured.push(Buffer.from(d)));
    await server.admin.rekey(sgId);
    await until(() => pnes.every((p) => p.currentEpoch(sgId) === 2), 10_000, 'epoch 2');
    await until(() => captured.length > 0, 5000, 'the epoch-2 datagram on the medium');
    tap.close();
    const real = captured[0]!;
    // GW-signed datagrams of another tree (e.g. kept from before a rebuild): the GW's own state, rebuilt in memory.
    const state = GatewayBroadcastState.open(`${tmp.dir}/gw`, real.subarray(1, 17));
    const other = state.tree.rebuild();
    const [wrongTree] = buildBroadcast({
      gwSigningKey: state.signing.privateKey,
      tree: other,
      sgId: real.subarray(38, 54),
      epoch: 100,
      groupKey: randomBytes(32),
      memberPneIds: other.assignments().map((a) => a.pneId),
    });
    const junk: Record<string, () => Buffer> = {
      // random bytes whose first byte is not the wire version
      UNSUPPORTED_VERSION: () => {
        const b = randomBytes(1 + Math.floor(Math.random() * 1200));
        if (b[0] === 2) b[0] = 1;
        return b;
      },
      TOO_LARGE: () => randomBytes(1201 + Math.floor(Math.random() * 8000)),
      MALFORMED: () => real.subarray(0, 1 + Math.floor(Math.random() * (real.length - 1))),
      BAD_SIGNATURE: () => {
        const f = Buffer.from(real);
        f.writeUInt32BE(1000 + Math.floor(Math.random() * 1000), 54); // a future epoch, with the GW's
        // signature over something else
        ed25519Sign(state.signing.privateKey, Buffer.concat([SIGNATURE_CONTEXT, randomBytes(8)])).copy(
          f,
          f.length - 64,
        );
        return f;
      },
      STALE_EPOCH: () => real, // replay of the epoch-2 datagram
      WRONG_TREE: () => wrongTree!,
    };
    const kinds = Object.keys(junk);
    const before = pnes.map((p) => new Map(p.broadcastDrops));
    const totalsBefore = pnes.map(total);
    // Flood: PER_KIND of each kind, interleaved, in bursts of 60; the genuine delivery starts mid-flood.
    const order = kinds.flatMap((k) => Array.from({ length: PER_KIND }, () => k));
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let rekeyed: Promise<unknown> | undefined;
    const t0 = Date.now();
    for (let i = 0; i < order.length; i++) {
      await send(junk[order[i]!]!());
      if (i % 60 === 59) await sleep(5);
      if (i === Math.floor(order.length / 3)) rekeyed = server.admin.rekey(sgId);
    }
    const floodMs = Date.now() - t0;
    await rekeyed;
    // Every member gets epoch 3, by broadcast or by the unicast fallback.
    await until(() => pnes.every((p) => p.currentEpoch(sgId) === 3), 8000, 'epoch 3 under flood');
    await until(
      async () => (await server.admin.groupStatus(sgId)).members.every((m) => m.ackedEpoch === 3),
      8000,
      'acks of epoch 3',
    );
    const methods = (await server.admin.groupStatus(sgId)).members.map((m) => m.method);
    for (const m of methods) expect(['broadcast', 'fallback']).toContain(m);
    // Drop counters, by code: the flood is all there (loopback with a 4 MiB receive buffer loses nothing), the
    // oversized datagrams included (TOO_LARGE, counted by the medium before any decoding).
    const sent = order.length;
    await until(() => pnes.every((p, k) => total(p) - totalsBefore[k]! >= sent), 5000).catch(() => {});
    const delta = pnes.map((p, k) =>
      Object.fromEntries(kinds.map((c) => [c, (p.broadcastDrops.get(c) ?? 0) - (before[k]!.get(c) ?? 0)])),
    );
    console.log(
      `flood: ${sent} junk datagrams in ${floodMs} ms; per-PNE drops ${JSON.stringify(delta[0])}; methods ${methods.join(',')}`,
    );
    // Exactly PER_KIND each on this loopback; a little slack for a kernel that grants a smaller buffer
    // (net.core.rmem_max) on a loaded machine. Never more than was sent: nothing genuine is counted as junk.
    for (const d of delta) {
      for (const c of kinds) {
        expect(d[c], c).toBeGreaterThanOrEqual(Math.floor(PER_KIND * 0.95));
        expect(d[c], c).toBeLessThanOrEqual(PER_KIND);
      }
    }
    expect(pnes.every((p) => p.currentEpoch(sgId) === 3)).toBe(true);
  }, 40_000);
});
