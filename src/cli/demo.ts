import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpnsError } from '../core/errors.js';
import { startServer } from '../embed/index.js';
import { PnGateway } from '../gateway/index.js';
import { type GroupMessageEvent, PneClient } from '../pne/index.js';

export interface DemoOptions {
  readonly log: (line: string) => void;
  /** Keep the data directory (default: removed at the end). */
  readonly keepDataDir?: boolean;
}

interface DemoPne {
  readonly name: string;
  readonly pn: string;
  readonly client: PneClient;
  readonly inbox: GroupMessageEvent[];
}

const short = (identity: string) => `${identity.slice(0, 21)}…`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

function tryOpen(p: DemoPne, raw: Buffer): string {
  try {
    return `reads "${p.client.open(raw).plaintext.toString()}"  <-- WRONG`;
  } catch (e) {
    if (e instanceof CpnsError) return `cannot read it (${e.code})`;
    throw e;
  }
}

/**
 * `cpns demo`: a CPNS Server, two PN GWs and six PNEs on loopback — real TLS 1.3 sockets, real SQLite — a
 * Service Group spanning both PNs, Group-Key-protected messages, a member removal with its key update, and the
 * proof that the removed PNE and a non-member in the same PN cannot read.
 */
export async function runDemo({ log, keepDataDir }: DemoOptions): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cpns-demo-'));
  log(
    `CPNS demo — CPNS Server, 2 PN GWs, 6 PNEs on 127.0.0.1 (TLS 1.3, mutual certificates), data in ${dataDir}`,
  );
  const server = await startServer({
    dataDir: join(dataDir, 'server'),
    heartbeat: false,
    // operator policy pushed to the PN GWs: broadcast when at least 2 member PNEs of the PN can receive it
    deliveryPolicy: { broadcast: true, broadcastThreshold: 2, ackTimeoutMs: 3000 },
  });
  log(`[server]   up at ${server.url}; CA created; store: SQLite (keys encrypted at rest)`);
  const gws = new Map<string, PnGateway>();
  const pnes: DemoPne[] = [];
  try {
    for (const name of ['home', 'car']) {
      const token = await server.admin.createToken('gw');
      const credentials = await PnGateway.enroll({ enrollUrl: server.enrollUrl, caPem: server.caPem, token });
      // PN "home" has a broadcast medium (Wi-Fi, as UDP multicast on loopback); PN "car" delivers by unicast only
      const broadcast =
        name === 'home'
          ? {
              dataDir: join(dataDir, `gw-${name}`),
              broadcastMedia: [
                { name: 'wifi' as const, group: '239.255.77.10', port: 17000 + (process.pid % 20000) },
              ],
            }
          : {};
      const gw = await PnGateway.start({
        serverUrl: server.url,
        credentials,
        heartbeat: false,
        ...broadcast,
      });
      gws.set(name, gw);
      gw.on('delivery', (d: { epoch: number; broadcast: string[]; datagrams: number; bytes: number }) => {
        if (d.broadcast.length === 0) return;
        const names = d.broadcast.map((id) => pnes.find((p) => p.client.identity === id)?.name ?? '?');
        log(
          `[gw-${name}]  epoch ${d.epoch} by broadcast (GKEK): ${d.datagrams} signed datagram(s), ${d.bytes} bytes on wifi, for ${names.join(', ')}`,
        );
      });
      log(
        `[gw-${name}] enrolled with a one-time token as ${short(gw.identity)}; PN "${name}" open at ${gw.url}${
          name === 'home' ? ' (broadcast medium: wifi)' : ''
        }`,
      );
    }
    const layout: [string, string][] = [
      ['watch', 'home'],
      ['tv', 'home'],
      ['speaker', 'home'],
      ['console', 'car'],
      ['tablet', 'car'],
      ['headset', 'car'],
    ];
    for (const [name, pn] of layout) {
      const gw = gws.get(pn)!;
      const token = await server.admin.createToken('pne');
      const credentials = await PneClient.enroll({ enrollUrl: gw.enrollUrl, caPem: server.caPem, token });
      const client = await PneClient.connect({
        gwUrl: gw.url,
        credentials,
        heartbeat: false,
        ...(pn === 'home' ? { media: ['wifi' as const] } : { noBroadcast: true }),
      });
      const inbox: GroupMessageEvent[] = [];
      client.on('message', (m: GroupMessageEvent) => inbox.push(m));
      pnes.push({ name, pn, client, inbox });
    }
    log(
      `[pnes]     ${pnes.map((p) => `${p.name}@${p.pn}`).join(', ')} enrolled through their PN GW and attached`,
    );
    const byName = (n: string) => pnes.find((p) => p.name === n)!;
    const [watch, tv, speaker, konsole, tablet, headset] = layout.map(([n]) => byName(n)) as [
      DemoPne,
      DemoPne,
      DemoPne,
      DemoPne,
      DemoPne,
      DemoPne,
    ];

    // create: the SG and its Group Key (epoch 1)
    const { sgId, epoch } = await watch.client.createGroup({ name: 'family-game', joinPolicy: 'open' });
    log(
      `[watch]    creates Service Group "family-game" ${sgId} -> server creates the Group Key, epoch ${epoch}`,
    );
    // join: backward secrecy on join (the default) — the joins update the Group Key, so a joiner cannot read what
    // was sent before it joined; joins at the same moment share one update.
    await Promise.all([tv, konsole, tablet].map((p) => p.client.joinGroup(sgId)));
    await until(() =>
      [watch, tv, konsole, tablet].every((p) => p.client.currentEpoch(sgId) === server.currentEpoch(sgId)),
    );
    const eJoin = server.currentEpoch(sgId) ?? 0;
    log(
      `[tv, console, tablet] join -> the server updates the Group Key (a joiner cannot read earlier messages): epoch ${eJoin}`,
    );
    log(
      '           each member got it from its own PN GW (unicast over the GW-PNE TLS session, or broadcast)',
    );
    log(
      '           members: watch, tv (PN home), console, tablet (PN car); speaker and headset are not members',
    );

    const members1 = [tv, konsole, tablet];
    const m1 = watch.client.send(sgId, 'round 1 starts now');
    await until(() => members1.every((p) => p.inbox.length === 1));
    log(`[watch]    sends "round 1 starts now": ${m1.length} bytes, encrypted + MAC'd with the Group Key`);
    log('           PNE -> gw-home -> server -> gw-car: the server relays ciphertext it never decrypts');
    for (const p of [...members1, speaker, headset]) {
      const got = p.inbox.at(-1);
      log(
        `  ${p.name.padEnd(8)} ${got ? `received and read "${got.plaintext.toString()}"` : 'received nothing'}`,
      );
    }
    log(`  speaker  (same PN as watch, not a member) given the captured ciphertext: ${tryOpen(speaker, m1)}`);

    // update: removal of a member
    log('[watch]    removes tablet from the Service Group -> the server updates the Group Key (no grace)');
    await watch.client.removeMember(sgId, tablet.client.identity);
    const members2 = [watch, tv, konsole];
    const e2 = eJoin + 1;
    await until(() => members2.every((p) => (p.client.currentEpoch(sgId) ?? 0) >= e2));
    log(`[server]   epoch ${watch.client.currentEpoch(sgId)} now held by watch, tv, console only`);
    const m2 = tv.client.send(sgId, 'round 2: tablet is out');
    await until(() => [watch, konsole].every((p) => p.inbox.some((m) => m.epoch === e2)));
    await sleep(100);
    log(`[tv]       sends "round 2: tablet is out" under epoch ${e2}`);
    for (const p of [watch, konsole, tablet, speaker]) {
      const got = p.inbox.find((m) => m.epoch === e2);
      log(
        `  ${p.name.padEnd(8)} ${got ? `read "${got.plaintext.toString()}"` : 'received nothing (not relayed to it)'}`,
      );
    }
    log(`  tablet   (removed) given the captured ciphertext: ${tryOpen(tablet, m2)}`);
    const drops = speaker.client.broadcastDrops.get('NOT_IN_COVER') ?? 0;
    log(
      `  speaker  heard the home broadcast on wifi but is outside the cover: ${drops} datagram(s) dropped (NOT_IN_COVER)`,
    );
    log(`  speaker  (never a member) given the captured ciphertext: ${tryOpen(speaker, m2)}`);

    // periodic/operator update
    const { epoch: e3 } = await server.admin.rekey(sgId);
    await until(() => members2.every((p) => (p.client.currentEpoch(sgId) ?? 0) >= e3));
    log(`[operator] forces a key update -> epoch ${e3}, delivered and acked`);
    type Status = {
      members: { pneId: string; ackedEpoch: number | null; lag: number | null; method?: string | null }[];
    };
    let status = (await server.admin.groupStatus(sgId)) as unknown as Status;
    const end = Date.now() + 3000;
    while (status.members.some((m) => m.lag !== 0) && Date.now() < end) {
      await sleep(20); // acks travel PNE -> GW -> server asynchronously
      status = (await server.admin.groupStatus(sgId)) as unknown as Status;
    }
    log('[operator] key status per member (delivery tracking):');
    for (const m of status.members) {
      const p = pnes.find((x) => x.client.identity === m.pneId);
      log(
        `  ${(p?.name ?? m.pneId).padEnd(8)} acked epoch ${m.ackedEpoch ?? '-'}  lag ${m.lag ?? '-'}  via ${m.method ?? '-'}`,
      );
    }

    // delete: the Group Key is erased everywhere
    await watch.client.deleteGroup(sgId);
    await until(() => members2.every((p) => p.client.currentEpoch(sgId) === undefined));
    log(
      `[watch]    deletes the Service Group -> Group Key erased at server, PN GWs and PNEs: ${tryOpen(watch, m2)}`,
    );
  } finally {
    for (const p of pnes) await p.client.close();
    for (const gw of gws.values()) await gw.close();
    await server.close();
    if (!keepDataDir) rmSync(dataDir, { recursive: true, force: true });
  }
  log('done.');
}
