/**
 * docs/protocol.md "Authorization" (R1): when the server's relay refuses a group message, the sending PNE gets the typed error (through
 * its GW), instead of the refusal ending in a log line at the GW.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Suite } from '../../src/core/crypto/aead.js';
import { GroupSender } from '../../src/core/group/sender.js';
import type { PnGateway } from '../../src/gateway/index.js';
import type { PneClient } from '../../src/pne/index.js';
import { uuidOf, uuidToBytes } from '../../src/protocol/control.js';
import type { CpnsServer } from '../../src/server/index.js';
import { connectSession } from '../../src/transport/connect-session.js';
import { openTunnelTls } from '../../src/transport/tunnel-tls.js';
import { enrollPne, inbox, startGateway, startPne, startServer, tempDir, until } from './helpers.js';
import { RawPeer } from './raw.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;
let b: PneClient;
let c: PneClient;
let raw: RawPeer;
let rawId: string;
let sgId: string;

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  gw = await startGateway(server);
  [b, c] = await Promise.all([startPne(server, gw), startPne(server, gw)]);
  const creds = await enrollPne(server, gw);
  rawId = creds.identity;
  // A genuine member PNE that speaks raw frames to its GW (its own session and its own tunnel).
  raw = new RawPeer(await connectSession(gw.url, { ...creds, expectedServerRole: 'gw', heartbeat: false }));
  const att = raw.control({ t: 'pne.attach', pneId: rawId, media: ['wifi'] });
  await raw.next((m) => m.t === 'ok' && m.ref === att);
  await openTunnelTls(raw.session, creds);
  await until(async () => (await server.store.getPne(rawId))?.online === true);
  sgId = (await server.admin.createGroup({ name: 'refusals', members: [rawId, b.identity, c.identity] }))
    .sgId;
});

afterAll(async () => {
  raw?.session.close();
  await Promise.all([b?.close(), c?.close()]);
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

async function keyOf(epoch: number): Promise<Buffer> {
  const kd = await raw.next((m) => m.t === 'key.deliver' && m.sgId === sgId && m.epoch === epoch, 0, 5000);
  return kd.t === 'key.deliver' ? Buffer.from(kd.key) : Buffer.alloc(32);
}

describe('relay refusals reach the sending PNE', () => {
  it('a replayed message: delivered once, the replay gets a typed REPLAY error', async () => {
    const epoch = server.currentEpoch(sgId)!;
    const key = await keyOf(epoch);
    const got = inbox(b);
    const msg = new GroupSender({ senderId: uuidToBytes(uuidOf(rawId)) }).protect(
      uuidToBytes(sgId),
      { epoch, key, suite: Suite.AES_256_GCM },
      Buffer.from('once'),
    );
    raw.group(msg);
    await until(() => got.length === 1);
    // The GW passes it on (it keeps no relay marks); the server refuses it, and the PNE hears why.
    expect(await raw.errorOf(() => raw.group(msg))).toBe('REPLAY');
  });

  it('a message under an epoch that a removal cut off gets EXPIRED_EPOCH', async () => {
    const epoch = server.currentEpoch(sgId)!;
    const key = await keyOf(epoch);
    await server.admin.removeMember(sgId, c.identity);
    await keyOf(epoch + 1);
    const late = new GroupSender({ senderId: uuidToBytes(uuidOf(rawId)) }).protect(
      uuidToBytes(sgId),
      { epoch, key, suite: Suite.AES_256_GCM },
      Buffer.from('late'),
    );
    const from = raw.got.length;
    raw.group(late);
    const err = await raw.next((m) => m.t === 'error', from);
    expect(err.t === 'error' && err.code).toBe('EXPIRED_EPOCH');
    // The PNE is told nothing about others: the error it gets names no identity.
    expect(err.t === 'error' && err.pneId).toBeUndefined();
  });
});
