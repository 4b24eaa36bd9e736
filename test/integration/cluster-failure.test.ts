/**
 * Failure of CPNS Server cluster nodes, with real processes (issue #10 §3, docs/cluster.md "Failure tests"):
 * two `cpns server` node processes (A, B) on one PostgreSQL schema and a private 3-node NATS JetStream cluster.
 * The GWs and PNEs run in this process; what fails is a node process, killed with SIGKILL.
 *
 * - GW 1 [A, B] and GW 3 [A] start at node A, GW 2 [B, A] at node B; one Service Group has members behind all three.
 * - (a) A is killed during a burst of key updates on both nodes: GW 1 registers at B within seconds, every member
 *   whose GW reaches a live node converges to the current epoch, the audit has each epoch 1..N exactly once, and
 *   messages flow again.
 * - (b) A, down while B committed more epochs, restarts: GW 3 (which knows only A) registers again and its member
 *   catches up; A's bus consumer resumes (an epoch committed on B reaches GW 3 through A), and the epoch A commits
 *   at its restart reaches the members behind B.
 * - (c) A loses PostgreSQL (its connections go through a TCP proxy that the test cuts): its admin API refuses
 *   writes with UNAVAILABLE, nothing is half applied, and when PostgreSQL is back A applies the epoch it missed and
 *   writes again.
 *
 * The three cases share the nodes and run in order. Needs CPNS_TEST_PG_URL and nats-server; without them: skipped
 * with the reason, except with CI=true, where it fails.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AdminCallError,
  type AdminEndpoint,
  adminRequest,
  endpointFromDataDir,
} from '../../src/cli/admin-client.js';
import { PnGateway } from '../../src/gateway/index.js';
import { type GroupMessageEvent, PneClient } from '../../src/pne/index.js';
import { openPostgresStore, type PostgresStore } from '../../src/store/postgres/index.js';
import { type PrivateCluster, startPrivateCluster } from '../cluster/private-cluster.js';
import { freePort } from '../free-port.js';
import { CutProxy } from '../pg-proxy.js';
import { BACKOFF, inbox, tempDir, until } from './helpers.js';
import { dropSchemas, failInCiIfSkipped, PG_URL, skipReason } from './pg-env.js';

const SKIP = skipReason({ nats: true });
const bin = fileURLToPath(new URL('../../bin/cpns.mjs', import.meta.url));
const schema = `cpns_fail_${randomBytes(6).toString('hex')}`;
const masterKey = randomBytes(32);
const tmp = tempDir();
const closers: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  await dropSchemas([schema]);
  masterKey.fill(0);
  tmp.cleanup();
}, 30_000);

failInCiIfSkipped(SKIP);

/** One `cpns server` node process. */
interface Node {
  readonly id: string;
  readonly dir: string;
  readonly port: number;
  readonly url: string;
  readonly storeUrl: string;
  proc?: ChildProcess;
  ep?: AdminEndpoint;
  enrollUrl?: string;
  logs: string[];
}

function node(id: string, port: number, storeUrl: string): Node {
  const dir = join(tmp.dir, id);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return { id, dir, port, url: `wss://127.0.0.1:${port}/cpns`, storeUrl, logs: [] };
}

/** Starts the node's process and resolves once it logged that it is ready (its admin endpoint is then known). */
async function startNode(n: Node, nats: readonly string[]): Promise<number> {
  const t0 = Date.now();
  const args = [
    ...['server', '--data-dir', n.dir, '--store', n.storeUrl, '--store-schema', schema],
    ...['--nats', nats.join(','), '--node-id', n.id],
    ...['--port', String(n.port), '--enroll-port', '0', '--admin-port', '0'],
  ];
  const proc = spawn(process.execPath, [bin, ...args], {
    // Every node of a deployment holds the same master key.
    env: { ...process.env, CPNS_MASTER_KEY: masterKey.toString('hex'), CPNS_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  n.proc = proc;
  let ready = false;
  let buf = '';
  proc.stderr?.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) {
      n.logs.push(l);
      if (n.logs.length > 400) n.logs.shift();
      if (l.includes('"CPNS Server ready"')) ready = true;
    }
  });
  await until(
    () => {
      if (proc.exitCode !== null) throw new Error(`node ${n.id} exited:\n${n.logs.slice(-20).join('\n')}`);
      return ready;
    },
    60_000,
    `node ${n.id} ready`,
  );
  n.ep = endpointFromDataDir(n.dir);
  n.enrollUrl = (
    JSON.parse(readFileSync(join(n.dir, 'server.json'), 'utf8')) as { enrollUrl: string }
  ).enrollUrl;
  return Date.now() - t0;
}

/** SIGKILL: the process has no chance to close anything. Resolves with the time of the kill. */
async function killNode(n: Node): Promise<number> {
  const p = n.proc;
  if (!p || p.exitCode !== null || p.signalCode !== null) throw new Error(`node ${n.id} is not running`);
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  const t = Date.now();
  await exited;
  return t;
}

function api(n: Node, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown> {
  if (!n.ep) throw new Error(`node ${n.id} has no admin endpoint`);
  return adminRequest(n.ep, method, path, body === undefined ? {} : { body });
}

const rekey = async (n: Node, sgId: string): Promise<number> =>
  ((await api(n, 'POST', `/service-groups/${sgId}/rekey`)) as { epoch: number }).epoch;

/** The node's own view of the SG's current epoch (GET /service-groups: in-memory state of that node). */
const viewOf = async (n: Node, sgId: string): Promise<number> =>
  ((await api(n, 'GET', '/service-groups')) as { sgId: string; currentEpoch: number }[]).find(
    (g) => g.sgId === sgId,
  )?.currentEpoch ?? 0;

/** The node's readiness probe (GET /readyz, no token): its HTTP status. */
const readyz = (n: Node): Promise<number> =>
  new Promise((resolve, reject) => {
    if (!n.ep) throw new Error(`node ${n.id} has no admin endpoint`);
    httpsGet(`${n.ep.url}/readyz`, { ca: n.ep.caPem }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });

/** The typed error of a refused admin call (fails the test if the call succeeds or fails otherwise). */
async function refusal(call: Promise<unknown>): Promise<AdminCallError> {
  const e = await call.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof AdminCallError)) throw new Error(`expected a typed admin API error, got ${String(e)}`);
  return e;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe.skipIf(SKIP !== undefined)(
  `cluster nodes that fail, as real processes${SKIP ? ` (skipped: ${SKIP})` : ''}`,
  () => {
    let nats: PrivateCluster;
    let store: PostgresStore;
    let proxy: CutProxy;
    let A: Node;
    let B: Node;
    let gw1: PnGateway;
    let gw2: PnGateway;
    let gw3: PnGateway;
    let p1: PneClient;
    let p2: PneClient;
    let p3: PneClient;
    let p4: PneClient;
    let p5: PneClient;
    let sgId = '';
    const keysAt = new Map<PneClient, { epoch: number; at: number }[]>();

    /** The store's current epoch of the SG, and its audit: each epoch once, 1..top, in commit order. */
    const checkStore = async (): Promise<number> => {
      const k = await store.getCurrentKey(sgId);
      k?.key.fill(0);
      const top = k?.epoch ?? 0;
      const audit = await store.listAudit({ sgId, limit: 1000 });
      const epochs = audit.entries
        .filter((e) => e.action === 'key.create' || e.action === 'key.update')
        .map((e) => e.epoch);
      expect(epochs).toEqual(range(1, top));
      return top;
    };

    const converged = (members: PneClient[], epoch: number, what: string, ms = 15_000) =>
      until(() => members.every((p) => p.currentEpoch(sgId) === epoch), ms, what).catch((e) => {
        const at = members.map((p) => p.currentEpoch(sgId));
        throw new Error(`${(e as Error).message}: members at ${at.join(',')}, want ${epoch}`);
      });

    it('setup: nodes A and B, GW 1 [A,B] and GW 3 [A] at A, GW 2 [B,A] at B, one SG over all', async () => {
      nats = await startPrivateCluster(20_000, { maxFileStore: '2GB' });
      closers.push(() => nats.stop());
      const cut = CutProxy.forUrl(PG_URL as string);
      proxy = cut;
      await proxy.start();
      closers.push(() => proxy.cut());
      A = node('a', await freePort(), cut.viaProxy()); // A reaches PostgreSQL only through the proxy
      B = node('b', await freePort(), PG_URL as string);
      for (const n of [A, B])
        closers.push(async () => {
          if (n.proc && n.proc.exitCode === null && n.proc.signalCode === null) await killNode(n);
        });
      // A first: it creates the schema, the CA and the stream; then B.
      await startNode(A, nats.urls);
      await startNode(B, nats.urls);
      store = await openPostgresStore({ url: PG_URL as string, masterKey, schema });
      closers.push(() => store.close());
      const caPem = readFileSync(join(A.dir, 'ca.pem'), 'utf8');
      expect(readFileSync(join(B.dir, 'ca.pem'), 'utf8')).toBe(caPem);

      const token = async (role: 'gw' | 'pne') =>
        ((await api(A, 'POST', '/enrollment-tokens', { role })) as { token: string }).token;
      const gateway = async (serverUrls: string[]) => {
        const g = await PnGateway.start({
          serverUrls,
          credentials: await PnGateway.enroll({
            enrollUrl: A.enrollUrl as string,
            caPem,
            token: await token('gw'),
          }),
          heartbeat: false,
          reconnect: { ...BACKOFF, random: () => 0 }, // starts at the first URL of its list
        });
        closers.push(() => g.close());
        return g;
      };
      gw1 = await gateway([A.url, B.url]);
      gw2 = await gateway([B.url, A.url]);
      gw3 = await gateway([A.url]);
      expect([gw1.serverUrl, gw2.serverUrl, gw3.serverUrl]).toEqual([A.url, B.url, A.url]);
      const pne = async (gw: PnGateway) => {
        const p = await PneClient.connect({
          gwUrl: gw.url,
          credentials: await PneClient.enroll({ enrollUrl: gw.enrollUrl, caPem, token: await token('pne') }),
          heartbeat: false,
          reconnect: BACKOFF,
        });
        closers.push(() => p.close());
        const log: { epoch: number; at: number }[] = [];
        keysAt.set(p, log);
        p.on('key', (k: { sgId: string; epoch: number }) => {
          if (k.sgId === sgId) log.push({ epoch: k.epoch, at: Date.now() });
        });
        return p;
      };
      [p1, p2, p3, p4, p5] = [await pne(gw1), await pne(gw1), await pne(gw2), await pne(gw2), await pne(gw3)];
      const all = [p1, p2, p3, p4, p5];
      const g = (await api(A, 'POST', '/service-groups', {
        name: 'failure',
        joinPolicy: 'open',
        members: all.map((p) => p.identity),
      })) as { sgId: string; currentEpoch: number };
      sgId = g.sgId;
      expect(g.currentEpoch).toBe(1);
      // B learns of the SG from its first epoch's event, and delivers epoch 1 to GW 2.
      await until(async () => (await viewOf(B, sgId)) === 1, 15_000, 'B knows the SG');
      await converged(all, 1, 'every member at epoch 1');
    }, 120_000);

    it('(a) A is killed -9 during a burst of key updates: GW 1 fails over to B, members converge, audit complete, messages flow', async () => {
      expect(sgId).not.toBe('');
      let aAlive = true;
      let tKill = 0;
      const byA: number[] = [];
      const byB: { epoch: number; at: number }[] = [];
      const registeredAt: number[] = [];
      gw1.on('registered', () => registeredAt.push(Date.now()));
      // Both nodes rekey back to back; A is killed once it committed 4 of its own.
      const burstA = (async () => {
        while (aAlive) {
          try {
            byA.push(await rekey(A, sgId));
          } catch (e) {
            if (aAlive) throw e; // an error while A is alive is a failure; after the kill, the end of the loop
          }
        }
      })();
      const burstB = (async () => {
        while (byB.filter((r) => tKill > 0 && r.at > tKill).length < 6) {
          byB.push({ epoch: await rekey(B, sgId), at: Date.now() });
        }
      })();
      await until(() => byA.length >= 4, 20_000, 'A committed 4 epochs');
      aAlive = false;
      tKill = await killNode(A);
      await Promise.all([burstA, burstB]);

      // GW 1 registers at B within seconds; GW 3 (knows only A) is left without a server.
      await until(() => gw1.serverUrl === B.url, 10_000, 'GW 1 registered at B');
      const tRegistered = registeredAt.find((t) => t > tKill) ?? Date.now();
      expect(tRegistered - tKill).toBeLessThan(5_000);
      expect(gw3.serverUrl).toBeUndefined();

      // Every epoch once in the store, consecutive; every member behind a live node at the current one.
      const top = await checkStore();
      expect(top).toBeGreaterThanOrEqual(1 + byA.length + byB.length);
      const live = [p1, p2, p3, p4];
      await converged(live, top, 'members behind GW 1 and GW 2 at the current epoch');
      expect(await viewOf(B, sgId)).toBe(top);
      // The first key the members behind GW 1 got after the kill came through B.
      const firstAfter = (p: PneClient) => keysAt.get(p)?.find((k) => k.at > tKill);
      const tKey = Math.max(...[p1, p2].map((p) => firstAfter(p)?.at ?? Number.NaN));
      expect(Number.isFinite(tKey)).toBe(true);

      // Messages flow again, both ways, between the PNEs of the failed-over GW and those of GW 2.
      const got3 = inbox(p3);
      const got1 = inbox(p1);
      p1.send(sgId, 'from GW 1 after the failover');
      p3.send(sgId, 'from GW 2 after the failover');
      await until(
        () =>
          got3.some((m: GroupMessageEvent) => m.plaintext.toString() === 'from GW 1 after the failover') &&
          got1.some((m: GroupMessageEvent) => m.plaintext.toString() === 'from GW 2 after the failover'),
        10_000,
        'messages between GW 1 and GW 2 through B',
      );
      expect(got3.find((m) => m.plaintext.toString() === 'from GW 1 after the failover')?.epoch).toBe(top);
      console.log(
        `cluster failure (a): kill -9 of node A after ${byA.length} of its epochs (${byB.length} by B in the burst, ` +
          `current epoch ${top}): GW 1 registered at B +${tRegistered - tKill} ms, ` +
          `its members held an epoch from B +${tKey - tKill} ms`,
      );
    }, 60_000);

    it('(b) A restarts after B committed more epochs: GW 3 registers again, its member catches up, the bus resumes', async () => {
      expect(A.proc?.signalCode).toBe('SIGKILL');
      // While A is down, B goes on.
      for (let i = 0; i < 3; i++) await rekey(B, sgId);
      const before = await checkStore();
      await converged([p1, p2, p3, p4], before, 'members behind B at the epochs of its downtime');
      expect(p5.currentEpoch(sgId)).toBeLessThan(before); // behind GW 3, which knows only A

      const t0 = Date.now();
      const startMs = await startNode(A, nats.urls); // same data directory (stale lock) and port
      await until(() => gw3.serverUrl === A.url, 15_000, 'GW 3 registered at A again');
      const tRegistered = Date.now();
      // A restarted after a crash: it rotated every SG once (docs/group-messages.md "restart policy"). That epoch
      // must reach the members behind B as well.
      const top = await checkStore();
      expect(top).toBe(before + 1);
      const restart = (await store.listAudit({ sgId, limit: 1000 })).entries.find((e) => e.epoch === top);
      expect(restart?.reason).toBe('restart');
      await converged([p5], top, 'the member behind GW 3 at the current epoch');
      const tCaughtUp = Date.now();
      await converged([p1, p2, p3, p4], top, 'members behind B at the epoch of A’s restart');
      expect(await viewOf(A, sgId)).toBe(top);

      // A's bus consumer resumed: an epoch committed on B reaches GW 3 through A, and one committed on A
      // reaches GW 1 and GW 2 through B.
      const all = [p1, p2, p3, p4, p5];
      const onB = await rekey(B, sgId);
      await converged(all, onB, 'an epoch of B at every member');
      const onA = await rekey(A, sgId);
      expect(onA).toBe(onB + 1);
      await converged(all, onA, 'an epoch of A at every member');
      expect(await checkStore()).toBe(onA);
      console.log(
        `cluster failure (b): node A restarted (spawn to ready ${startMs} ms); after ready: GW 3 registered ` +
          `+${tRegistered - t0 - startMs} ms, its member at the current epoch +${tCaughtUp - t0 - startMs} ms`,
      );
    }, 90_000);

    it('(c) A loses PostgreSQL: writes refused with UNAVAILABLE, nothing half applied; when it is back A catches up and writes again', async () => {
      const all = [p1, p2, p3, p4, p5];
      const before = await checkStore();
      await converged(all, before, 'every member at the current epoch');
      expect(await readyz(A)).toBe(200);

      // A key update in flight when the database goes (its replies held back, then every connection cut):
      // answered with the typed error, and A stays up.
      proxy.stall();
      const inFlight = refusal(rekey(A, sgId));
      await new Promise((r) => setTimeout(r, 300));
      await proxy.cut(); // A's connections to PostgreSQL are gone, new ones are refused
      const cutIn = await inFlight;
      expect([cutIn.code, cutIn.status]).toEqual(['UNAVAILABLE', 503]);
      const t0 = Date.now();
      const refused = await refusal(rekey(A, sgId));
      const refusedMs = Date.now() - t0;
      expect([refused.code, refused.status]).toEqual(['UNAVAILABLE', 503]);
      expect(refused.message).toBe('database is unavailable');
      expect(refusedMs).toBeLessThan(5_000);
      // Other writes too, each with the same typed error; the readiness probe says why.
      for (const call of [
        () => api(A, 'POST', '/enrollment-tokens', { role: 'pne' }),
        () => api(A, 'POST', '/service-groups', { name: 'while the database is away' }),
        () => api(A, 'DELETE', `/service-groups/${sgId}/members/${encodeURIComponent(p5.identity)}`),
      ]) {
        const e = await refusal(call());
        expect([e.code, e.status]).toEqual(['UNAVAILABLE', 503]);
      }
      expect(await readyz(A)).toBe(503);
      // B, which reaches PostgreSQL, goes on; A cannot read that epoch's key, so GW 3's member waits.
      const onB = await rekey(B, sgId);
      expect(onB).toBe(before + 1);
      await converged([p1, p2, p3, p4], onB, 'members behind B at the epoch of B');
      await new Promise((r) => setTimeout(r, 1_000));
      expect(p5.currentEpoch(sgId)).toBe(before);
      expect(A.proc?.exitCode).toBe(null); // A stays up

      await proxy.restore();
      const tBack = Date.now();
      // A applies the event it could not (the bus redelivers it) and delivers the epoch to GW 3.
      await converged([p5], onB, 'the member behind GW 3 at the epoch A missed');
      const tCaughtUp = Date.now();
      expect(await readyz(A)).toBe(200);
      // Nothing of the refused writes was applied: the next epoch of A follows B's, the member, the SG and the
      // tokens are as they were, and the audit is complete and consecutive.
      const onA = await rekey(A, sgId);
      expect(onA).toBe(onB + 1);
      await converged(all, onA, 'every member at the epoch A committed after PostgreSQL came back');
      expect(await checkStore()).toBe(onA);
      expect(await viewOf(A, sgId)).toBe(onA);
      expect((await store.listMembers(sgId)).map((m) => m.pneId).sort()).toEqual(
        all.map((p) => p.identity).sort(),
      );
      expect((await store.listGroups()).map((g) => g.name)).toEqual(['failure']);
      for (const p of all) for (const k of keysAt.get(p) ?? []) expect(k.epoch).toBeLessThanOrEqual(onA); // no phantom epoch
      console.log(
        `cluster failure (c): A without PostgreSQL: rekey refused (UNAVAILABLE) in ${refusedMs} ms; ` +
          `PostgreSQL back: GW 3's member at the missed epoch +${tCaughtUp - tBack} ms`,
      );
    }, 60_000);
  },
);
