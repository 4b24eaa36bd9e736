/**
 * Broadcast Group Key delivery on a personal network (docs/broadcast.md §12): real TLS sessions, real SQLite, real UDP
 * multicast on loopback (two media at once), one PN of 9 PNEs where some are SG members and some are not.
 */
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBroadcast, SIGNATURE_CONTEXT } from '../../src/core/broadcast/index.js';
import { type Credentials, PnGateway } from '../../src/gateway/index.js';
import { PneClient } from '../../src/pne/index.js';
import { BroadcastKeyListener, type GkdkIssue } from '../../src/protocol/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import type { MemberDeliveryStatus } from '../../src/store/store.js';
import { BroadcastMedium } from '../../src/transport/udp.js';
import { BACKOFF, enrollPne, startServer, tempDir, until } from './helpers.js';

type Medium = 'wifi' | 'bt';
const base = 20000 + Math.floor(Math.random() * 20000);
const MEDIA = [
  { name: 'wifi' as const, group: '239.255.77.1', port: base },
  { name: 'bt' as const, group: '239.255.77.2', port: base + 1 },
];
// A generous ack timeout: a member counts as "broadcast" only if it acks before it; CI machines are busy.
const POLICY = { broadcast: true, broadcastThreshold: 3, ackTimeoutMs: 1500 };

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;
let gwCreds: Credentials;
let gwPort: number;
const pnes = new Map<string, PneClient>();
/** Every GKDK issue each PNE received (copied: the SDK wipes its own copy after install). */
const issues = new Map<string, GkdkIssue[]>();
/** Medium of each broadcast-delivered key, per PNE: `${sgId}:${epoch}` -> medium. */
const viaMedium = new Map<string, Map<string, string>>();
const lossy = { on: false };
const closers: (() => unknown)[] = [];

async function startGw(): Promise<PnGateway> {
  return PnGateway.start({
    serverUrl: tmpServerUrl(),
    credentials: gwCreds,
    heartbeat: false,
    reconnect: BACKOFF,
    port: gwPort,
    dataDir: `${tmp.dir}/gw1`,
    broadcastMedia: MEDIA,
    broadcastCapacity: 16,
    maxSpentLeaves: 2,
  });
}
const tmpServerUrl = () => server.url;

async function pne(name: string, media: Medium[], creds?: Credentials): Promise<PneClient> {
  const credentials = creds ?? (await enrollPne(server, gw));
  const p = await PneClient.connect({
    gwUrl: gw.url,
    credentials,
    heartbeat: false,
    reconnect: BACKOFF,
    media,
    ...(name === 'm5' ? { dropBroadcast: () => lossy.on } : {}),
    onGkdkIssue: (i) => {
      const l = issues.get(name) ?? [];
      l.push({ ...i, gkdk: Buffer.from(i.gkdk), signKey: Buffer.from(i.signKey), media: [...i.media] });
      issues.set(name, l);
    },
  });
  const vm = new Map<string, string>();
  viaMedium.set(name, vm);
  p.on('key', (k: { sgId: string; epoch: number; method: string; medium?: string }) => {
    if (k.method === 'broadcast') vm.set(`${k.sgId}:${k.epoch}`, k.medium ?? '');
  });
  pnes.set(name, p);
  return p;
}
const P = (name: string) => pnes.get(name)!;
const drops = (name: string, code: string) => P(name).broadcastDrops.get(code) ?? 0;

/** A departed (or stale) device that keeps listening with the GKDK it was once given. */
async function rogueListener(issue: GkdkIssue, currentEpoch: number) {
  const l = await BroadcastKeyListener.open({
    media: issue.media,
    supported: ['wifi', 'bt'],
    currentEpoch: () => currentEpoch,
  });
  l.setGkdk(issue);
  const keys: number[] = [];
  l.on('key', (k: { epoch: number }) => keys.push(k.epoch));
  closers.push(() => l.close());
  return { l, keys };
}

async function status(sgId: string): Promise<Map<string, MemberDeliveryStatus>> {
  const st = await server.admin.groupStatus(sgId);
  const byId = new Map(st.members.map((m) => [m.pneId, m]));
  const out = new Map<string, MemberDeliveryStatus>();
  for (const [name, p] of pnes) {
    const m = byId.get(p.identity);
    if (m) out.set(name, m);
  }
  return out;
}

async function acked(
  sgId: string,
  names: string[],
  epoch: number,
): Promise<Map<string, MemberDeliveryStatus>> {
  let st = new Map<string, MemberDeliveryStatus>();
  await until(
    async () => {
      st = await status(sgId);
      return names.every((n) => st.get(n)?.ackedEpoch === epoch);
    },
    8000,
    `acks of epoch ${epoch}`,
  );
  return st;
}

const methods = (st: Map<string, MemberDeliveryStatus>, names: string[]) =>
  Object.fromEntries(names.map((n) => [n, st.get(n)?.method]));

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir, { deliveryPolicy: POLICY });
  gwCreds = await PnGateway.enroll({
    enrollUrl: server.enrollUrl,
    caPem: server.caPem,
    token: await server.admin.createToken('gw'),
  });
  gwPort = 0;
  gw = await startGw();
  gwPort = Number(new URL(gw.url).port);
  // Members m1..m5, L (will leave the PN), rm (will be removed); non-members n1, n2.
  const spec: [string, Medium[]][] = [
    ['m1', ['wifi']],
    ['m2', ['wifi']],
    ['m3', ['bt']],
    ['m4', ['wifi', 'bt']],
    ['m5', ['wifi']],
    ['L', ['wifi']],
    ['rm', ['wifi']],
    ['n1', ['wifi']],
    ['n2', ['bt']],
  ];
  for (const [name, media] of spec) await pne(name, media);
  await until(() => gw.broadcastCapable.length === spec.length, 5000, 'GKDK acks');
});

afterAll(async () => {
  for (const c of closers.splice(0)) await c();
  await Promise.all([...pnes.values()].map((p) => p.close()));
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

describe('broadcast Group Key delivery in a PN of 9 PNEs', () => {
  const members = ['m1', 'm2', 'm3', 'm4', 'm5', 'L', 'rm'];
  let sgId: string;
  const captured: Buffer[] = [];

  it('the server pushes its delivery policy; every PNE holds a GKDK of the same tree', async () => {
    expect(gw.deliveryPolicy).toEqual(POLICY);
    const tree = gw.broadcastTree!;
    for (const [name, l] of issues) {
      expect(l.at(-1)!.treeId, name).toBe(tree.treeId);
      expect(l.at(-1)!.treeVersion).toBe(tree.treeVersion);
    }
    expect(new Set([...issues.values()].map((l) => l.at(-1)!.leaf)).size).toBe(9);
    expect(P('m4').broadcastMedia.sort()).toEqual(['bt', 'wifi']);
    expect(P('n2').broadcastMedia).toEqual(['bt']);
  });

  it("a PNE's first key of an SG goes by unicast", async () => {
    ({ sgId } = await server.admin.createGroup({
      name: 'bcast',
      members: members.map((n) => P(n).identity),
    }));
    const st = await acked(sgId, members, 1);
    for (const n of members) expect(st.get(n)!.method, n).toBe('unicast');
    expect(P('n1').currentEpoch(sgId)).toBeUndefined();
  });

  it('removal: broadcast on two media reaches exactly the members; non-members and the removed PNE fail; a lost datagram falls back to unicast', async () => {
    const tap = await BroadcastMedium.open({ ...MEDIA[0]! });
    closers.push(() => tap.close());
    tap.on('datagram', (d: Buffer) => captured.push(Buffer.from(d)));
    const before = { n1: drops('n1', 'NOT_IN_COVER'), n2: drops('n2', 'NOT_IN_COVER') };
    const deliveries: {
      sgId: string;
      epoch: number;
      broadcast: string[];
      unicast: string[];
      datagrams: number;
      bytes: number;
      media: string[];
    }[] = [];
    gw.on('delivery', (d) => deliveries.push(d));
    const stats0 = gw.stats();
    lossy.on = true; // m5 loses every datagram
    await server.admin.removeMember(sgId, P('rm').identity);
    const remaining = ['m1', 'm2', 'm3', 'm4', 'm5', 'L'];
    const st = await acked(sgId, remaining, 2);
    lossy.on = false;
    // The GW broadcast to exactly the remaining members (one cover), nobody by plain unicast.
    const d = deliveries.find((x) => x.sgId === sgId && x.epoch === 2)!;
    expect(d.broadcast.sort()).toEqual(remaining.map((n) => P(n).identity).sort());
    expect(d.unicast).toEqual([]);
    expect(d.bytes).toBeGreaterThan(0);
    expect(methods(st, remaining)).toEqual({
      m1: 'broadcast',
      m2: 'broadcast',
      m3: 'broadcast',
      m4: 'broadcast',
      m5: 'fallback',
      L: 'broadcast',
    });
    for (const n of remaining) expect(P(n).currentEpoch(sgId), n).toBe(2);
    // Two media at once: the bt-only member got it on bt, wifi-only ones on wifi.
    expect(viaMedium.get('m3')!.get(`${sgId}:2`)).toBe('bt');
    expect(viaMedium.get('m1')!.get(`${sgId}:2`)).toBe('wifi');
    expect(viaMedium.get('m5')!.has(`${sgId}:2`)).toBe(false);
    // Non-members and the removed PNE receive the datagrams and cannot open them.
    await until(() => drops('n1', 'NOT_IN_COVER') > before.n1 && drops('n2', 'NOT_IN_COVER') > before.n2);
    expect(drops('rm', 'NOT_IN_COVER')).toBeGreaterThan(0);
    for (const n of ['n1', 'n2']) expect(P(n).currentEpoch(sgId)).toBeUndefined();
    expect(P('rm').currentEpoch(sgId)).not.toBe(2);
    expect(viaMedium.get('rm')!.size).toBe(0);
    expect(captured.length).toBeGreaterThan(0);
    expect(captured[0]!.length).toBeLessThanOrEqual(1200);
    // The GW's counters count every copy: the same datagrams went out on wifi and on bt.
    const fragments = parseBroadcast(captured[0]!).fragmentCount;
    expect(d.media.sort()).toEqual(['bt', 'wifi']);
    expect(d.datagrams).toBe(2 * fragments);
    expect(d.bytes).toBe(2 * captured.slice(0, fragments).reduce((n, x) => n + x.length, 0));
    // ... and so do its stats (its metrics): one broadcast, its datagrams, one unicast fallback (m5).
    const stats = gw.stats();
    expect(stats.broadcasts - stats0.broadcasts).toBe(1);
    expect(stats.broadcastDatagrams - stats0.broadcastDatagrams).toBe(d.datagrams);
    expect(stats.fallbacks - stats0.fallbacks).toBe(1);
  });

  it('a PNE that left the PN still hears the broadcasts but cannot open them', async () => {
    const old = issues.get('L')!.at(-1)!;
    const rogue = await rogueListener(old, 2);
    await P('L').detach(); // server: detach -> SG update (epoch 3); GW: L's leaf is spent forever
    const remaining = ['m1', 'm2', 'm3', 'm4', 'm5'];
    const st = await acked(sgId, remaining, 3);
    for (const n of remaining) expect(st.get(n)!.method, n).toBe('broadcast');
    await until(() => (rogue.l.drops.get('NOT_IN_COVER') ?? 0) > 0, 3000, 'departed PNE drop');
    expect(rogue.keys).toEqual([]);
  });

  it('forged and replayed datagrams are rejected', async () => {
    const tx = await BroadcastMedium.open({ ...MEDIA[0]!, listen: false });
    closers.push(() => tx.close());
    const real = captured.at(-1)!; // epoch 3, already installed
    const before = {
      stale: drops('m1', 'STALE_EPOCH'),
      sig: drops('m1', 'BAD_SIGNATURE'),
      framing: [...P('m1').broadcastDrops.values()].reduce((a, b) => a + b, 0),
    };
    // Replay of the real, GW-signed datagram.
    await tx.send(real);
    // Bit flip in a wrapped key.
    const flipped = Buffer.from(real);
    flipped[70] = flipped[70]! ^ 1;
    await tx.send(flipped);
    // Epoch raised to 99 and re-signed with an attacker's key.
    const forged = Buffer.from(real);
    forged.writeUInt32BE(99, 54);
    const attacker = generateKeyPairSync('ed25519');
    const body = forged.subarray(0, forged.length - 64);
    sign(null, Buffer.concat([SIGNATURE_CONTEXT, body]), attacker.privateKey).copy(
      forged,
      forged.length - 64,
    );
    await tx.send(forged);
    // Junk.
    await tx.send(randomBytes(300));
    await until(
      () => [...P('m1').broadcastDrops.values()].reduce((a, b) => a + b, 0) >= before.framing + 4,
      3000,
      'drops',
    );
    expect(drops('m1', 'STALE_EPOCH')).toBe(before.stale + 1);
    expect(drops('m1', 'BAD_SIGNATURE')).toBe(before.sig + 2);
    for (const n of ['m1', 'm2', 'm4', 'm5']) expect(P(n).currentEpoch(sgId)).toBe(3);
    expect(server.currentEpoch(sgId)).toBe(3);
  });

  it('below the threshold every member is served by unicast', async () => {
    const small = await server.admin.createGroup({
      name: 'pair',
      members: [P('m1').identity, P('m2').identity],
    });
    await acked(small.sgId, ['m1', 'm2'], 1);
    await server.admin.rekey(small.sgId);
    const st = await acked(small.sgId, ['m1', 'm2'], 2);
    expect(methods(st, ['m1', 'm2'])).toEqual({ m1: 'unicast', m2: 'unicast' });
    expect(viaMedium.get('m1')!.has(`${small.sgId}:2`)).toBe(false);
  });

  it('tree rebuild re-issues GKDKs; an old GKDK cannot open new broadcasts', async () => {
    const tree = gw.broadcastTree!;
    const oldM1 = issues.get('m1')!.at(-1)!;
    const stale = await rogueListener(oldM1, 3);
    const count = issues.get('m1')!.length;
    // Second departure: 2 spent leaves = maxSpentLeaves -> new tree, GKDKs re-issued to every attached PNE.
    await P('n2').detach();
    pnes.delete('n2');
    await until(() => (issues.get('m1')?.length ?? 0) > count, 3000, 're-issue');
    const now = gw.broadcastTree!;
    expect(now.treeVersion).toBe(tree.treeVersion + 1);
    expect(issues.get('m1')!.at(-1)!.treeVersion).toBe(now.treeVersion);
    await until(() => gw.broadcastCapable.length === 7, 3000, 'GKDK acks on the new tree'); // m1-m5, rm, n1
    await server.admin.rekey(sgId);
    const remaining = ['m1', 'm2', 'm3', 'm4', 'm5'];
    const st = await acked(sgId, remaining, 4);
    for (const n of remaining) expect(st.get(n)!.method, n).toBe('broadcast');
    await until(() => (stale.l.drops.get('WRONG_TREE') ?? 0) > 0, 3000, 'old GKDK drop');
    expect(stale.keys).toEqual([]);
  });

  it('a GW restart keeps its tree: PNEs come back with the same leaves and broadcast resumes', async () => {
    const tree = gw.broadcastTree!;
    const leaf = issues.get('m1')!.at(-1)!.leaf;
    const count = issues.get('m1')!.length;
    await gw.close();
    gw = await startGw();
    expect(gw.broadcastTree).toEqual(tree);
    await until(() => (issues.get('m1')?.length ?? 0) > count, 8000, 'GKDK after restart');
    expect(issues.get('m1')!.at(-1)!.leaf).toBe(leaf);
    await until(() => gw.broadcastCapable.length === 7, 8000, 'GKDK acks after restart');
    // The catch-up key after reconnection is each PNE's first key on the new session: unicast. Then broadcast.
    const remaining = ['m1', 'm2', 'm3', 'm4', 'm5'];
    // The GW must hold each PNE's ack of it (not only the PNE its key), or the next update is still unicast.
    await until(
      () => remaining.every((n) => gw.ackedEpochs(sgId).get(P(n).identity) === 4),
      8000,
      'acks at GW',
    );
    await server.admin.rekey(sgId);
    const st = await acked(sgId, remaining, 5);
    for (const n of remaining) expect(st.get(n)!.method, n).toBe('broadcast');
  });
});
