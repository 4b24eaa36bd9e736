/**
 * A private 3-node NATS JetStream cluster (nats-server 2.9.10) started by a test, so the test may kill nodes
 * without disturbing the shared one (the same layout as scripts/dev/nats-cluster.sh): n1..n3 on 127.0.0.1,
 * free client/cluster/monitoring ports, a temporary store directory each, routes among them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { freePort } from '../free-port.js';

export interface ClusterNode {
  readonly name: string;
  readonly url: string;
  readonly monitor: number;
  readonly proc: ChildProcess;
}

export interface PrivateCluster {
  readonly nodes: readonly ClusterNode[];
  readonly urls: readonly string[];
  /** SIGKILL the node with this server name; returns its PID. */
  kill(name: string): number;
  stop(): Promise<void>;
}

async function ok(url: string, check: (body: unknown) => boolean = () => true): Promise<boolean> {
  try {
    const r = await fetch(url);
    return r.ok && check(await r.json());
  } catch {
    return false;
  }
}

/**
 * Whether a JetStream API request ($JS.API.INFO) is answered within 2 s. A meta leader in /jsz is not enough:
 * under load (two test files at a time on 2 cores) the first request right after the election went unanswered
 * for the bus's whole 10 s management timeout (test/admin/readiness.test.ts in CI).
 */
async function answersJetStream(urls: readonly string[]): Promise<boolean> {
  let nc: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    nc = await connect({ servers: [...urls], timeout: 2000, reconnect: false });
    await jetstreamManager(nc, { timeout: 2000 });
    return true;
  } catch {
    return false;
  } finally {
    await nc?.close().catch(() => {});
  }
}

export interface PrivateClusterOptions {
  /**
   * JetStream file store of each server (default '256MB'). A `cpns server` node creates the stream with the
   * default `maxStreamBytes` (1 GiB, 3 replicas), so a cluster for real node processes needs more.
   */
  readonly maxFileStore?: string;
}

export async function startPrivateCluster(
  timeoutMs = 20_000,
  opts: PrivateClusterOptions = {},
): Promise<PrivateCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'cpns-nats-test-'));
  const ports: { client: number; cluster: number; monitor: number }[] = [];
  const used = new Set<number>();
  while (ports.length < 3) {
    const [client, cluster, monitor] = [await freePort(), await freePort(), await freePort()];
    if (new Set([client, cluster, monitor, ...used]).size !== used.size + 3) continue;
    for (const p of [client, cluster, monitor]) used.add(p);
    ports.push({ client, cluster, monitor });
  }
  const nodes: ClusterNode[] = ports.map((p, i) => {
    const name = `n${i + 1}`;
    const routes = ports.filter((_, j) => j !== i).map((q) => `nats-route://127.0.0.1:${q.cluster}`);
    const conf = join(dir, `${name}.conf`);
    writeFileSync(
      conf,
      [
        `server_name: ${name}`,
        `listen: 127.0.0.1:${p.client}`,
        `http: 127.0.0.1:${p.monitor}`,
        `jetstream { store_dir: "${join(dir, name)}", max_memory_store: 64MB, max_file_store: ${opts.maxFileStore ?? '256MB'} }`,
        `cluster { name: cpns-test, listen: 127.0.0.1:${p.cluster}, routes: [${routes.join(', ')}] }`,
      ].join('\n'),
    );
    const proc = spawn('nats-server', ['-c', conf], { stdio: 'ignore' });
    return { name, url: `nats://127.0.0.1:${p.client}`, monitor: p.monitor, proc };
  });
  const cluster: PrivateCluster = {
    nodes,
    urls: nodes.map((n) => n.url),
    kill(name) {
      const n = nodes.find((x) => x.name === name);
      if (!n?.proc.pid) throw new Error(`no node ${name}`);
      n.proc.kill('SIGKILL');
      return n.proc.pid;
    },
    async stop() {
      await Promise.all(
        nodes.map(
          (n) =>
            new Promise<void>((resolve) => {
              if (n.proc.exitCode !== null || n.proc.signalCode !== null) return resolve();
              n.proc.once('exit', () => resolve());
              n.proc.kill('SIGKILL');
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const end = Date.now() + timeoutMs;
  for (;;) {
    const up = await Promise.all(
      nodes.map((n) => ok(`http://127.0.0.1:${n.monitor}/healthz?js-enabled-only=true`)),
    );
    const leader =
      up.every(Boolean) &&
      (await ok(`http://127.0.0.1:${nodes[0]!.monitor}/jsz`, (j) =>
        Boolean((j as { meta_cluster?: { leader?: string } }).meta_cluster?.leader),
      ));
    if (leader && (await answersJetStream(cluster.urls))) return cluster;
    if (Date.now() > end || nodes.some((n) => n.proc.exitCode !== null)) {
      await cluster.stop();
      throw new Error('private NATS cluster did not come up');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
