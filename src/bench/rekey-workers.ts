/**
 * `cpns bench rekey` with its simulated PNEs (and, with `gwWorkers`, its PN GWs) in worker processes
 * (docs/benchmarks.md "10,000 members: worker processes", issue #11 §2), so that 10,000 members over 1,000 GWs fit
 * under this machine's file-descriptor limit and the PNEs verify broadcasts in parallel, as real devices do.
 *
 * This process runs the CPNS Server (SQLite) and, unless `gwWorkers`, the GWs; it creates the one-time enrollment
 * tokens and hands them to the workers over IPC (never on a command line or in the environment); each worker
 * enrolls its PNEs (and GWs) itself, so their keys never leave it. One setup of the largest size serves every
 * measurement: per policy (unicast, broadcast; per-SG delivery policy) and size M, an SG of the PNEs behind the
 * first M / perGw GWs, one uncounted warm-up update and `rounds` measured ones; then `sgs` distinct SGs updated
 * concurrently for key updates per second. Workers are killed on every way out (error, SIGINT, SIGTERM, exit).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { startServer } from '../embed/index.js';
import type { PnGateway } from '../gateway/index.js';
import { startBenchGateway } from './bench-gateway.js';
import { CpuProfile } from './cpu-profile.js';
import { median, percentile, pool } from './measure.js';
import { fittedExponent } from './rekey-bench.js';
import { BENCH_LIMITS, type WaitReply, type WorkerRequest } from './rekey-protocol.js';
import { DeliveredWatch } from './tracked.js';

type Policy = 'unicast' | 'broadcast';
const POLICIES = {
  unicast: { broadcast: false, broadcastThreshold: 1, ackTimeoutMs: 5000 },
  broadcast: { broadcast: true, broadcastThreshold: 2, ackTimeoutMs: 5000 },
} as const;
/** UDP port of GW i's broadcast medium (below the ephemeral range, apart from the in-process bench's 30000+). */
const BROADCAST_PORT_BASE = 20000;

const now = () => performance.timeOrigin + performance.now();
type Body<T> = T extends unknown ? Omit<T, 'id'> : never;

/** The worker processes, with an IPC call each; all killed on every exit path. */
export class Workers {
  readonly children: ChildProcess[] = [];
  #id = 0;
  readonly #pending = new Map<
    number,
    { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }
  >();
  readonly #killAll = () => {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  /** The bench's temporary directory (the server's and the workers' state): removed on a signal too. */
  #dir = '';
  readonly #onSignal = (sig: NodeJS.Signals) => {
    this.#killAll();
    rmSync(this.#dir, { recursive: true, force: true });
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };

  private constructor() {}

  /** `n` workers, worker i keeping its state in `<dir>/worker<i>`. */
  static async start(n: number, dir: string): Promise<Workers> {
    const w = new Workers();
    w.#dir = dir;
    process.on('exit', w.#killAll);
    process.on('SIGINT', w.#onSignal);
    process.on('SIGTERM', w.#onSignal);
    const self = fileURLToPath(import.meta.url);
    const ts = self.endsWith('.ts');
    const file = self.replace(/rekey-workers\.(ts|js)$/, `rekey-worker.${ts ? 'ts' : 'js'}`);
    try {
      await Promise.all(
        Array.from({ length: n }, (_, i) => {
          const child = fork(file, [join(dir, `worker${i}`)], {
            execArgv: ts ? ['--import', 'tsx'] : [],
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          });
          w.children.push(child);
          return new Promise<void>((resolve, reject) => {
            child.once('exit', (code, signal) => {
              const e = new Error(`bench worker ${child.pid} exited (${code ?? signal})`);
              reject(e);
              for (const p of w.#pending.values()) p.reject(e);
              w.#pending.clear();
            });
            child.on('message', (m: Record<string, unknown>) => {
              if (m.t === 'ready') resolve();
              else if (m.t === 'reply') {
                const p = w.#pending.get(m.id as number);
                w.#pending.delete(m.id as number);
                if (typeof m.error === 'string') p?.reject(new Error(`bench worker: ${m.error}`));
                else p?.resolve(m);
              }
            });
          });
        }),
      );
    } catch (e) {
      await w.close();
      throw e;
    }
    return w;
  }

  get size(): number {
    return this.children.length;
  }

  call<R = Record<string, unknown>>(w: number, m: Body<WorkerRequest>): Promise<R> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (m: Record<string, unknown>) => void, reject });
      this.children[w]!.send({ ...m, id });
    });
  }

  /** Asks each worker to close (its PNEs and GWs), then kills what is left; waits until all have exited. */
  async close(): Promise<void> {
    await Promise.all(
      this.children.map(async (c, i) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise<void>((r) => c.once('exit', () => r()));
        const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
        await this.call(i, { t: 'close' }).catch(() => c.kill('SIGKILL'));
        await exited;
        clearTimeout(t);
      }),
    );
    process.off('exit', this.#killAll);
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
  }
}

export interface DistOptions {
  /** SG sizes to measure (members); the largest is set up once. */
  readonly sizes: readonly number[];
  readonly perGw: number;
  readonly rounds: number;
  readonly policies: readonly Policy[];
  readonly workers: number;
  /** GWs in the workers (with the PNEs behind them) instead of this process: this process is the server's. */
  readonly gwWorkers: boolean;
  /**
   * With `gwWorkers` and 2 or more workers: the GWs in the first half of the workers, their PNEs in the other half,
   * so a GW's process runs no device code (a GW reads a PNE's ack without waiting for co-hosted PNEs' handlers).
   */
  readonly splitRoles?: boolean | undefined;
  /** Distinct SGs updated concurrently for key updates per second (0: not measured). */
  readonly sgs: number;
  /** Updates per SG in that measure. */
  readonly sgRounds: number;
  /**
   * Directory for CPU profiles of this process and of each worker over the measured updates of each policy and
   * size (not setup, not the warm-up update): `<policy>-<members>-server.cpuprofile`, `...-worker<i>.cpuprofile`.
   */
  readonly cpuProfDir?: string | undefined;
  readonly log: (l: string) => void;
}

export interface DistPoint {
  readonly policy: Policy;
  readonly members: number;
  readonly gateways: number;
  /** Per update: ms from the update call until the last member acked (PNE side). */
  readonly allAckedMs: number[];
  /** Per update: ms until the server's delivery tracking shows every member acked (tracked.ts). */
  readonly trackedMs: number[];
  /**
   * Per update: ms until the server's 'key.delivered' event (its in-memory tracking counted the last ack);
   * trackedMs adds the status query that confirms it from the store, O(members). NaN for an update without one.
   */
  readonly deliveredEventMs: number[];
  /** Per-member ack latency over members × rounds (ms after the update call). */
  readonly memberAckMs: { p50: number; p99: number; max: number };
  /** Group Key delivery bytes on the PN hop (GW -> PNEs) per update: unicast frames + broadcast datagrams. */
  readonly pnBytesPerUpdate: number;
  /** CPU ms of this process per update, from the update call until tracked (server, plus GWs unless gwWorkers). */
  readonly parentCpuMsPerUpdate: number;
  /** CPU ms of all workers per update (PNEs, plus GWs with gwWorkers). */
  readonly workersCpuMsPerUpdate: number;
}

export interface UpdatesPerSec {
  readonly sgs: number;
  readonly membersPerSg: number;
  readonly updates: number;
  readonly seconds: number;
  readonly updatesPerSec: number;
  /** Per update: ms from the update call until it completed (tracked). */
  readonly latencyMs: { p50: number; p99: number; max: number };
  /** CPU ms of this process (the server, and the GWs unless gwWorkers) per completed update. */
  readonly parentCpuMsPerUpdate: number;
  /** CPU ms of all workers (PNEs, and GWs with gwWorkers) per completed update. */
  readonly workersCpuMsPerUpdate: number;
}

interface Env {
  readonly server: Awaited<ReturnType<typeof startServer>>;
  readonly workers: Workers;
  readonly gateways: number;
  /** PNE i: its identity and its worker. */
  readonly pnes: { identity: string; worker: number }[];
  /** Broadcast bytes sent so far by the GWs in this process. */
  readonly local: { broadcastBytes: number };
  /** The server's 'key.delivered' events, and the status query confirming each (tracked.ts). */
  readonly watch: DeliveredWatch;
  readonly setupSec: number;
  close(): Promise<void>;
}

async function setUp(o: DistOptions, members: number): Promise<Env> {
  const gateways = Math.ceil(members / o.perGw);
  const dir = mkdtempSync(join(tmpdir(), 'cpns-bench-'));
  const logger = pino({ level: 'silent' });
  const t0 = performance.now();
  const server = await startServer({
    dataDir: join(dir, 'server'),
    heartbeat: false,
    logger,
    limits: BENCH_LIMITS,
    enrollLimits: BENCH_LIMITS,
    deliveryPolicy: POLICIES.unicast,
  });
  let workers: Workers | undefined;
  const localGws: PnGateway[] = [];
  const close = async () => {
    watch.close();
    await workers?.close();
    await pool(localGws, 16, (g) => g.close());
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const env = {
    server,
    gateways,
    pnes: [] as { identity: string; worker: number }[],
    local: { broadcastBytes: 0 },
  };
  const watch = new DeliveredWatch(server);
  try {
    workers = await Workers.start(o.workers, dir);
    const W = workers.size;
    // Which worker runs GW g, and which runs PNE i (behind GW i mod G): the same one unless splitRoles.
    const split = o.gwWorkers && o.splitRoles === true && W >= 2;
    const gwWorkerCount = split ? Math.ceil(W / 2) : W;
    const gwWorkerOf = (g: number) => g % gwWorkerCount;
    const workerOf = (i: number) =>
      !o.gwWorkers ? i % W : split ? gwWorkerCount + (i % (W - gwWorkerCount)) : gwWorkerOf(i % gateways);
    const gwInfo: { url: string; enrollUrl: string }[] = [];
    if (o.gwWorkers) {
      await Promise.all(
        Array.from({ length: gwWorkerCount }, async (_, w) => {
          const mine = Array.from({ length: gateways }, (_, g) => g).filter((g) => gwWorkerOf(g) === w);
          for (let k = 0; k < mine.length; k += 50) {
            const items = [];
            for (const i of mine.slice(k, k + 50))
              items.push({ i, token: await server.admin.createToken('gw'), port: BROADCAST_PORT_BASE + i });
            const r = await workers!.call<{ gws: { i: number; url: string; enrollUrl: string }[] }>(w, {
              t: 'gws',
              serverUrl: server.url,
              enrollUrl: server.enrollUrl,
              caPem: server.caPem,
              items,
            });
            for (const g of r.gws) gwInfo[g.i] = g;
          }
        }),
      );
    } else {
      await pool(
        Array.from({ length: gateways }, (_, i) => i),
        8,
        async (i) => {
          const gw = await startBenchGateway({
            serverUrl: server.url,
            enrollUrl: server.enrollUrl,
            caPem: server.caPem,
            token: await server.admin.createToken('gw'),
            logger,
            dataDir: join(dir, `gw${i}`),
            port: BROADCAST_PORT_BASE + i,
            onBroadcastBytes: (n) => {
              env.local.broadcastBytes += n;
            },
          });
          localGws[i] = gw;
          gwInfo[i] = { url: gw.url, enrollUrl: gw.enrollUrl };
        },
      );
    }
    o.log(
      `  ${gateways} GWs up (${o.gwWorkers ? `in ${workersText(gwWorkerCount)}${split ? `, their PNEs in the other ${W - gwWorkerCount}` : ''}` : 'in this process'}) after ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    let done = 0;
    await Promise.all(
      Array.from({ length: W }, async (_, w) => {
        const mine = Array.from({ length: members }, (_, i) => i).filter((i) => workerOf(i) === w);
        const chunk = async (k: number) => {
          const items = [];
          for (const i of mine.slice(k, k + 100)) {
            const gw = gwInfo[i % gateways]!;
            items.push({
              i,
              gwUrl: gw.url,
              gwEnrollUrl: gw.enrollUrl,
              token: await server.admin.createToken('pne'),
            });
          }
          return items;
        };
        // the next chunk's tokens are made while the worker enrolls this one
        let next = chunk(0);
        for (let k = 0; k < mine.length; k += 100) {
          const items = await next;
          next = chunk(k + 100);
          const r = await workers!.call<{ pnes: { i: number; identity: string }[] }>(w, {
            t: 'pnes',
            caPem: server.caPem,
            items,
          });
          for (const p of r.pnes) env.pnes[p.i] = { identity: p.identity, worker: w };
          done += r.pnes.length;
          if (done % 1000 < 100)
            o.log(
              `  ${done} / ${members} PNEs attached after ${((performance.now() - t0) / 1000).toFixed(0)} s`,
            );
        }
      }),
    );
  } catch (e) {
    await close();
    throw e;
  }
  const setupSec = (performance.now() - t0) / 1000;
  o.log(
    `  setup: ${gateways} GWs, ${members} PNEs in ${workers!.size} workers, enrolled and attached in ${setupSec.toFixed(1)} s`,
  );
  return { ...env, workers: workers!, watch, setupSec, close };
}

const workersText = (n: number) => `${n} worker${n === 1 ? '' : 's'}`;

/** Waits until every member in `members` (PNE indices) holds `epoch` of `sgId`; their absolute ack times and counters. */
async function waitAll(env: Env, sgId: string, epoch: number, members: readonly number[]) {
  // One push per member: this runs on the server's event loop right after the update call.
  const byWorker = new Map<number, number[]>();
  for (const i of members) {
    const w = env.pnes[i]!.worker;
    const l = byWorker.get(w);
    if (l) l.push(i);
    else byWorker.set(w, [i]);
  }
  const replies = await Promise.all(
    Array.from({ length: env.workers.size }, (_, w) =>
      env.workers.call<WaitReply>(w, { t: 'wait', sgId, epoch, members: byWorker.get(w) ?? [] }),
    ),
  );
  return {
    times: replies.flatMap((r) => r.times),
    bytes: replies.reduce((n, r) => n + r.unicastBytes + r.broadcastBytes, 0) + env.local.broadcastBytes,
    cpuMs: replies.reduce((n, r) => n + (r.cpu.user + r.cpu.system) / 1000, 0),
  };
}

async function measure(env: Env, policy: Policy, m: number, o: DistOptions): Promise<DistPoint> {
  const g = Math.ceil(m / o.perGw);
  const members = env.pnes
    .map((_, i) => i)
    .filter((i) => i % env.gateways < g)
    .slice(0, m);
  const { sgId } = await env.server.admin.createGroup({
    name: `${policy}-${m}`,
    joinPolicy: 'invite',
    members: members.map((i) => env.pnes[i]!.identity),
    deliveryPolicy: POLICIES[policy],
  });
  let last = await waitAll(env, sgId, 1, members);
  await env.watch.tracked(sgId, 1);
  const allAckedMs: number[] = [];
  const trackedMs: number[] = [];
  const deliveredEventMs: number[] = [];
  const memberMs: number[] = [];
  let bytes = 0;
  let parentCpu = 0;
  let workersCpu = 0;
  let profile: CpuProfile | undefined;
  for (let r = 0; r < 1 + o.rounds; r++) {
    if (r === 1 && o.cpuProfDir !== undefined) profile = await startProfiles(env);
    const cpu0 = process.cpuUsage();
    const start = now();
    const { epoch } = await env.server.admin.rekey(sgId);
    // The server's tracking is timed by itself, not after the workers' answer (which comes over IPC).
    const trackedAt = env.watch.tracked(sgId, epoch).then(now);
    const a = await waitAll(env, sgId, epoch, members);
    const t = (await trackedAt) - start;
    const cpu = process.cpuUsage(cpu0);
    const prev = last;
    last = a;
    if (r === 0) continue; // warm-up
    let maxAck = 0;
    for (const x of a.times) {
      memberMs.push(x - start);
      if (x > maxAck) maxAck = x;
    }
    allAckedMs.push(maxAck - start);
    trackedMs.push(t);
    deliveredEventMs.push((env.watch.deliveredAt(sgId, epoch) ?? Number.NaN) - start);
    bytes = a.bytes - prev.bytes;
    parentCpu += (cpu.user + cpu.system) / 1000;
    workersCpu += a.cpuMs - prev.cpuMs;
  }
  if (profile) await stopProfiles(env, profile, join(o.cpuProfDir!, `${policy}-${members.length}`));
  await env.server.admin.deleteGroup(sgId);
  return {
    policy,
    members: members.length,
    gateways: g,
    allAckedMs,
    trackedMs,
    deliveredEventMs,
    memberAckMs: {
      p50: percentile(memberMs, 0.5),
      p99: percentile(memberMs, 0.99),
      max: percentile(memberMs, 1),
    },
    pnBytesPerUpdate: bytes,
    parentCpuMsPerUpdate: parentCpu / o.rounds,
    workersCpuMsPerUpdate: workersCpu / o.rounds,
  };
}

/** CPU profiles of this process and every worker from now on (`--cpu-prof`). */
async function startProfiles(env: Env): Promise<CpuProfile> {
  await Promise.all(
    Array.from({ length: env.workers.size }, (_, w) => env.workers.call(w, { t: 'profile' })),
  );
  return CpuProfile.start();
}

/** Stops them: `<prefix>-server.cpuprofile` (this process) and `<prefix>-worker<i>.cpuprofile`. */
async function stopProfiles(env: Env, parent: CpuProfile, prefix: string): Promise<void> {
  await parent.stop(`${prefix}-server.cpuprofile`);
  await Promise.all(
    Array.from({ length: env.workers.size }, (_, w) =>
      env.workers.call(w, { t: 'profile', file: `${prefix}-worker${w}.cpuprofile` }),
    ),
  );
}

/**
 * Key updates per second across `sgs` distinct SGs (unicast), `membersPerSg` members each (the PNEs behind one GW
 * where there are enough GWs): every SG runs `sgRounds` updates one after the other, all SGs at once. An update
 * counts as completed when (1) `admin.rekey` returned: the new epoch's key is committed to SQLite (durable, before
 * any delivery), and (2) the server's delivery tracking (`admin.groupStatus`, after writing the batched acks)
 * shows every member of the SG acked that epoch. Updates per second = completed updates / wall time from the
 * first update call to the last completion.
 */
async function updatesPerSec(env: Env, o: DistOptions): Promise<UpdatesPerSec> {
  const groups: { sgId: string; members: number[] }[] = [];
  for (let k = 0; k < o.sgs; k++) {
    const members = env.pnes
      .map((_, i) => i)
      .filter((i) => i % env.gateways === k % env.gateways)
      .slice(0, o.perGw);
    const { sgId } = await env.server.admin.createGroup({
      name: `ups-${k}`,
      joinPolicy: 'invite',
      members: members.map((i) => env.pnes[i]!.identity),
      deliveryPolicy: POLICIES.unicast,
    });
    groups.push({ sgId, members });
  }
  await Promise.all(
    groups.map((g) => Promise.all([waitAll(env, g.sgId, 1, g.members), env.watch.tracked(g.sgId, 1)])),
  );
  const lat: number[] = [];
  const cpu0 = process.cpuUsage();
  const w0 = (await waitAll(env, '', 0, [])).cpuMs;
  const t0 = now();
  await Promise.all(
    groups.map(async (g) => {
      for (let r = 0; r < o.sgRounds; r++) {
        const start = now();
        const { epoch } = await env.server.admin.rekey(g.sgId);
        await Promise.all([waitAll(env, g.sgId, epoch, g.members), env.watch.tracked(g.sgId, epoch)]);
        lat.push(now() - start);
      }
    }),
  );
  const seconds = (now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const w1 = (await waitAll(env, '', 0, [])).cpuMs;
  for (const g of groups) await env.server.admin.deleteGroup(g.sgId);
  return {
    sgs: o.sgs,
    membersPerSg: groups[0]?.members.length ?? 0,
    updates: lat.length,
    seconds,
    updatesPerSec: lat.length / seconds,
    latencyMs: { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), max: percentile(lat, 1) },
    parentCpuMsPerUpdate: (cpu.user + cpu.system) / 1000 / lat.length,
    workersCpuMsPerUpdate: (w1 - w0) / lat.length,
  };
}

export interface DistResult {
  readonly points: DistPoint[];
  readonly exponents: Partial<Record<Policy, { allAcked: number; tracked: number }>>;
  readonly updates?: UpdatesPerSec;
  readonly setupSec: number;
}

export async function benchRekeyWorkers(o: DistOptions): Promise<DistResult> {
  const sizes = [...o.sizes].sort((a, b) => a - b);
  const env = await setUp(o, sizes[sizes.length - 1]!);
  const points: DistPoint[] = [];
  let updates: UpdatesPerSec | undefined;
  try {
    for (const policy of o.policies) {
      for (const m of sizes) {
        const p = await measure(env, policy, m, o);
        points.push(p);
        o.log(
          `  ${policy.padEnd(9)} ${String(p.members).padStart(6)} × ${String(p.gateways).padStart(4)}: all acked ${p.allAckedMs
            .map((x) => x.toFixed(0))
            .join(
              ', ',
            )} ms; tracked ${p.trackedMs.map((x) => x.toFixed(0)).join(', ')} ms (event ${p.deliveredEventMs.map((x) => x.toFixed(0)).join(', ')} ms) (load ${loadavg()[0]!.toFixed(1)})`,
        );
      }
    }
    if (o.sgs > 0) {
      updates = await updatesPerSec(env, o);
      o.log(`  ${updates.updates} updates over ${o.sgs} SGs in ${updates.seconds.toFixed(2)} s`);
    }
  } finally {
    await env.close();
  }
  const exponents: DistResult['exponents'] = {};
  if (sizes.length > 1)
    for (const policy of o.policies) {
      const ps = points.filter((p) => p.policy === policy);
      exponents[policy] = {
        allAcked: fittedExponent(
          ps.map((p) => p.members),
          ps.map((p) => median(p.allAckedMs)),
        ),
        tracked: fittedExponent(
          ps.map((p) => p.members),
          ps.map((p) => median(p.trackedMs)),
        ),
      };
    }
  return { points, exponents, ...(updates ? { updates } : {}), setupSec: env.setupSec };
}

/** The CLI's `bench rekey` in worker mode: runs, prints the tables, writes bench/results. */
export async function runRekeyWorkers(
  o: Omit<DistOptions, 'log' | 'workers'> & { workers?: number; outDir?: string },
): Promise<DistResult> {
  const log = (l: string) => process.stdout.write(`${l}\n`);
  const workers = o.workers ?? availableParallelism();
  const sizes = [...o.sizes].sort((a, b) => a - b);
  const max = sizes[sizes.length - 1]!;
  const gateways = Math.ceil(max / o.perGw);
  log(
    `Rekey, ${o.policies.join(' + ')}: SGs of ${sizes.join(', ')} members, ${o.perGw} per GW (${gateways} GWs), ` +
      `${o.rounds} updates each (+1 warm-up); PNEs${o.gwWorkers ? ' and GWs' : ''} in ${workers} worker processes; ` +
      `load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
  );
  if (o.cpuProfDir !== undefined) mkdirSync(o.cpuProfDir, { recursive: true, mode: 0o700 });
  const loadBefore = loadavg();
  const r = await benchRekeyWorkers({ ...o, workers, log });
  const loadAfter = loadavg();
  log(
    'policy     members   GWs  all-acked median / max ms  member ack p50 / p99 / max ms  tracked median ms  event median ms  PN bytes/update  CPU ms/update parent / workers',
  );
  for (const p of r.points) {
    log(
      `${p.policy.padEnd(10)} ${String(p.members).padStart(7)} ${String(p.gateways).padStart(5)} ${`${median(p.allAckedMs).toFixed(0)} / ${Math.max(...p.allAckedMs).toFixed(0)}`.padStart(26)} ${`${p.memberAckMs.p50.toFixed(0)} / ${p.memberAckMs.p99.toFixed(0)} / ${p.memberAckMs.max.toFixed(0)}`.padStart(30)} ${median(p.trackedMs).toFixed(0).padStart(18)} ${median(p.deliveredEventMs).toFixed(0).padStart(16)} ${String(Math.round(p.pnBytesPerUpdate)).padStart(16)} ${`${p.parentCpuMsPerUpdate.toFixed(0)} / ${p.workersCpuMsPerUpdate.toFixed(0)}`.padStart(20)}`,
    );
  }
  for (const [policy, e] of Object.entries(r.exponents))
    log(
      `fitted exponent (${policy}, median ms ~ members^k): all-acked k = ${e.allAcked.toFixed(2)}, tracked k = ${e.tracked.toFixed(2)}`,
    );
  if (r.updates)
    log(
      `key updates/s across ${r.updates.sgs} distinct SGs (${r.updates.membersPerSg} members each, SQLite): ${r.updates.updatesPerSec.toFixed(0)} ` +
        `(${r.updates.updates} completed in ${r.updates.seconds.toFixed(2)} s; per update p50 ${r.updates.latencyMs.p50.toFixed(0)} ms, p99 ${r.updates.latencyMs.p99.toFixed(0)} ms; ` +
        `CPU per update: this process ${r.updates.parentCpuMsPerUpdate.toFixed(1)} ms, workers ${r.updates.workersCpuMsPerUpdate.toFixed(1)} ms)`,
    );
  const outDir = o.outDir ?? join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const date = new Date().toISOString();
  const day = date.slice(0, 10);
  const meta = {
    date,
    node: process.version,
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    loadavgBefore: loadBefore,
    loadavgAfter: loadAfter,
    workers,
    gwWorkers: o.gwWorkers,
    perGw: o.perGw,
    rounds: o.rounds,
    warmup: 1,
    setupSec: r.setupSec,
  };
  const write = (name: string, body: object) => {
    const file = join(outDir, name);
    writeFileSync(file, `${JSON.stringify({ ...meta, ...body }, null, 2)}\n`);
    log(`written ${file}`);
  };
  const top = r.points.filter((p) => p.members === max);
  write(`rekey-${max}x${gateways}-workers-${day}.json`, { points: top });
  if (sizes.length > 1)
    write(`rekey-scale-workers-${day}.json`, { points: r.points, exponents: r.exponents });
  if (r.updates) write(`rekey-updates-per-s-${max}x${gateways}-${day}.json`, { updates: r.updates });
  return r;
}
