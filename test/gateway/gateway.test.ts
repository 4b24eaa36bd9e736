import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Suite } from '../../src/core/crypto/aead.js';
import { GroupSender } from '../../src/core/group/sender.js';
import type { PnGateway } from '../../src/gateway/index.js';
import { PneClient } from '../../src/pne/index.js';
import { uuidOf, uuidToBytes } from '../../src/protocol/control.js';
import type { CpnsServer } from '../../src/server/index.js';
import { connectAnonymousSession, connectSession } from '../../src/transport/connect-session.js';
import {
  enrollPne,
  inbox,
  startGateway,
  startPne,
  startServer,
  tempDir,
  until,
} from '../integration/helpers.js';
import { RawPeer } from '../integration/raw.js';

const MARKER = 'PLAINTEXT-MARKER-5c1e';
let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;
let a: PneClient;
let raw: RawPeer;
let rawId: string;
let sgId: string;
const tapped: Buffer[] = [];

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  gw = await startGateway(server, undefined, {
    relayTap: (data) => {
      tapped.push(Buffer.from(data));
      return undefined;
    },
  });
  a = await startPne(server, gw);
  const rc = await enrollPne(server, gw);
  rawId = rc.identity;
  raw = new RawPeer(await connectSession(gw.url, { ...rc, expectedServerRole: 'gw', heartbeat: false }));
});

afterAll(async () => {
  raw?.session.close();
  await a?.close();
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

describe('GW cannot read the PNE-server tunnel', () => {
  it('relays only TLS records: no plaintext marker passes through the GW', async () => {
    tapped.length = 0;
    const r = await a.createGroup({ name: MARKER, joinPolicy: 'open' });
    sgId = r.sgId;
    const g = (await server.admin.listGroups()).find((x) => x.sgId === sgId)!;
    expect(g.name).toBe(MARKER); // it did reach the server
    expect(tapped.length).toBeGreaterThan(0);
    const all = Buffer.concat(tapped);
    expect(all.includes(Buffer.from(MARKER))).toBe(false);
    for (const c of tapped) expect([0x14, 0x15, 0x16, 0x17]).toContain(c[0]);
  });
});

describe('GW: hostile input from an authenticated PNE', () => {
  const other = '00000000-0000-4000-8000-0000000000aa';
  it.each([
    ['unknown frame kind', () => raw.raw(Buffer.from([0x7f])), 'MALFORMED'],
    ['undecodable CBOR', () => raw.raw(Buffer.from([0x01, 0xbf, 0xff, 0xff])), 'MALFORMED'],
    ['unknown message type', () => raw.cbor({ v: 1, t: 'gw.pwn' }), 'SCHEMA'],
    ['group message before attach', () => raw.group(forged(rawId, sgId)), 'UNEXPECTED_MESSAGE'],
    [
      'attach naming another PNE',
      () => raw.control({ t: 'pne.attach', pneId: a.identity, media: [] }),
      'FORBIDDEN',
    ],
    [
      'server-side message (sg.create) on the GW session',
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
    ['GW-only message (gw.register)', () => raw.control({ t: 'gw.register' }), 'UNEXPECTED_MESSAGE'],
  ])('%s -> %s', async (_n, send, code) => {
    expect(await raw.errorOf(send)).toBe(code);
    expect(raw.session.isOpen).toBe(true);
  });

  it('after attach: spoofed sender, non-member group message, non-member ack, detach of another -> typed errors', async () => {
    const before = gw.stats().drops;
    const id = raw.control({ t: 'pne.attach', pneId: rawId, media: ['wifi'] });
    await raw.next((m) => m.t === 'ok' && m.ref === id);
    const got = inbox(a);
    expect(await raw.errorOf(() => raw.group(forged(a.identity, sgId)))).toBe('FORBIDDEN');
    expect(await raw.errorOf(() => raw.group(forged(rawId, sgId)))).toBe('NOT_MEMBER');
    expect(await raw.errorOf(() => raw.group(forged(rawId, other)))).toBe('NOT_MEMBER');
    expect(await raw.errorOf(() => raw.group(Buffer.from([1, 2, 3])))).toBe('MALFORMED');
    expect(await raw.errorOf(() => raw.control({ t: 'key.ack', sgId, epoch: 1 }))).toBe('NOT_MEMBER');
    expect(await raw.errorOf(() => raw.control({ t: 'pne.detach', pneId: a.identity }))).toBe('FORBIDDEN');
    await new Promise((r) => setTimeout(r, 100));
    expect(got).toHaveLength(0);
    expect(server.currentEpoch(sgId)).toBe(1);
    expect(raw.session.isOpen).toBe(true);
    // Each dropped group message is counted by its code (PnGateway.stats, the GW's metrics).
    const drops = gw.stats().drops;
    const added = (code: string) => (drops[code] ?? 0) - (before[code] ?? 0);
    expect([added('FORBIDDEN'), added('NOT_MEMBER'), added('MALFORMED')]).toEqual([1, 2, 1]);
    expect(drops.UNEXPECTED_MESSAGE).toBeGreaterThanOrEqual(1); // the group message before attach
    const st = gw.stats();
    expect(st.sessions).toEqual({ pne: 2, enroll: 0, server: 1 });
  });

  it('anonymous enrollment endpoint accepts enroll.request for role pne only', async () => {
    const s = new RawPeer(
      await connectAnonymousSession(gw.enrollUrl, {
        caPem: server.caPem,
        expectedServerRole: 'gw',
        heartbeat: false,
      }),
    );
    expect(await s.errorOf(() => s.control({ t: 'pne.attach', pneId: a.identity, media: [] }))).toBe(
      'UNEXPECTED_MESSAGE',
    );
    expect(await s.errorOf(() => s.raw(Buffer.from([0x05, 1])))).toBe('UNEXPECTED_MESSAGE');
    s.session.close();
  });

  it('the GW still serves its PNEs', async () => {
    const b = await startPne(server, gw);
    await b.joinGroup(sgId);
    const got = inbox(b);
    a.send(sgId, 'ok');
    await until(() => got.length === 1);
    await b.close();
  });

  it('a PNE that detaches leaves the PN; its SGs get a new key (reason detach)', async () => {
    const c = await startPne(server, gw);
    await c.joinGroup(sgId);
    const before = server.currentEpoch(sgId)!;
    await c.detach();
    await until(() => a.currentEpoch(sgId) === before + 1);
    const pns = await server.admin.listPns();
    expect(pns[0]!.pnes.map((p) => p.pneId)).not.toContain(c.identity);
    const audit = await server.store.listAudit({ sgId, action: 'key.update' });
    expect(audit.entries.at(-1)!.reason).toBe('detach');
  });

  it('GW deregistration detaches its PNEs and updates their SGs', async () => {
    const gw2 = await startGateway(server);
    const d = await PneClient.connect({
      gwUrl: gw2.url,
      credentials: await enrollPne(server, gw2),
      heartbeat: false,
      reconnect: false,
    });
    await d.joinGroup(sgId);
    const before = server.currentEpoch(sgId)!;
    await gw2.deregister();
    await until(() => a.currentEpoch(sgId) === before + 1);
    expect((await server.admin.listPns()).map((p) => p.gwId)).not.toContain(gw2.identity);
    await d.close();
  });
});

function forged(pne: string, sg: string): Buffer {
  const s = new GroupSender({ senderId: uuidToBytes(uuidOf(pne)) });
  return s.protect(
    uuidToBytes(sg),
    { epoch: 1, key: Buffer.alloc(32, 9), suite: Suite.AES_256_GCM },
    Buffer.from('forged'),
  );
}
