/**
 * docs/protocol.md "Authorization": a PN GW may act only for the PNEs that proved they are behind it. Each test names the rule of
 * docs/protocol.md "Authorization" it attacks (A1 attachment proof, A2 claims, A3 status, A4 detach, K1/K2 acks
 * and delivery reports, R1 relay attribution).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlMessage } from '../../src/core/codec/index.js';
import { Suite } from '../../src/core/crypto/aead.js';
import { GroupSender } from '../../src/core/group/sender.js';
import type { PnGateway } from '../../src/gateway/index.js';
import type { PneClient } from '../../src/pne/index.js';
import { uuidOf, uuidToBytes } from '../../src/protocol/control.js';
import type { CpnsServer } from '../../src/server/index.js';
import { inbox, sleep, startGateway, startPne, startServer, tempDir, until } from '../integration/helpers.js';
import type { RawPeer } from '../integration/raw.js';
import { provenPne as provenPneOf, rogueGw as rogueGwOf } from './rogue.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw1: PnGateway;
let a: PneClient;
let b: PneClient;
let sgId: string;
const raws: RawPeer[] = [];

async function rogueGw(): Promise<RawPeer> {
  const raw = await rogueGwOf(server);
  raws.push(raw);
  return raw;
}
const provenPne = (raw: RawPeer) => provenPneOf(server, raw);

const keyDelivers = (raw: RawPeer, sg: string, from = 0) =>
  raw.got.slice(from).filter((m): m is Extract<ControlMessage, { t: 'key.deliver' }> => {
    return m.t === 'key.deliver' && m.sgId === sg;
  });

function forged(pne: string, sg: string, epoch: number, key = Buffer.alloc(32, 7)): Buffer {
  return new GroupSender({ senderId: uuidToBytes(uuidOf(pne)) }).protect(
    uuidToBytes(sg),
    { epoch, key, suite: Suite.AES_256_GCM },
    Buffer.from('forged'),
  );
}

/** What an attack must leave unchanged: epochs, where the PNE lives, the delivery status. */
async function snapshot() {
  return {
    epoch: server.currentEpoch(sgId),
    a: await server.store.getPne(a.identity),
    status: await server.admin.groupStatus(sgId),
  };
}

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  gw1 = await startGateway(server);
  [a, b] = await Promise.all([startPne(server, gw1), startPne(server, gw1)]);
  sgId = (await a.createGroup({ name: 'victims', joinPolicy: 'open' })).sgId;
  await b.joinGroup(sgId);
  await until(async () => {
    const st = await server.admin.groupStatus(sgId);
    return st.members.every((m) => m.ackedEpoch === st.currentEpoch);
  });
});

afterAll(async () => {
  for (const r of raws) r.session.close();
  await Promise.all([a?.close(), b?.close()]);
  await gw1?.close();
  await server?.close();
  tmp.cleanup();
});

describe('a GW acts only for the PNEs that proved they are behind it', () => {
  it('A2: an enrolled GW with no PNEs claims a member PNE of another PN: no key, no signers, no move', async () => {
    const raw = await rogueGw();
    const before = await snapshot();
    const att = raw.control({ t: 'pne.attach', pneId: a.identity, media: ['wifi'] });
    // The claim itself is answered (it carries media only), but it grants nothing.
    await raw.next((m) => (m.t === 'ok' && m.ref === att) || (m.t === 'error' && m.ref === att));
    await server.admin.rekey(sgId);
    await until(async () =>
      (await server.admin.groupStatus(sgId)).members.every((m) => m.ackedEpoch === before.epoch! + 1),
    );
    await sleep(100);
    expect(keyDelivers(raw, sgId)).toEqual([]);
    expect(raw.got.some((m) => m.t === 'sg.signers')).toBe(false);
    const pne = await server.store.getPne(a.identity);
    expect(pne?.gwId).toBe(gw1.identity);
    expect(pne?.online).toBe(true);
    const st = await server.admin.groupStatus(sgId);
    expect(st.members.find((m) => m.pneId === a.identity)?.gwId).toBe(gw1.identity);
  });

  it("R1: its forged messages in that PNE's name are refused and reach nobody", async () => {
    const raw = await rogueGw();
    raw.control({ t: 'pne.attach', pneId: a.identity, media: ['wifi'] });
    const got = inbox(b);
    const code = await raw.errorOf(() => raw.group(forged(a.identity, sgId, server.currentEpoch(sgId)!)));
    expect(code).toBe('FORBIDDEN');
    await sleep(100);
    expect(got).toEqual([]);
  });

  it.each([
    [
      'K1: key.ack for an SG it was never sent',
      () => ({ t: 'key.ack', sgId, epoch: server.currentEpoch(sgId)! }),
    ],
    [
      'K2: key.ack in the name of a PNE of another PN',
      () => ({ t: 'key.ack', sgId, epoch: server.currentEpoch(sgId)!, pneId: a.identity, method: 'unicast' }),
    ],
    [
      'K2: delivery report naming a PNE of another PN',
      () => ({
        t: 'key.delivery.report',
        sgId,
        epoch: server.currentEpoch(sgId)!,
        entries: [{ pneId: a.identity, method: 'broadcast', ackedAt: 1 }],
      }),
    ],
    [
      'A3: pne.status of a PNE it only claimed',
      () => ({ t: 'pne.status', pneId: a.identity, online: false }),
    ],
    ['A4: pne.detach of a PNE it only claimed', () => ({ t: 'pne.detach', pneId: a.identity })],
  ])('%s -> FORBIDDEN, nothing changes', async (_name, msg) => {
    const raw = await rogueGw();
    const att = raw.control({ t: 'pne.attach', pneId: a.identity, media: ['wifi'] });
    await raw.next((m) => m.t === 'ok' && m.ref === att);
    const before = await snapshot();
    // biome-ignore lint/suspicious/noExplicitAny: hand-made hostile messages
    expect(await raw.errorOf(() => raw.control(msg() as any))).toBe('FORBIDDEN');
    await sleep(50);
    expect(await snapshot()).toEqual(before);
  });

  it('K1/K2: a GW with its own proven member acks only what it was sent, for its own PNEs', async () => {
    const raw = await rogueGw();
    const { creds, tunnel } = await provenPne(raw);
    const other = (await server.admin.createGroup({ name: 'not served by raw' })).sgId;
    const mine = (await server.admin.createGroup({ name: 'served by raw', members: [creds.identity] })).sgId;
    const kd = await raw.next((m) => m.t === 'key.deliver' && m.sgId === mine);
    const epoch = kd.t === 'key.deliver' ? kd.epoch : 0;
    expect(kd.t === 'key.deliver' && kd.targets).toEqual([creds.identity]);
    // An SG it serves no member of (and was never sent).
    const otherStatus = await server.admin.groupStatus(other);
    expect(await raw.errorOf(() => raw.control({ t: 'key.ack', sgId: other, epoch: 1 }))).toBe('FORBIDDEN');
    expect(await server.admin.groupStatus(other)).toEqual(otherStatus);
    // Its own SG, its own PNE, the epoch it was sent: accepted.
    const ok = raw.control({
      t: 'key.delivery.report',
      sgId: mine,
      epoch,
      entries: [{ pneId: creds.identity, method: 'unicast', ackedAt: Date.now() }],
    });
    await raw.next((m) => m.t === 'ok' && m.ref === ok);
    const st = await server.admin.groupStatus(mine);
    expect(st.members.find((m) => m.pneId === creds.identity)?.ackedEpoch).toBe(epoch);
    // One foreign entry refuses the whole report.
    const mixed = () =>
      raw.control({
        t: 'key.delivery.report',
        sgId: mine,
        epoch,
        entries: [
          { pneId: creds.identity, method: 'unicast', ackedAt: Date.now() },
          { pneId: a.identity, method: 'unicast', ackedAt: Date.now() },
        ],
      });
    expect(await raw.errorOf(mixed)).toBe('FORBIDDEN');
    tunnel.socket.destroy();
  });

  it('A1: a PNE that moves to another GW is lost by the old one at once', async () => {
    const old = await rogueGw();
    const { creds, tunnel } = await provenPne(old);
    await server.admin.addMember(sgId, creds.identity);
    const kd = await old.next(
      (m) => m.t === 'key.deliver' && m.sgId === sgId && m.targets?.includes(creds.identity) === true,
    );
    const oldKey = kd.t === 'key.deliver' ? Buffer.from(kd.key) : Buffer.alloc(32);
    const epoch = server.currentEpoch(sgId)!;
    // Before the move, the old GW relays for it.
    const gotB = inbox(b);
    old.group(forged(creds.identity, sgId, epoch, oldKey));
    await until(() => gotB.length === 1, 3000, 'relay before the move');

    const from = old.got.length;
    const moved = await startPne(server, gw1, creds);
    await until(async () => (await server.store.getPne(creds.identity))?.gwId === gw1.identity);
    // The old GW is told at once: the same epoch, without the PNE in its targets; its tunnel is closed.
    await old.next(
      (m) => m.t === 'key.deliver' && m.sgId === sgId && m.targets?.includes(creds.identity) === false,
      from,
    );
    await until(() => tunnel.socket.destroyed, 3000, 'old tunnel closed');
    // It can no longer speak or ack in the PNE's name.
    expect(await old.errorOf(() => old.group(forged(creds.identity, sgId, epoch, oldKey)))).toBe('FORBIDDEN');
    // (after the moved PNE's own ack through its new GW has landed)
    await until(async () => {
      const m = (await server.admin.groupStatus(sgId)).members.find((x) => x.pneId === creds.identity);
      return m?.gwId === gw1.identity && m.ackedEpoch === epoch;
    });
    const before = await server.admin.groupStatus(sgId);
    expect(
      await old.errorOf(() =>
        old.control({ t: 'key.ack', sgId, epoch, pneId: creds.identity, method: 'unicast' }),
      ),
    ).toBe('FORBIDDEN');
    expect(await server.admin.groupStatus(sgId)).toEqual(before);
    // The next key update does not reach the old GW; the moved PNE gets it through its new GW.
    const from2 = old.got.length;
    await server.admin.rekey(sgId);
    await until(() => (moved.currentEpoch(sgId) ?? 0) === epoch + 1, 5000, 'moved PNE has the new key');
    await sleep(100);
    expect(keyDelivers(old, sgId, from2).filter((m) => m.targets && m.targets.length > 0)).toEqual([]);
    await moved.close();
  });

  it("A1: when a PNE's tunnel goes away its GW loses it: offline, and no further keys for it", async () => {
    const raw = await rogueGw();
    const { creds, tunnel } = await provenPne(raw);
    await server.admin.addMember(sgId, creds.identity);
    await raw.next(
      (m) => m.t === 'key.deliver' && m.sgId === sgId && m.targets?.includes(creds.identity) === true,
    );
    tunnel.socket.destroy();
    await until(async () => (await server.store.getPne(creds.identity))?.online === false);
    const from = raw.got.length;
    await server.admin.rekey(sgId);
    await sleep(200);
    expect(keyDelivers(raw, sgId, from).filter((m) => m.targets && m.targets.length > 0)).toEqual([]);
    // And the GW may not speak for it.
    const epoch = server.currentEpoch(sgId)!;
    expect(await raw.errorOf(() => raw.group(forged(creds.identity, sgId, epoch)))).toBe('FORBIDDEN');
    await server.admin.removeMember(sgId, creds.identity);
  });
});
