import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Suite } from '../../src/core/crypto/aead.js';
import { GroupSender } from '../../src/core/group/sender.js';
import type { PnGateway } from '../../src/gateway/index.js';
import type { PneClient } from '../../src/pne/index.js';
import { uuidOf, uuidToBytes } from '../../src/protocol/control.js';
import type { CpnsServer } from '../../src/server/index.js';
import { inbox, startGateway, startPne, startServer, tempDir, until } from '../integration/helpers.js';
import type { RawPeer } from '../integration/raw.js';
import { provenPne, rogueGw } from './rogue.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;
let a: PneClient;
let b: PneClient;
let raw: RawPeer;
let sgId: string;
/** A PNE enrolled through the raw GW and attached to it, member of the SG. */
let rogue: string;
let rogueKey: Buffer;

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  gw = await startGateway(server);
  [a, b] = await Promise.all([startPne(server, gw), startPne(server, gw)]);
  sgId = (await a.createGroup({ name: 'target', joinPolicy: 'open' })).sgId;
  await b.joinGroup(sgId);
  raw = await rogueGw(server);
  // A genuine PNE identity, enrolled through the raw GW, attached to it (its own tunnel through the raw GW's
  // session proves it, docs/protocol.md rule A1) and added to the SG by the operator.
  rogue = (await provenPne(server, raw)).creds.identity;
  const from = raw.got.length;
  await server.admin.addMember(sgId, rogue);
  const kd = await raw.next((m) => m.t === 'key.deliver' && m.sgId === sgId, from);
  rogueKey = kd.t === 'key.deliver' ? Buffer.from(kd.key) : Buffer.alloc(32);
});

afterAll(async () => {
  raw?.session.close();
  await Promise.all([a?.close(), b?.close()]);
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

const sid = () => uuidToBytes(sgId);

describe('server: hostile input from an authenticated GW', () => {
  it.each([
    ['unknown frame kind', () => raw.raw(Buffer.from([0x09, 1, 2])), 'MALFORMED'],
    ['control frame without payload', () => raw.raw(Buffer.from([0x01])), 'MALFORMED'],
    ['undecodable CBOR', () => raw.raw(Buffer.from([0x01, 0xff, 0x00, 0x13])), 'MALFORMED'],
    ['CBOR that is not a map', () => raw.cbor([1, 2, 3]), 'SCHEMA'],
    ['unknown message type', () => raw.cbor({ v: 1, t: 'sg.pwn' }), 'SCHEMA'],
    ['future protocol version', () => raw.cbor({ v: 2, t: 'gw.deregister' }), 'UNSUPPORTED_VERSION'],
    ['bad field', () => raw.cbor({ v: 1, t: 'key.ack', sgId: 'nope', epoch: 1 }), 'SCHEMA'],
    [
      'oversized control message',
      () => raw.raw(Buffer.concat([Buffer.from([0x01]), Buffer.alloc(600 * 1024, 0xa0)])),
      'TOO_LARGE',
    ],
    [
      'message for another role (sg.create on a GW session)',
      () =>
        raw.control({
          t: 'sg.create',
          name: 'x',
          joinPolicy: 'open',
          suite: 'aes-256-gcm',
          sourceAuth: false,
        }),
      'UNEXPECTED_MESSAGE',
    ],
    [
      'server-only message (registered)',
      () => raw.control({ t: 'registered', ok: true }),
      'UNEXPECTED_MESSAGE',
    ],
    [
      'attach of an unknown PNE',
      () =>
        raw.control({
          t: 'pne.attach',
          pneId: 'urn:cpns:pne:00000000-0000-4000-8000-000000000001',
          media: [],
        }),
      'NOT_FOUND',
    ],
    ['detach of a PNE of another PN', () => raw.control({ t: 'pne.detach', pneId: a.identity }), 'FORBIDDEN'],
    [
      'status of a PNE of another PN',
      () => raw.control({ t: 'pne.status', pneId: a.identity, online: false }),
      'FORBIDDEN',
    ],
    [
      'key.ack for an unknown SG',
      () => raw.control({ t: 'key.ack', sgId: '00000000-0000-4000-8000-000000000002', epoch: 1 }),
      'NOT_FOUND',
    ],
    [
      "delivery report naming another PN's PNE",
      () =>
        raw.control({
          t: 'key.delivery.report',
          sgId,
          epoch: 1,
          entries: [{ pneId: a.identity, method: 'unicast', ackedAt: 1 }],
        }),
      'FORBIDDEN',
    ],
    [
      'enroll.relay with an unknown token',
      () =>
        raw.control({
          t: 'enroll.relay',
          request: {
            token: 'nope',
            role: 'pne',
            csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
          },
        }),
      'ENROLL_REFUSED',
    ],
    ['truncated group message', () => raw.group(Buffer.from([1, 1, 0, 0, 0])), 'MALFORMED'],
    [
      'group message for an unknown SG',
      () => raw.group(protect(rogue, '00000000-0000-4000-8000-000000000003', 1)),
      'NOT_FOUND',
    ],
    [
      'group message spoofing a PNE of another PN',
      () => raw.group(protect(a.identity, sgId, 1)),
      'FORBIDDEN',
    ],
    ['group message with a future epoch', () => raw.group(protect(rogue, sgId, 99)), 'UNKNOWN_EPOCH'],
  ])('%s -> %s', async (_name, send, code) => {
    const epoch = server.currentEpoch(sgId);
    const groups = await server.admin.listGroups();
    expect(await raw.errorOf(send)).toBe(code);
    expect(raw.session.isOpen).toBe(true);
    expect(server.currentEpoch(sgId)).toBe(epoch);
    expect(await server.admin.listGroups()).toEqual(groups);
  });

  it('relays a genuine member message once and refuses its replay (relay marks)', async () => {
    const got = inbox(a);
    const sender = new GroupSender({ senderId: uuidToBytes(uuidOf(rogue)) });
    const epoch = server.currentEpoch(sgId)!;
    const msg = sender.protect(
      sid(),
      { epoch, key: rogueKey, suite: Suite.AES_256_GCM },
      Buffer.from('legit'),
    );
    raw.group(msg);
    await until(() => got.some((m) => m.plaintext.toString() === 'legit'));
    expect(await raw.errorOf(() => raw.group(msg))).toBe('REPLAY');
    await new Promise((r) => setTimeout(r, 100));
    expect(got.filter((m) => m.plaintext.toString() === 'legit')).toHaveLength(1);
    // Relay-path refusals are counted by code (docs/operator.md, metrics).
    const metrics = await server.metrics.text();
    expect(metrics).toMatch(/^cpns_relay_refusals_total\{code="REPLAY"\} [1-9]/m);
    expect(metrics).toMatch(/^cpns_relayed_messages_total [1-9]/m);
  });

  it('after removal, the server refuses to relay for the removed member, and old epochs are refused', async () => {
    const epoch = server.currentEpoch(sgId)!;
    await server.admin.removeMember(sgId, rogue);
    expect(server.currentEpoch(sgId)).toBe(epoch + 1);
    const sender = new GroupSender({ senderId: uuidToBytes(uuidOf(rogue)) });
    const msg = sender.protect(sid(), { epoch, key: rogueKey, suite: Suite.AES_256_GCM }, Buffer.from('x'));
    expect(await raw.errorOf(() => raw.group(msg))).toBe('NOT_MEMBER');
  });

  it('the server still serves the others', async () => {
    const got = inbox(b);
    a.send(sgId, 'still alive');
    await until(() => got.some((m) => m.plaintext.toString() === 'still alive'));
  });
});

function protect(pne: string, sg: string, epoch: number): Buffer {
  const s = new GroupSender({ senderId: uuidToBytes(uuidOf(pne)) });
  return s.protect(
    uuidToBytes(sg),
    { epoch, key: Buffer.alloc(32, 7), suite: Suite.AES_256_GCM },
    Buffer.from('forged'),
  );
}
