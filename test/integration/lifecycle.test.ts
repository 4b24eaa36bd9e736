import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCpnsError } from '../../src/core/errors.js';
import type { PnGateway } from '../../src/gateway/index.js';
import type { GroupMessageEvent, PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { inbox, startGateway, startPne, startServer, tempDir, until } from './helpers.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw1: PnGateway;
let gw2: PnGateway;
/** a,b,c on GW1 (c never joins: the non-member in the same PN); d,e on GW2. */
let a: PneClient, b: PneClient, c: PneClient, d: PneClient, e: PneClient;
const boxes = new Map<PneClient, GroupMessageEvent[]>();

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  [gw1, gw2] = await Promise.all([startGateway(server), startGateway(server)]);
  [a, b, c] = await Promise.all([startPne(server, gw1), startPne(server, gw1), startPne(server, gw1)]);
  [d, e] = await Promise.all([startPne(server, gw2), startPne(server, gw2)]);
  for (const p of [a, b, c, d, e]) boxes.set(p, inbox(p));
});

afterAll(async () => {
  await Promise.all([a, b, c, d, e].map((p) => p?.close()));
  await Promise.all([gw1?.close(), gw2?.close()]);
  await server?.close();
  tmp.cleanup();
});

const texts = (p: PneClient) => boxes.get(p)!.map((m) => m.plaintext.toString());

describe('Service Group lifecycle across two PNs', () => {
  let sgId: string;
  let removedCipher: Buffer;
  /** Epoch after the joins (update on join). */
  let epoch = 0;

  it('enrolls GWs and PNEs with tokens and registers the PNs', async () => {
    const pns = await server.admin.listPns();
    expect(pns).toHaveLength(2);
    const g1 = pns.find((p) => p.gwId === gw1.identity)!;
    expect(g1.pnes.map((p) => p.pneId).sort()).toEqual([a, b, c].map((p) => p.identity).sort());
    expect(g1.online).toBe(true);
    for (const p of [a, b, c, d, e]) expect(p.identity).toMatch(/^urn:cpns:pne:/);
  });

  it('a PNE creates an SG, others join; the key reaches every member in both PNs', async () => {
    const r = await a.createGroup({ name: 'game', joinPolicy: 'open' });
    sgId = r.sgId;
    expect(r.epoch).toBe(1);
    expect(a.currentEpoch(sgId)).toBe(1);
    await Promise.all([b.joinGroup(sgId), d.joinGroup(sgId), e.joinGroup(sgId)]);
    // Update on join (the default): the joins update the key; joins at the same moment share an update.
    await until(() => [a, b, d, e].every((p) => p.currentEpoch(sgId) === server.currentEpoch(sgId)));
    epoch = server.currentEpoch(sgId)!;
    expect(epoch).toBeGreaterThanOrEqual(2);
    expect(epoch).toBeLessThanOrEqual(4);
    expect(c.currentEpoch(sgId)).toBeUndefined();
    expect(gw1.keyEpoch(sgId)).toBe(epoch);
    expect(gw2.keyEpoch(sgId)).toBe(epoch);
    const g = (await server.admin.listGroups()).find((x) => x.sgId === sgId)!;
    expect(g.members.sort()).toEqual([a, b, d, e].map((p) => p.identity).sort());
  });

  it('messages reach all members in both PNs, not the sender, not the non-member', async () => {
    const cipher = a.send(sgId, 'hello from a');
    await until(() => [b, d, e].every((p) => texts(p).includes('hello from a')), 5000, 'delivery');
    const m = boxes.get(d)!.find((x) => x.plaintext.toString() === 'hello from a')!;
    expect(m.sender).toBe(a.identity);
    expect(m.sgId).toBe(sgId);
    expect(m.epoch).toBe(epoch);
    d.send(sgId, 'hello from d');
    await until(() => [a, b, e].every((p) => texts(p).includes('hello from d')), 5000, 'delivery');
    expect(texts(a)).not.toContain('hello from a');
    expect(texts(d)).not.toContain('hello from d');
    expect(texts(c)).toHaveLength(0);
    // The non-member in the same PN cannot open the ciphertext.
    expect(() => c.open(cipher)).toThrow();
    try {
      c.open(cipher);
    } catch (err) {
      expect(isCpnsError(err) && ['UNKNOWN_GROUP', 'UNKNOWN_EPOCH', 'BAD_MAC'].includes(err.code)).toBe(true);
    }
  });

  it('the CPNS Server itself sends to the SG: members in both PNs read it as from the server', async () => {
    const cipher = await server.sendToGroup(sgId, 'announcement from the server');
    await until(
      () => [a, b, d, e].every((p) => texts(p).includes('announcement from the server')),
      5000,
      'server message',
    );
    const m = boxes.get(e)!.find((x) => x.plaintext.toString() === 'announcement from the server')!;
    expect(m.sender).toBe('server');
    expect(texts(c)).not.toContain('announcement from the server');
    expect(() => c.open(cipher)).toThrow();
    expect(cipher.includes(Buffer.from('announcement'))).toBe(false);
    await expect(server.sendToGroup('00000000-0000-4000-8000-000000000000', 'x')).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
  });

  it('delivery tracking: every member acked the current epoch through its GW', async () => {
    await until(async () => {
      const st = await server.admin.groupStatus(sgId);
      return st.members.every((m) => m.ackedEpoch === epoch);
    });
    const st = await server.admin.groupStatus(sgId);
    expect(st.currentEpoch).toBe(epoch);
    expect(st.gateways.map((g) => g.ackedEpoch)).toEqual([epoch, epoch]);
  });

  it('removing a member updates the key at once; the removed PNE cannot read the next message', async () => {
    const removed = new Promise((r) => e.once('removed', r));
    await a.removeMember(sgId, e.identity);
    await removed;
    await until(() => [a, b, d].every((p) => p.currentEpoch(sgId) === epoch + 1), 5000, 'next epoch');
    expect(e.currentEpoch(sgId)).toBeUndefined();
    expect(gw2.keyEpoch(sgId)).toBe(epoch + 1);
    const before = texts(e).length;
    removedCipher = b.send(sgId, 'after removal');
    await until(() => [a, d].every((p) => texts(p).includes('after removal')));
    expect(texts(e)).toHaveLength(before);
    for (const p of [e, c]) {
      let code: string | undefined;
      try {
        p.open(removedCipher);
      } catch (err) {
        code = isCpnsError(err) ? err.code : 'other';
      }
      expect(['UNKNOWN_GROUP', 'UNKNOWN_EPOCH', 'BAD_MAC']).toContain(code);
    }
    // The server refuses to relay for the removed PNE at once (membership check).
    await expect(() => e.send(sgId, 'x')).toThrow();
    const audit = await server.store.listAudit({ sgId, limit: 100 });
    const actions = audit.entries.map((x) => `${x.action}:${x.reason ?? ''}`);
    expect(actions).toContain('key.create:create');
    expect(actions).toContain('member.remove:remove');
    expect(actions).toContain('key.update:remove');
    expect(JSON.stringify(audit.entries)).not.toMatch(/"key":/);
  });

  it('a leave updates the key; the operator can force an update', async () => {
    await b.leaveGroup(sgId);
    await until(() => [a, d].every((p) => p.currentEpoch(sgId) === epoch + 2), 5000, 'epoch after leave');
    expect(b.currentEpoch(sgId)).toBeUndefined();
    const r = await server.admin.rekey(sgId);
    expect(r.epoch).toBe(epoch + 3);
    await until(() => [a, d].every((p) => p.currentEpoch(sgId) === epoch + 3), 5000, 'operator epoch');
    a.send(sgId, 'epoch four');
    await until(() => texts(d).includes('epoch four'));
    expect(texts(b)).not.toContain('epoch four');
  });

  it('unauthorized management gets typed errors and changes nothing', async () => {
    await expect(d.removeMember(sgId, a.identity)).rejects.toSatisfy((x) => isCpnsError(x, 'FORBIDDEN'));
    await expect(d.deleteGroup(sgId)).rejects.toSatisfy((x) => isCpnsError(x, 'FORBIDDEN'));
    await expect(d.joinGroup(sgId)).rejects.toSatisfy((x) => isCpnsError(x, 'ALREADY_MEMBER'));
    await expect(c.leaveGroup(sgId)).rejects.toSatisfy((x) => isCpnsError(x, 'NOT_MEMBER'));
    await expect(c.joinGroup('00000000-0000-4000-8000-000000000000')).rejects.toSatisfy((x) =>
      isCpnsError(x, 'NOT_FOUND'),
    );
    await expect(c.fetchKey(sgId)).rejects.toSatisfy((x) => isCpnsError(x, 'NOT_MEMBER'));
    expect(server.currentEpoch(sgId)).toBe(epoch + 3);
  });

  it('invite-only SGs admit invited PNEs only', async () => {
    const r = await d.createGroup({ name: 'private', joinPolicy: 'invite' });
    await expect(c.joinGroup(r.sgId)).rejects.toSatisfy((x) => isCpnsError(x, 'FORBIDDEN'));
    await d.invite(r.sgId, c.identity);
    await c.joinGroup(r.sgId);
    await until(() => c.currentEpoch(r.sgId) === 2 && d.currentEpoch(r.sgId) === 2);
    c.send(r.sgId, 'private hello');
    await until(() => texts(d).includes('private hello'));
  });

  it('deleting the SG erases its keys at the server, GWs and PNEs', async () => {
    const deleted = [a, d].map((p) => new Promise((r) => p.once('group-deleted', r)));
    await a.deleteGroup(sgId);
    await Promise.all(deleted);
    for (const p of [a, d]) expect(p.currentEpoch(sgId)).toBeUndefined();
    expect(gw1.keyEpoch(sgId)).toBeUndefined();
    expect(gw2.keyEpoch(sgId)).toBeUndefined();
    expect(await server.store.getCurrentKey(sgId)).toBeUndefined();
    expect(await server.store.getGroup(sgId)).toBeUndefined();
  });
});
