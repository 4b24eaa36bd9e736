import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { startServer } from '../embed/index.js';
import { type Credentials, PnGateway } from '../gateway/index.js';
import { PneClient } from '../pne/index.js';
import { median, pool } from './measure.js';
import { SimPne } from './sim-pne.js';

export interface RekeyRun {
  readonly policy: 'unicast' | 'broadcast';
  readonly members: number;
  readonly gateways: number;
  /** ms from the operator's update call until the last member acked the new epoch (PNE side). */
  readonly allAckedMs: number[];
  /** ms until the server's delivery tracking shows every member on the new epoch. */
  readonly trackedMs: number[];
  /** Bytes of Group Key delivery on the PN hop (GW -> PNEs) per update: unicast frames + broadcast datagrams. */
  readonly pnBytesPerUpdate: number;
  readonly setupSec: number;
}

/**
 * Rekey of one Service Group with M members spread evenly over G PN GWs (docs/benchmarks.md): real CPNS Server, real
 * PN GWs, simulated PNE endpoints on real mutually authenticated TLS sessions (and real UDP multicast for the
 * broadcast policy). Measures the time from the update until every member acked, and the PN-hop bytes.
 */
export async function benchRekey(o: {
  members: number;
  gateways: number;
  policy: 'unicast' | 'broadcast';
  rounds: number;
  log: (l: string) => void;
}): Promise<RekeyRun> {
  const dir = mkdtempSync(join(tmpdir(), 'cpns-bench-'));
  const logger = pino({ level: 'silent' });
  const t0 = performance.now();
  const broadcast = o.policy === 'broadcast';
  const server = await startServer({
    dataDir: join(dir, 'server'),
    heartbeat: false,
    logger,
    ...(broadcast
      ? { deliveryPolicy: { broadcast: true, broadcastThreshold: 2, ackTimeoutMs: 5000 } }
      : { deliveryPolicy: { broadcast: false, broadcastThreshold: 1, ackTimeoutMs: 5000 } }),
  } as Parameters<typeof startServer>[0]);
  const gws: PnGateway[] = [];
  const sims: SimPne[] = [];
  try {
    await pool(
      Array.from({ length: o.gateways }, (_, i) => i),
      8,
      async (i) => {
        const token = await server.admin.createToken('gw');
        const credentials = await PnGateway.enroll({
          enrollUrl: server.enrollUrl,
          caPem: server.caPem,
          token,
        });
        gws[i] = await PnGateway.start({
          serverUrl: server.url,
          credentials,
          heartbeat: false,
          logger,
          ...(broadcast
            ? {
                dataDir: join(dir, `gw${i}`),
                broadcastMedia: [{ name: 'wifi', group: '239.255.78.1', port: 30000 + i }],
              }
            : {}),
        } as Parameters<typeof PnGateway.start>[0]);
      },
    );
    const creds: { gw: PnGateway; c: Credentials }[] = [];
    await pool(
      Array.from({ length: o.members }, (_, i) => i),
      16,
      async (i) => {
        const gw = gws[i % o.gateways]!;
        const token = await server.admin.createToken('pne');
        creds[i] = { gw, c: await PneClient.enroll({ enrollUrl: gw.enrollUrl, caPem: server.caPem, token }) };
      },
    );
    await pool(creds, 32, async ({ gw, c }, i) => {
      sims[i] = await SimPne.connect(gw.url, c, broadcast ? ['wifi'] : []);
    });
    const { sgId } = await server.admin.createGroup({
      name: 'bench',
      joinPolicy: 'invite',
      members: sims.map((s) => s.identity),
    });
    await Promise.all(sims.map((s) => s.waitEpoch(sgId, 1)));
    const setupSec = (performance.now() - t0) / 1000;
    o.log(
      `  setup ${o.policy}: ${o.gateways} GWs, ${o.members} PNEs enrolled and attached in ${setupSec.toFixed(1)} s`,
    );

    // Broadcast bytes are sent once per GW and medium however many PNEs receive them: count them at the GWs.
    let broadcastBytes = 0;
    for (const g of gws) {
      g.on('delivery', (d: { bytes: number }) => {
        broadcastBytes += d.bytes;
      });
    }
    const allAckedMs: number[] = [];
    const trackedMs: number[] = [];
    let bytes = 0;
    for (let r = 0; r < o.rounds; r++) {
      const before = sims.reduce((n, s) => n + s.unicastBytes, 0) + broadcastBytes;
      const start = performance.now();
      const { epoch } = await server.admin.rekey(sgId);
      await Promise.all(sims.map((s) => s.waitEpoch(sgId, epoch)));
      allAckedMs.push(Math.max(...sims.map((s) => s.acked.get(sgId)!.get(epoch)!)) - start);
      for (;;) {
        const st = (await server.admin.groupStatus(sgId)) as unknown as { members: { lag: number | null }[] };
        if (st.members.every((m) => m.lag === 0)) break;
        await new Promise((res) => setTimeout(res, 5));
      }
      trackedMs.push(performance.now() - start);
      bytes = sims.reduce((n, s) => n + s.unicastBytes, 0) + broadcastBytes - before;
    }
    return {
      policy: o.policy,
      members: o.members,
      gateways: o.gateways,
      allAckedMs,
      trackedMs,
      pnBytesPerUpdate: bytes,
      setupSec,
    };
  } finally {
    await Promise.all(sims.map((s) => s?.close()));
    await pool(gws, 16, (g) => g.close());
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runRekeyBench(o: {
  members: number;
  gateways: number;
  rounds: number;
  outDir?: string;
}) {
  const log = (l: string) => process.stdout.write(`${l}\n`);
  log(
    `Rekey of one Service Group: ${o.members} members over ${o.gateways} PN GWs, ${o.rounds} updates per policy`,
  );
  const runs: RekeyRun[] = [];
  for (const policy of ['unicast', 'broadcast'] as const) {
    const r = await benchRekey({ ...o, policy, log });
    runs.push(r);
    log(`  ${policy}: all acked in ${r.allAckedMs.map((x) => x.toFixed(0)).join(', ')} ms`);
  }
  log('policy     median all-acked ms   max   median tracked ms   PN-hop bytes/update');
  for (const r of runs) {
    log(
      `${r.policy.padEnd(10)} ${median(r.allAckedMs).toFixed(1).padStart(19)} ${Math.max(...r.allAckedMs)
        .toFixed(1)
        .padStart(
          6,
        )} ${median(r.trackedMs).toFixed(1).padStart(19)} ${String(Math.round(r.pnBytesPerUpdate)).padStart(21)}`,
    );
  }
  const [u, b] = runs as [RekeyRun, RekeyRun];
  log(
    `broadcast / unicast: time ${(median(b.allAckedMs) / median(u.allAckedMs)).toFixed(2)}x, PN-hop bytes ${(
      b.pnBytesPerUpdate / u.pnBytesPerUpdate
    ).toFixed(2)}x`,
  );
  const outDir = o.outDir ?? join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const date = new Date().toISOString();
  const file = join(outDir, `rekey-${o.members}x${o.gateways}-${date.slice(0, 10)}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ date, node: process.version, cpu: cpus()[0]?.model, runs }, null, 2)}\n`,
  );
  log(`written ${file}`);
}
