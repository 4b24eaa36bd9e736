/**
 * Source authentication per Service Group (docs/group-messages.md "Source authentication"): in an SG created with
 * sourceAuth, every member signs its messages with its own Ed25519 key, registered over its end-to-end tunnel to
 * the server (so bound to its certificate); the server distributes the members' keys; receivers refuse unsigned
 * messages and messages signed by anyone but the named sender — even from an insider who holds the Group Key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Suite } from '../../src/core/crypto/aead.js';
import { ed25519Generate } from '../../src/core/crypto/ed25519.js';
import { isCpnsError } from '../../src/core/errors.js';
import { FLAG_SIGNED, GroupSender, readHeader } from '../../src/core/group/index.js';
import type { PnGateway } from '../../src/gateway/index.js';
import type { GroupMessageEvent, PneClient } from '../../src/pne/index.js';
import { uuidOf, uuidToBytes } from '../../src/protocol/control.js';
import type { CpnsServer } from '../../src/server/index.js';
import { inbox, startGateway, startPne, startServer, tempDir, until } from './helpers.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gws: PnGateway[] = [];
let a: PneClient, b: PneClient, c: PneClient;
const boxes = new Map<PneClient, GroupMessageEvent[]>();

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  gws = [await startGateway(server), await startGateway(server)];
  a = await startPne(server, gws[0]!);
  b = await startPne(server, gws[0]!);
  c = await startPne(server, gws[1]!);
  for (const p of [a, b, c]) boxes.set(p, inbox(p));
});

afterAll(async () => {
  for (const p of [a, b, c]) await p?.close();
  for (const g of gws) await g.close();
  await server?.close();
  tmp.cleanup();
});

const code = (f: () => unknown): string => {
  try {
    f();
    return 'OK';
  } catch (e) {
    return isCpnsError(e) ? e.code : 'THROWN';
  }
};

describe('source authentication (Ed25519 per member)', () => {
  it('members sign and verify; forged and unsigned messages are refused by receivers', async () => {
    const { sgId } = await server.admin.createGroup({
      name: 'signed',
      sourceAuth: true,
      members: [a.identity, b.identity, c.identity],
    });
    await until(() => [a, b, c].every((p) => p.currentEpoch(sgId) === 1), 5000, 'keys');
    // signing keys reach every member: a signed message from a is read in both PNs
    let sent: Buffer | undefined;
    await until(
      () => {
        sent = a.send(sgId, 'signed hello');
        return [b, c].every((p) => boxes.get(p)!.some((m) => m.plaintext.toString() === 'signed hello'));
      },
      5000,
      'signed delivery',
    );
    expect(readHeader(sent!).flags & FLAG_SIGNED).toBe(FLAG_SIGNED);
    expect(boxes.get(c)!.find((m) => m.plaintext.toString() === 'signed hello')!.sender).toBe(a.identity);

    // An insider holding the Group Key (here: read from the server's store) forges a message "from b".
    const k = (await server.store.getCurrentKey(sgId))!;
    const gk = { epoch: k.epoch, key: k.key, suite: Suite.AES_256_GCM };
    const sg = uuidToBytes(sgId);
    const asB = uuidToBytes(uuidOf(b.identity));
    const forged = new GroupSender({ senderId: asB, signingKey: ed25519Generate().privateKey }).protect(
      sg,
      gk,
      Buffer.from('pay me'),
      { sign: true },
    );
    expect(code(() => c.open(forged))).toBe('BAD_SIGNATURE');
    const unsigned = new GroupSender({ senderId: asB }).protect(sg, gk, Buffer.from('pay me'));
    expect(code(() => c.open(unsigned))).toBe('SIGNATURE_REQUIRED');
    // the server holds no member signing key: it may not speak in a source-authenticated SG
    await expect(server.sendToGroup(sgId, 'x')).rejects.toMatchObject({ code: 'SIGNATURE_REQUIRED' });
  });

  it('SGs without source authentication stay unsigned (no 64-byte overhead)', async () => {
    const { sgId } = await server.admin.createGroup({ name: 'plain', members: [a.identity, c.identity] });
    await until(() => [a, c].every((p) => p.currentEpoch(sgId) === 1), 5000, 'keys');
    const m = a.send(sgId, 'plain hello');
    expect(readHeader(m).flags & FLAG_SIGNED).toBe(0);
    await until(() => boxes.get(c)!.some((x) => x.plaintext.toString() === 'plain hello'), 5000, 'delivery');
  });
});
