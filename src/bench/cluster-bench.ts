/**
 * `cpns bench rekey --cluster` (docs/benchmarks.md "Cluster"): the same workload on one SQLite server node and on a
 * cluster of N server nodes (PostgreSQL + NATS JetStream), measured in the same run so that the ratio, not the
 * absolute figure, is what counts on a shared machine. Nodes run in this process (one event loop: the cluster
 * figure includes every node's work on the same cores); PN GWs are spread round-robin over the nodes and the
 * updates are issued round-robin at the nodes, so most deliveries cross nodes through the outbox and NATS.
 *
 * Two measures per setup:
 * - one SG of `members` members over `gateways` GWs, `rounds` updates in turn: ms from the update call until the
 *   last member acked the new epoch (median, p99);
 * - `sgs` distinct SGs of 4 members each, updated all at once: key updates per second until every member of
 *   every SG acked.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { type JetStreamBus, openJetStreamBus } from '../cluster/index.js';
import { startServer } from '../embed/index.js';
import { PnGateway } from '../gateway/index.js';
import { PneClient } from '../pne/index.js';
import type { CpnsServer } from '../server/index.js';
import { median, percentile, pool } from './measure.js';
import { SimPne } from './sim-pne.js';

export interface ClusterBenchOptions {
  readonly members: number;
  readonly gateways: number;
  readonly rounds: number;
  readonly sgs: number;
  readonly nodes: number;
  /** PostgreSQL URL and NATS URLs (the CLI starts throwaway ones when not given). */
  readonly store: string;
  readonly nats: readonly string[];
  readonly log: (l: string) => void;
  readonly outDir?: string;
}

export interface SetupResult {
  readonly setup: string;
  readonly allAckedMs: number[];
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly updatesPerSec: number;
}

const p99 = (xs: number[]): number => (xs.length === 0 ? 0 : percentile(xs, 0.99));

interface Setup {
  readonly servers: CpnsServer[];
  readonly close: () => Promise<void>;
}

async function startNodes(dir: string, o: ClusterBenchOptions, cluster: boolean): Promise<Setup> {
  const logger = pino({ level: 'silent' });
  const policy = { broadcast: false, broadcastThreshold: 1, ackTimeoutMs: 5000 };
  const servers: CpnsServer[] = [];
  const buses: JetStreamBus[] = [];
  if (!cluster) {
    servers.push(
      await startServer({ dataDir: join(dir, 'single'), heartbeat: false, logger, deliveryPolicy: policy }),
    );
  } else {
    const schema = `cpns_bench_${Date.now().toString(36)}`;
    for (let i = 0; i < o.nodes; i++) {
      const nd = join(dir, `node${i}`);
      mkdirSync(nd, { recursive: true, mode: 0o700 });
      if (i > 0) copyFileSync(join(dir, 'node0', 'master.key'), join(nd, 'master.key'));
      const bus = await openJetStreamBus({ servers: [...o.nats], connectionName: `bench-${i}` });
      buses.push(bus);
      servers.push(
        await startServer({
          dataDir: nd,
          storeUrl: o.store,
          storeSchema: schema,
          heartbeat: false,
          logger,
          deliveryPolicy: policy,
          cluster: { bus, nodeId: `bench${i}` },
        }),
      );
    }
  }
  return {
    servers,
    close: async () => {
      for (const s of servers) await s.close();
      for (const b of buses) await b.close();
    },
  };
}

async function runSetup(dir: string, o: ClusterBenchOptions, cluster: boolean): Promise<SetupResult> {
  const name = cluster ? `cluster of ${o.nodes} (PostgreSQL + NATS)` : 'one node (SQLite)';
  const logger = pino({ level: 'silent' });
  const t0 = performance.now();
  const { servers, close } = await startNodes(dir, o, cluster);
  const first = servers[0]!;
  const gws: PnGateway[] = [];
  const sims: SimPne[] = [];
  try {
    await pool(
      Array.from({ length: o.gateways }, (_, i) => i),
      8,
      async (i) => {
        const home = servers[i % servers.length]!;
        gws[i] = await PnGateway.start({
          serverUrl: home.url,
          credentials: await PnGateway.enroll({
            enrollUrl: home.enrollUrl,
            caPem: first.caPem,
            token: await home.admin.createToken('gw'),
          }),
          heartbeat: false,
          logger,
        });
      },
    );
    await pool(
      Array.from({ length: o.members }, (_, i) => i),
      16,
      async (i) => {
        const gw = gws[i % o.gateways]!;
        const c = await PneClient.enroll({
          enrollUrl: gw.enrollUrl,
          caPem: first.caPem,
          token: await first.admin.createToken('pne'),
        });
        sims[i] = await SimPne.connect(gw.url, c);
      },
    );
    const { sgId } = await first.admin.createGroup({ name: 'bench', members: sims.map((s) => s.identity) });
    await Promise.all(sims.map((s) => s.waitEpoch(sgId, 1)));
    o.log(
      `  ${name}: ${o.gateways} GWs, ${o.members} PNEs up in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );

    const allAckedMs: number[] = [];
    for (let r = 0; r < o.rounds; r++) {
      const at = servers[r % servers.length]!;
      const start = performance.now();
      const { epoch } = await at.admin.rekey(sgId);
      await Promise.all(sims.map((s) => s.waitEpoch(sgId, epoch)));
      allAckedMs.push(Math.max(...sims.map((s) => s.acked.get(sgId)!.get(epoch)!)) - start);
    }

    // Throughput: distinct SGs of 4 members each (members spread over the GWs, so over the nodes), all at once.
    const groups: { sgId: string; members: SimPne[] }[] = [];
    for (let g = 0; g < o.sgs; g++) {
      const members = [0, 1, 2, 3].map((k) => sims[(g * 4 + k * 7) % sims.length]!);
      const at = servers[g % servers.length]!;
      const { sgId: id } = await at.admin.createGroup({
        name: `t${g}`,
        members: [...new Set(members)].map((s) => s.identity),
      });
      groups.push({ sgId: id, members: [...new Set(members)] });
    }
    await Promise.all(groups.flatMap((g) => g.members.map((s) => s.waitEpoch(g.sgId, 1))));
    const start = performance.now();
    const epochs = await Promise.all(
      groups.map((g, i) => servers[i % servers.length]!.admin.rekey(g.sgId).then((r) => r.epoch)),
    );
    await Promise.all(groups.flatMap((g, i) => g.members.map((s) => s.waitEpoch(g.sgId, epochs[i]!))));
    const updatesPerSec = o.sgs / ((performance.now() - start) / 1000);
    return { setup: name, allAckedMs, medianMs: median(allAckedMs), p99Ms: p99(allAckedMs), updatesPerSec };
  } finally {
    await Promise.all(sims.map((s) => s?.close()));
    await pool(gws, 16, (g) => g.close());
    await close();
  }
}

export async function runClusterRekeyBench(o: ClusterBenchOptions): Promise<SetupResult[]> {
  const { log } = o;
  log(
    `Rekey, one node (SQLite) vs a cluster of ${o.nodes} nodes: one SG of ${o.members} members over ${o.gateways} ` +
      `PN GWs (${o.rounds} updates), then ${o.sgs} SGs updated at once`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'cpns-bench-cluster-'));
  const out: SetupResult[] = [];
  try {
    out.push(await runSetup(dir, o, false));
    out.push(await runSetup(dir, o, true));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  log('setup                                  median all-acked ms   p99 ms   key updates/s (distinct SGs)');
  for (const r of out) {
    log(
      `${r.setup.padEnd(38)} ${r.medianMs.toFixed(1).padStart(19)} ${r.p99Ms.toFixed(1).padStart(8)} ${r.updatesPerSec
        .toFixed(0)
        .padStart(15)}`,
    );
  }
  const [one, many] = out as [SetupResult, SetupResult];
  log(
    `cluster / one node: all-acked median ${(many.medianMs / one.medianMs).toFixed(2)}x, ` +
      `updates/s ${(many.updatesPerSec / one.updatesPerSec).toFixed(2)}x`,
  );
  const outDir = o.outDir ?? join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const date = new Date().toISOString();
  const file = join(outDir, `rekey-cluster-${o.nodes}n-${o.members}x${o.gateways}-${date.slice(0, 10)}.json`);
  const { log: _l, store: _s, nats: _n, ...params } = o;
  writeFileSync(
    file,
    `${JSON.stringify({ date, node: process.version, cpu: cpus()[0]?.model, params, results: out }, null, 2)}\n`,
  );
  log(`written ${file}`);
  return out;
}
