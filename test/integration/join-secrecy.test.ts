/**
 * docs/protocol.md "Backward secrecy on join": backward secrecy on join. With "update on join" (the default) a PNE that recorded an SG's
 * ciphertext before it joined cannot open it afterwards; a batch of joins costs one update; with the policy off
 * the joiner can (and the status says the policy is off).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHeader } from '../../src/core/group/header.js';
import type { PnGateway } from '../../src/gateway/index.js';
import type { PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { inbox, startGateway, startPne, startServer, tempDir, until } from './helpers.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw1: PnGateway;
let gw2: PnGateway;
let a: PneClient;
let b: PneClient;
const joiners: PneClient[] = [];

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  [gw1, gw2] = await Promise.all([startGateway(server), startGateway(server)]);
  [a, b] = await Promise.all([startPne(server, gw1), startPne(server, gw2)]);
  for (let i = 0; i < 5; i++) joiners.push(await startPne(server, i % 2 === 0 ? gw1 : gw2));
});

afterAll(async () => {
  await Promise.all([a, b, ...joiners].map((p) => p?.close()));
  await Promise.all([gw1?.close(), gw2?.close()]);
  await server?.close();
  tmp.cleanup();
});

const hasEpoch = (p: PneClient, sgId: string, epoch: number) => (p.currentEpoch(sgId) ?? 0) >= epoch;
/** 'OK', or the code opening fails with. */
const openCode = (p: PneClient, raw: Buffer): string => {
  try {
    p.open(raw);
    return 'OK';
  } catch (e) {
    return String((e as { code?: string }).code);
  }
};

describe('backward secrecy on join', () => {
  it('with update on join (the default), a joiner cannot open what it recorded before it joined', async () => {
    const { sgId, epoch } = await server.admin.createGroup({
      name: 'secret past',
      members: [a.identity, b.identity],
    });
    await until(() => hasEpoch(a, sgId, epoch) && hasEpoch(b, sgId, epoch));
    const [c] = joiners as [PneClient];
    // c (a PNE of the same PN as a, not a member) records a message of the SG.
    const gotB = inbox(b);
    const recorded = a.send(sgId, 'before c joined');
    await until(() => gotB.some((m) => m.plaintext.toString() === 'before c joined'));

    await server.admin.addMember(sgId, c.identity);
    await until(() => hasEpoch(c, sgId, epoch + 1), 5000, 'joiner has the new key');
    expect(server.currentEpoch(sgId)).toBe(epoch + 1);
    expect(c.currentEpoch(sgId)).toBe(epoch + 1);
    // Not a replay refusal (REPLAY): it never had a key for that epoch (its first epoch is the next one).
    expect(readHeader(recorded).epoch).toBe(epoch);
    expect(['UNKNOWN_EPOCH', 'EXPIRED_EPOCH']).toContain(openCode(c, recorded));
    // ...but it reads what comes after, and so do the others.
    await until(() => hasEpoch(a, sgId, epoch + 1) && hasEpoch(b, sgId, epoch + 1));
    const gotC = inbox(c);
    a.send(sgId, 'after c joined');
    await until(() => gotC.some((m) => m.plaintext.toString() === 'after c joined'));
    const audit = await server.store.listAudit({ sgId });
    expect(audit.entries.some((e) => e.action === 'key.update' && e.reason === 'join')).toBe(true);
    expect((await server.admin.listGroups()).find((g) => g.sgId === sgId)?.updateOnJoin).toBe(true);
  });

  it('a batch of joins costs one key update, and every joiner gets it', async () => {
    const { sgId, epoch } = await server.admin.createGroup({ name: 'batch', members: [a.identity] });
    await until(() => hasEpoch(a, sgId, epoch));
    const batch = joiners.slice(1, 5);
    await server.admin.addMembers(
      sgId,
      batch.map((p) => p.identity),
    );
    await until(() => batch.every((p) => hasEpoch(p, sgId, epoch + 1)), 5000, 'every joiner has the key');
    expect(server.currentEpoch(sgId)).toBe(epoch + 1);
    expect(batch.every((p) => p.currentEpoch(sgId) === epoch + 1)).toBe(true);
  });

  it('with the policy off, a joiner gets the current key (it can read the current epoch) and the status says so', async () => {
    const { sgId, epoch } = await server.admin.createGroup({
      name: 'open past',
      members: [a.identity],
      updateOnJoin: false,
      joinPolicy: 'open',
    });
    await until(() => hasEpoch(a, sgId, epoch));
    const recorded = a.send(sgId, 'before the join');
    const c = joiners[0]!;
    await c.joinGroup(sgId);
    await until(() => hasEpoch(c, sgId, epoch), 5000);
    expect(server.currentEpoch(sgId)).toBe(epoch);
    // It holds the key of the epoch the recording was made under, so it can decrypt it offline. (Its own
    // receiver still refuses that message: the relay mark handed to it as a replay anchor covers it.)
    expect(readHeader(recorded).epoch).toBe(epoch);
    expect(c.currentEpoch(sgId)).toBe(epoch);
    expect((await server.admin.listGroups()).find((g) => g.sgId === sgId)?.updateOnJoin).toBe(false);
    // Turned back on: the next join updates the key.
    await server.admin.updatePolicy(sgId, { updateOnJoin: true });
    await server.admin.addMember(sgId, joiners[1]!.identity);
    await until(() => hasEpoch(joiners[1]!, sgId, epoch + 1), 5000);
  });

  it('a PNE that joins by itself (sg.join) also only gets the new key', async () => {
    const { sgId, epoch } = await server.admin.createGroup({
      name: 'self join',
      members: [a.identity],
      joinPolicy: 'open',
    });
    await until(() => hasEpoch(a, sgId, epoch));
    const recorded = a.send(sgId, 'before');
    const c = joiners[2]!;
    await c.joinGroup(sgId);
    await until(() => hasEpoch(c, sgId, epoch + 1), 5000);
    expect(['UNKNOWN_EPOCH', 'EXPIRED_EPOCH']).toContain(openCode(c, recorded));
  });
});
