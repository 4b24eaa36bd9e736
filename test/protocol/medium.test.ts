/**
 * The broadcast medium under load (docs/broadcast.md §12): receive buffer sized for bursts, oversize datagrams counted like
 * every other drop, and the GW's datagram counter counting every copy (one per medium).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseBroadcast } from '../../src/core/broadcast/index.js';
import { isCpnsError } from '../../src/core/errors.js';
import {
  BroadcastKeyListener,
  GatewayBroadcaster,
  GatewayBroadcastState,
  type MemberInfo,
} from '../../src/protocol/index.js';
import { BroadcastMedium, DEFAULT_RECV_BUFFER_BYTES, MAX_DATAGRAM } from '../../src/transport/udp.js';

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});
const port = () => 20000 + Math.floor(Math.random() * 30000);
const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
};
/** Linux caps SO_RCVBUF requests at net.core.rmem_max. */
const rmemMax = (): number | undefined =>
  existsSync('/proc/sys/net/core/rmem_max')
    ? Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim())
    : undefined;

async function open(o: Parameters<typeof BroadcastMedium.open>[0]): Promise<BroadcastMedium> {
  const m = await BroadcastMedium.open(o);
  closers.push(() => m.close());
  return m;
}

async function rawSender(): Promise<(d: Buffer, group: string, p: number) => Promise<void>> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  s.setMulticastInterface('127.0.0.1');
  s.setMulticastLoopback(true);
  closers.push(() => s.close());
  return (d, group, p) => new Promise((r, j) => s.send(d, p, group, (e) => (e ? j(e) : r())));
}

describe('receive buffer', () => {
  it('a listener asks for 4 MiB by default and records what the kernel granted', async () => {
    const m = await open({ name: 'wifi', group: '239.255.77.7', port: port() });
    const osDefault = await open({ name: 'wifi', group: '239.255.77.7', port: port(), recvBufferBytes: 0 });
    expect(DEFAULT_RECV_BUFFER_BYTES).toBe(4 * 1024 * 1024);
    expect(m.recvBufferSize).toBeGreaterThan(0);
    expect(m.recvBufferSize!).toBeGreaterThanOrEqual(osDefault.recvBufferSize!);
    const cap = rmemMax();
    // Linux reports twice the granted size; the grant is min(request, rmem_max).
    if (process.platform === 'linux' && cap !== undefined) {
      expect(m.recvBufferSize).toBe(2 * Math.min(DEFAULT_RECV_BUFFER_BYTES, cap));
    }
    const small = await open({ name: 'wifi', group: '239.255.77.7', port: port(), recvBufferBytes: 65536 });
    if (process.platform === 'linux') expect(small.recvBufferSize).toBe(2 * 65536);
  });

  it('a transmit-only medium has no receive buffer; a bad size is INVALID_ARGUMENT', async () => {
    const tx = await open({ name: 'wifi', group: '239.255.77.7', port: port(), listen: false });
    expect(tx.recvBufferSize).toBeUndefined();
    for (const bad of [-1, 1.5, 2 ** 31]) {
      const err = await BroadcastMedium.open({
        name: 'wifi',
        group: '239.255.77.7',
        port: port(),
        recvBufferBytes: bad,
      }).catch((e: unknown) => e);
      expect(isCpnsError(err) && err.code === 'INVALID_ARGUMENT' && err.field === 'recvBufferBytes').toBe(
        true,
      );
    }
  });
});

describe('oversize datagrams are counted, not silently discarded', () => {
  it('the medium reports them as TOO_LARGE and the listener counts them with its other drops', async () => {
    const p = port();
    const group = '239.255.77.7';
    const l = await BroadcastKeyListener.open({
      media: [{ name: 'wifi', group, port: p }],
      supported: ['wifi'],
      currentEpoch: () => undefined,
    });
    closers.push(() => l.close());
    const codes: string[] = [];
    l.on('drop', (c: string) => codes.push(c));
    expect(l.recvBufferSizes.get('wifi')).toBeGreaterThan(0);
    const send = await rawSender();
    await send(randomBytes(MAX_DATAGRAM + 1), group, p);
    await send(randomBytes(9000), group, p);
    await send(randomBytes(MAX_DATAGRAM), group, p); // at the limit: reaches the decoder (no GKDK: WRONG_TREE)
    await until(() => codes.length === 3);
    expect(l.drops.get('TOO_LARGE')).toBe(2);
    expect(l.drops.get('WRONG_TREE')).toBe(1);
  });
});

describe("the GW's datagram counter counts every copy", () => {
  it('a 2-datagram delivery on two media counts 4 datagrams and 4 datagrams of bytes', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cpns-gw-'));
    const state = GatewayBroadcastState.open(dataDir, randomBytes(16), 64);
    const wifi = await open({ name: 'wifi', group: '239.255.77.8', port: port(), listen: false });
    const bt = await open({ name: 'bt', group: '239.255.77.9', port: port(), listen: false });
    const gw = new GatewayBroadcaster({
      state,
      media: [wifi, bt],
      policy: { broadcast: true, broadcastThreshold: 2, ackTimeoutMs: 60_000 },
    });
    closers.push(() => gw.close());
    // Taps on both media count what actually goes out.
    const seen = { wifi: [] as Buffer[], bt: [] as Buffer[] };
    for (const m of [wifi, bt]) {
      const tap = await open({ name: m.name, group: m.group, port: m.port });
      tap.on('datagram', (d: Buffer) => seen[m.name as 'wifi' | 'bt'].push(Buffer.from(d)));
    }
    // 64 leaves, every odd one a member: 32 singleton subsets, more than 24 entries -> 2 datagrams.
    const ids = Array.from({ length: 64 }, () => `urn:cpns:pne:${randomUUID()}`);
    const members: MemberInfo[] = [];
    ids.forEach((id, i) => {
      const media = i % 4 === 1 ? ['wifi'] : ['bt'];
      gw.issueFor(id, media);
      if (i % 2 === 1) members.push({ pneId: id, media, hasGkdk: true });
    });
    const r = await gw.deliver({ sgId: randomUUID(), epoch: 3, key: randomBytes(32), members });
    await until(() => seen.wifi.length === 2 && seen.bt.length === 2);
    expect(parseBroadcast(seen.wifi[0]!).fragmentCount).toBe(2);
    expect(r.media.sort()).toEqual(['bt', 'wifi']);
    expect(r.datagrams).toBe(4);
    expect(r.bytes).toBe([...seen.wifi, ...seen.bt].reduce((s, d) => s + d.length, 0));
    // One medium: each datagram once.
    const one = await gw.deliver({
      sgId: randomUUID(),
      epoch: 1,
      key: randomBytes(32),
      members: members.map((m) => ({ ...m, media: ['wifi'] })),
    });
    expect(one.media).toEqual(['wifi']);
    expect(one.datagrams).toBe(2);
  });
});
