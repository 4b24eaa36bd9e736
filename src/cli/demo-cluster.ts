/**
 * `cpns demo cluster` (docs/cluster.md): CPNS Server nodes as real processes on one PostgreSQL and a 3-node NATS
 * JetStream cluster (both started for the demo on loopback unless --store and --nats are given), a PN GW on each
 * of two nodes, a Service Group spanning both PNs, a message across nodes, a node killed with SIGKILL and its GW
 * failing over to another node, and a key update after the failover that the removed member cannot read.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CpnsError } from '../core/errors.js';
import { PnGateway } from '../gateway/index.js';
import { type GroupMessageEvent, PneClient } from '../pne/index.js';
import { type AdminEndpoint, adminRequest, endpointFromDataDir } from './admin-client.js';
import { type Services, startServices } from './dev-services.js';
import { DaemonError } from './usage.js';

export interface ClusterDemoOptions {
  readonly log: (line: string) => void;
  /** PostgreSQL URL to use (a dedicated database: the demo writes its state there). Default: one started here. */
  readonly store?: string;
  /** NATS URLs of a JetStream cluster. Default: a 3-node cluster started here. */
  readonly nats?: readonly string[];
  /** Server nodes, 2 or 3 (default 3). */
  readonly nodes?: number;
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'cpns.mjs');
const BACKOFF = { initialMs: 50, maxMs: 500 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new DaemonError('TIMEOUT', `timed out waiting for ${what}`);
    await sleep(25);
  }
}

interface Node {
  readonly name: string;
  readonly dir: string;
  readonly proc: ChildProcess;
  url: string;
  enrollUrl: string;
  admin: AdminEndpoint;
  /** The last lines the node logged (warnings and errors: its log level is warn), for a failure message. */
  stderrTail(): string;
}

/** A `cpns server` process; resolves when its server.json is written (it is up). */
async function startNode(name: string, dir: string, store: string, nats: readonly string[]): Promise<Node> {
  const proc = spawn(
    process.execPath,
    [
      BIN,
      'server',
      '--data-dir',
      dir,
      '--store',
      store,
      '--nats',
      nats.join(','),
      '--node-id',
      name,
      '--port',
      '0',
      '--enroll-port',
      '0',
      '--admin-port',
      '0',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, CPNS_LOG_LEVEL: 'warn' } },
  );
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-2000);
  });
  const info = join(dir, 'server.json');
  await until(() => existsSync(info) || proc.exitCode !== null, 60_000, `server node ${name}`);
  if (proc.exitCode !== null)
    throw new DaemonError('UNAVAILABLE', `server node ${name} exited (${proc.exitCode})`);
  const j = JSON.parse(readFileSync(info, 'utf8')) as { url: string; enrollUrl: string };
  return {
    name,
    dir,
    proc,
    url: j.url,
    enrollUrl: j.enrollUrl,
    admin: endpointFromDataDir(dir),
    stderrTail: () => err.trim().split('\n').slice(-5).join(' | ') || '(nothing)',
  };
}

/** SIGTERM (a clean stop), SIGKILL after 10 s; resolves when the process is gone. */
async function stopNode(n: Node): Promise<void> {
  if (n.proc.exitCode !== null || n.proc.signalCode !== null) return;
  const gone = new Promise<void>((r) => n.proc.once('exit', () => r()));
  n.proc.kill('SIGTERM');
  const t = setTimeout(() => n.proc.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}

function tryOpen(p: PneClient, raw: Buffer): string {
  try {
    return `reads "${p.open(raw).plaintext.toString()}"  <-- WRONG`;
  } catch (e) {
    if (e instanceof CpnsError) return `cannot read it (${e.code})`;
    throw e;
  }
}

export async function runClusterDemo(o: ClusterDemoOptions): Promise<void> {
  const { log } = o;
  const count = o.nodes ?? 3;
  if (count !== 2 && count !== 3) throw new DaemonError('USAGE', '--nodes must be 2 or 3');
  const dir = mkdtempSync(join(tmpdir(), 'cpns-demo-cluster-'));
  const closers: (() => Promise<unknown> | unknown)[] = [];
  let services: Services | undefined;
  try {
    if (o.store && o.nats) services = { store: o.store, nats: [...o.nats], stop: () => {} };
    else if (o.store || o.nats) throw new DaemonError('USAGE', 'give both --store and --nats, or neither');
    else services = startServices(dir, log);
    const svc = services;
    // Every node holds the same master key: the first node creates it, the others get a copy (never argv).
    const names = ['a', 'b', 'c'].slice(0, count);
    const nodes: Node[] = [];
    for (const name of names) {
      const nd = join(dir, `node-${name}`);
      mkdirSync(nd, { recursive: true, mode: 0o700 });
      if (nodes[0]) copyFileSync(join(nodes[0].dir, 'master.key'), join(nd, 'master.key'));
      const n = await startNode(name, nd, svc.store, svc.nats);
      closers.push(() => stopNode(n));
      nodes.push(n);
      log(
        `[node ${name}]   cpns server process (pid ${n.proc.pid}) at ${n.url}; store: PostgreSQL; events: NATS`,
      );
    }
    const [a, b] = nodes as [Node, Node];
    const caPem = a.admin.caPem;
    const token = async (n: Node, role: 'gw' | 'pne') =>
      ((await adminRequest(n.admin, 'POST', '/enrollment-tokens', { body: { role } })) as { token: string })
        .token;

    // PN 1's GW is served by node a, PN 2's by node b; each lists the other nodes to fail over to.
    const others = (n: Node) => [n.url, ...nodes.filter((x) => x !== n).map((x) => x.url)];
    const gw = async (home: Node) => {
      const g = await PnGateway.start({
        serverUrls: others(home),
        credentials: await PnGateway.enroll({
          enrollUrl: home.enrollUrl,
          caPem,
          token: await token(home, 'gw'),
        }),
        heartbeat: false,
        // The list's first URL first (its home node), not a random one as by default: the demo names the node.
        reconnect: { ...BACKOFF, random: () => 0 },
      });
      closers.push(() => g.close());
      return g;
    };
    const gw1 = await gw(a);
    const gw2 = await gw(b);
    if (gw1.serverUrl !== a.url || gw2.serverUrl !== b.url)
      throw new DaemonError('UNAVAILABLE', 'a PN GW did not reach its home node');
    log(`[PN 1]     PN GW at ${gw1.url}, served by node a`);
    log(`[PN 2]     PN GW at ${gw2.url}, served by node b`);
    const inboxes = new Map<PneClient, GroupMessageEvent[]>();
    const pne = async (g: PnGateway, home: Node, name: string, pn: string) => {
      const c = await PneClient.connect({
        gwUrl: g.url,
        credentials: await PneClient.enroll({
          enrollUrl: g.enrollUrl,
          caPem,
          token: await token(home, 'pne'),
        }),
        heartbeat: false,
        reconnect: BACKOFF,
      });
      closers.push(() => c.close());
      const box: GroupMessageEvent[] = [];
      c.on('message', (m: GroupMessageEvent) => box.push(m));
      inboxes.set(c, box);
      log(`[${pn}]     PNE ${name} enrolled and attached`);
      return c;
    };
    const alice = await pne(gw1, a, 'alice', 'PN 1');
    const bob = await pne(gw1, a, 'bob  ', 'PN 1');
    const carol = await pne(gw2, b, 'carol', 'PN 2');
    const dave = await pne(gw2, b, 'dave ', 'PN 2');

    const sg = (await adminRequest(a.admin, 'POST', '/service-groups', {
      body: { name: 'cluster demo', members: [alice.identity, bob.identity, carol.identity] },
    })) as { sgId: string; currentEpoch: number };
    log(
      `[node a]   Service Group ${sg.sgId} created: alice, bob (PN 1) and carol (PN 2); dave is not a member`,
    );
    await until(
      () => [alice, bob, carol].every((p) => p.currentEpoch(sg.sgId) === 1),
      20_000,
      'epoch 1 at every member',
    );
    log(
      '[cluster]  Group Key epoch 1 at every member: PN 1 through node a, PN 2 through node b (event over NATS)',
    );
    const said = (p: PneClient, text: string) => inboxes.get(p)!.some((m) => m.plaintext.toString() === text);
    const hello = 'hello from PN 1 (node a) to PN 2 (node b)';
    let raw = alice.send(sg.sgId, hello);
    await until(() => said(carol, hello), 10_000, 'the message across nodes');
    log(`[alice]    sends "${hello}"`);
    log('[carol]    reads it: relayed node a -> NATS -> node b -> PN GW 2');
    log(`[dave]     same PN as carol, not a member: ${tryOpen(dave, raw)}`);

    // Kill node a: PN 1's GW fails over to the next node in its list.
    let back: number | undefined;
    gw1.once('registered', () => {
      back = Date.now();
    });
    const killedAt = Date.now();
    a.proc.kill('SIGKILL');
    log(`[node a]   killed (SIGKILL, pid ${a.proc.pid})`);
    // The demo's own deadline wait (no timer of its own left behind: one kept the process alive 90 s after "done").
    await until(() => back !== undefined, 90_000, 'the GW failover').catch(() => {
      throw new DaemonError(
        'TIMEOUT',
        `timed out waiting for the GW failover; node b said: ${b.stderrTail()}`,
      );
    });
    const now = nodes.find((n) => n.url === gw1.serverUrl)?.name ?? '?';
    log(`[PN 1]     PN GW failed over to node ${now} in ${back! - killedAt} ms`);

    // After the failover: bob is removed on node b; the new epoch reaches alice (PN 1) and carol, not bob.
    await adminRequest(
      b.admin,
      'DELETE',
      `/service-groups/${encodeURIComponent(sg.sgId)}/members/${encodeURIComponent(bob.identity)}`,
    );
    log('[node b]   bob removed from the Service Group: Group Key epoch 2');
    await until(
      () => alice.currentEpoch(sg.sgId) === 2 && carol.currentEpoch(sg.sgId) === 2,
      20_000,
      'epoch 2 at alice and carol',
    );
    const after = 'after the failover, with epoch 2';
    await until(
      () => {
        raw = alice.send(sg.sgId, after);
        return said(carol, after);
      },
      10_000,
      'a message after the failover',
    );
    log(`[alice]    sends "${after}"; carol reads it`);
    log(`[bob]      removed: ${tryOpen(bob, raw)}`);
    log(`[dave]     non-member: ${tryOpen(dave, raw)}`);
    log('[cluster]  done: 1 node lost, no epoch lost, the removed member and the non-member read nothing');
  } finally {
    for (const c of closers.reverse()) {
      try {
        await c();
      } catch {}
    }
    services?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
