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
import { DeliveredWatch } from './tracked.js';

export interface RekeyRun {
  readonly policy: 'unicast' | 'broadcast';
  readonly members: number;
  readonly gateways: number;
  /** ms from the operator's update call until the last member acked the new epoch (PNE side). */
  readonly allAckedMs: number[];
  /** ms until the server's delivery tracking shows every member on the new epoch. */
  readonly trackedMs: number[];
  /**
   * ms until the server accepted the last ack of the new epoch (its last 'key.ack' event): what tracked adds to
   * this is the server's tracking; what this adds to all-acked is the acks' way through the GWs.
   */
  readonly acceptedMs: number[];
  /** Bytes of Group Key delivery on the PN hop (GW -> PNEs) per update: unicast frames + broadcast datagrams. */
  readonly pnBytesPerUpdate: number;
  readonly setupSec: number;
}

/** A running bench setup: one server, `gws` PN GWs, `sims` PNEs (PNE i behind GW i mod G), all attached. */
interface BenchEnv {
  readonly server: Awaited<ReturnType<typeof startServer>>;
  readonly gws: PnGateway[];
  readonly sims: SimPne[];
  readonly setupSec: number;
  /** Broadcast bytes sent by the GWs so far (once per GW and medium, however many PNEs receive them). */
  broadcastBytes: number;
  close(): Promise<void>;
}

async function setUp(o: {
  members: number;
  gateways: number;
  policy: 'unicast' | 'broadcast';
  log: (l: string) => void;
}): Promise<BenchEnv> {
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
  const close = async () => {
    await Promise.all(sims.map((s) => s?.close()));
    await pool(gws, 16, (g) => g.close());
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  };
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
  } catch (e) {
    await close();
    throw e;
  }
  const env: BenchEnv = {
    server,
    gws,
    sims,
    setupSec: (performance.now() - t0) / 1000,
    broadcastBytes: 0,
    close,
  };
  for (const g of gws) {
    g.on('delivery', (d: { bytes: number }) => {
      env.broadcastBytes += d.bytes;
    });
  }
  o.log(
    `  setup ${o.policy}: ${o.gateways} GWs, ${o.members} PNEs enrolled and attached in ${env.setupSec.toFixed(1)} s`,
  );
  return env;
}

/**
 * `rounds` operator updates of `sgId` (members `members`), after `warmup` uncounted ones: per update, the time
 * until the last member acked (PNE side) and until the server's delivery tracking shows every member on the new
 * epoch (its 'key.delivered' event, confirmed by admin groupStatus: tracked.ts); and the PN-hop bytes of the last
 * update.
 */
async function measure(
  env: BenchEnv,
  sgId: string,
  members: readonly SimPne[],
  rounds: number,
  warmup = 0,
): Promise<{ allAckedMs: number[]; trackedMs: number[]; acceptedMs: number[]; bytes: number }> {
  const allAckedMs: number[] = [];
  const trackedMs: number[] = [];
  const acceptedMs: number[] = [];
  let bytes = 0;
  /** epoch -> when the server accepted its last ack so far. */
  const lastAccepted = new Map<number, number>();
  const onChange = (e: { kind: string; sgId?: string; epoch?: number }) => {
    if (e.kind === 'key.ack' && e.sgId === sgId && e.epoch !== undefined)
      lastAccepted.set(e.epoch, performance.now());
  };
  env.server.events.on('change', onChange);
  const watch = new DeliveredWatch(env.server);
  for (let r = 0; r < warmup + rounds; r++) {
    const before = members.reduce((n, s) => n + s.unicastBytes, 0) + env.broadcastBytes;
    const start = performance.now();
    const { epoch } = await env.server.admin.rekey(sgId);
    const trackedAt = watch.tracked(sgId, epoch).then(() => performance.now());
    await Promise.all(members.map((s) => s.waitEpoch(sgId, epoch)));
    const acked = Math.max(...members.map((s) => s.acked.get(sgId)!.get(epoch)!)) - start;
    const tracked = (await trackedAt) - start;
    const accepted = (lastAccepted.get(epoch) ?? Number.NaN) - start;
    bytes = members.reduce((n, s) => n + s.unicastBytes, 0) + env.broadcastBytes - before;
    if (r < warmup) continue;
    allAckedMs.push(acked);
    trackedMs.push(tracked);
    acceptedMs.push(accepted);
  }
  env.server.events.off('change', onChange);
  watch.close();
  return { allAckedMs, trackedMs, acceptedMs, bytes };
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
  const env = await setUp(o);
  try {
    const { sgId } = await env.server.admin.createGroup({
      name: 'bench',
      joinPolicy: 'invite',
      members: env.sims.map((s) => s.identity),
    });
    await Promise.all(env.sims.map((s) => s.waitEpoch(sgId, 1)));
    const m = await measure(env, sgId, env.sims, o.rounds);
    return {
      policy: o.policy,
      members: o.members,
      gateways: o.gateways,
      allAckedMs: m.allAckedMs,
      trackedMs: m.trackedMs,
      acceptedMs: m.acceptedMs,
      pnBytesPerUpdate: m.bytes,
      setupSec: env.setupSec,
    };
  } finally {
    await env.close();
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
  log(
    'policy     median all-acked ms   max   median accepted ms   median tracked ms   tracked/all-acked   PN-hop bytes/update',
  );
  for (const r of runs) {
    const ratio = median(r.trackedMs) / median(r.allAckedMs);
    log(
      `${r.policy.padEnd(10)} ${median(r.allAckedMs).toFixed(1).padStart(19)} ${Math.max(...r.allAckedMs)
        .toFixed(1)
        .padStart(6)} ${median(r.acceptedMs).toFixed(1).padStart(20)} ${median(r.trackedMs)
        .toFixed(1)
        .padStart(
          19,
        )} ${`${ratio.toFixed(2)}x`.padStart(19)} ${String(Math.round(r.pnBytesPerUpdate)).padStart(21)}`,
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

/** Least-squares slope of log(y) over log(x): the exponent k of y ~ x^k. */
export function fittedExponent(xs: readonly number[], ys: readonly number[]): number {
  const lx = xs.map(Math.log);
  const ly = ys.map(Math.log);
  const mx = lx.reduce((a, b) => a + b, 0) / lx.length;
  const my = ly.reduce((a, b) => a + b, 0) / ly.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < lx.length; i++) {
    num += (lx[i]! - mx) * (ly[i]! - my);
    den += (lx[i]! - mx) ** 2;
  }
  return num / den;
}

export interface ScalePoint {
  readonly members: number;
  readonly gateways: number;
  readonly allAckedMs: number[];
  readonly trackedMs: number[];
  readonly acceptedMs: number[];
}

/**
 * How rekey time grows with the SG (issue #11 §1): one setup of max(sizes) PNEs, `perGw` behind each GW, then per
 * size M an SG of the PNEs of the first M/perGw GWs (so M members over M/perGw GWs, the other GWs idle), one
 * uncounted warm-up update and `rounds` measured ones, the SG deleted after. Prints the medians, tracked/all-acked
 * and the fitted exponents (log-log slope) of all-acked and tracked against M; writes
 * bench/results/rekey-scale-<date>.json.
 */
export async function runRekeyScale(o: {
  sizes: readonly number[];
  perGw: number;
  rounds: number;
  policy: 'unicast' | 'broadcast';
  outDir?: string;
}): Promise<void> {
  const log = (l: string) => process.stdout.write(`${l}\n`);
  const sizes = [...o.sizes].sort((a, b) => a - b);
  const max = sizes[sizes.length - 1]!;
  const gateways = Math.ceil(max / o.perGw);
  log(
    `Rekey scaling (${o.policy}): SGs of ${sizes.join(', ')} members, ${o.perGw} per GW, ${o.rounds} updates each (+1 warm-up)`,
  );
  const env = await setUp({ members: max, gateways, policy: o.policy, log });
  const points: ScalePoint[] = [];
  try {
    for (const m of sizes) {
      const g = Math.ceil(m / o.perGw);
      // PNE i is behind GW i mod G: the first g GWs' PNEs, perGw each.
      const members = env.sims.filter((_, i) => i % gateways < g).slice(0, m);
      const { sgId } = await env.server.admin.createGroup({
        name: `scale-${m}`,
        joinPolicy: 'invite',
        members: members.map((s) => s.identity),
      });
      await Promise.all(members.map((s) => s.waitEpoch(sgId, 1)));
      const r = await measure(env, sgId, members, o.rounds, 1);
      await env.server.admin.deleteGroup(sgId);
      points.push({
        members: members.length,
        gateways: g,
        allAckedMs: r.allAckedMs,
        trackedMs: r.trackedMs,
        acceptedMs: r.acceptedMs,
      });
      log(
        `  ${String(members.length).padStart(6)} members over ${String(g).padStart(4)} GWs: all acked ${r.allAckedMs
          .map((x) => x.toFixed(0))
          .join(', ')} ms; tracked ${r.trackedMs.map((x) => x.toFixed(0)).join(', ')} ms`,
      );
    }
  } finally {
    await env.close();
  }
  log('members    GWs   median all-acked ms   median accepted ms   median tracked ms   tracked/all-acked');
  for (const p of points) {
    const a = median(p.allAckedMs);
    const t = median(p.trackedMs);
    log(
      `${String(p.members).padStart(7)} ${String(p.gateways).padStart(6)} ${a.toFixed(1).padStart(21)} ${median(
        p.acceptedMs,
      )
        .toFixed(1)
        .padStart(20)} ${t.toFixed(1).padStart(19)} ${`${(t / a).toFixed(2)}x`.padStart(19)}`,
    );
  }
  const xs = points.map((p) => p.members);
  const exponents = {
    allAcked: fittedExponent(
      xs,
      points.map((p) => median(p.allAckedMs)),
    ),
    accepted: fittedExponent(
      xs,
      points.map((p) => median(p.acceptedMs)),
    ),
    tracked: fittedExponent(
      xs,
      points.map((p) => median(p.trackedMs)),
    ),
  };
  log(
    `fitted exponent (median ms ~ members^k): all-acked k = ${exponents.allAcked.toFixed(2)}, accepted k = ${exponents.accepted.toFixed(2)}, tracked k = ${exponents.tracked.toFixed(2)}`,
  );
  const outDir = o.outDir ?? join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const date = new Date().toISOString();
  const file = join(outDir, `rekey-scale-${date.slice(0, 10)}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        date,
        node: process.version,
        cpu: cpus()[0]?.model,
        policy: o.policy,
        perGw: o.perGw,
        rounds: o.rounds,
        warmup: 1,
        points,
        medians: points.map((p) => ({
          members: p.members,
          gateways: p.gateways,
          allAckedMs: median(p.allAckedMs),
          acceptedMs: median(p.acceptedMs),
          trackedMs: median(p.trackedMs),
        })),
        exponents,
      },
      null,
      2,
    )}\n`,
  );
  log(`written ${file}`);
}
