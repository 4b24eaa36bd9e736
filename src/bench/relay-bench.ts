/**
 * `cpns bench relay` (docs/benchmarks.md "Relay fan-out", issue #11 §3): end-to-end fan-out of group messages,
 * 1 sender -> `members` members spread over `gateways` PN GWs, `bytes` of payload, against plain WebSocket-over-TLS
 * fan-out of the same number of bytes over the same topology (sender -> its relay -> hub -> every relay -> every
 * receiver), in the same process, rounds interleaved. CPNS side: real server, GWs and PNE SDKs; every receiver
 * opens (decrypts and checks) every message. Prints deliveries per second for both and their ratio.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { startServer } from '../embed/index.js';
import { PnGateway } from '../gateway/index.js';
import { PneClient } from '../pne/index.js';
import { createCa, formatIdentity, issueServerCert, loadCa } from '../transport/ca.js';
import { median, pool } from './measure.js';

interface Topology {
  /** Sends `n` messages from the sender; resolves when every receiver got all of them. */
  round(n: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Counts the receivers' deliveries; `round(n)` sends `n` messages and resolves, with deliveries per second, once
 * every receiver got all of them. The same measure for both topologies.
 */
function fanOut(
  receivers: readonly { on(event: 'message', f: () => void): unknown }[],
  sendOne: () => void,
): (n: number) => Promise<number> {
  let got = 0;
  let want = 0;
  let done: (() => void) | undefined;
  for (const r of receivers)
    r.on('message', () => {
      got++;
      if (done && got >= want) {
        const d = done;
        done = undefined;
        d();
      }
    });
  return async (n) => {
    const start = performance.now();
    want = got + n * receivers.length;
    const all = new Promise<void>((r) => {
      done = r;
    });
    for (let i = 0; i < n; i++) sendOne();
    await all;
    return (n * receivers.length * 1000) / (performance.now() - start);
  };
}

async function cpnsTopology(o: { members: number; gateways: number; bytes: number }): Promise<Topology> {
  const dir = mkdtempSync(join(tmpdir(), 'cpns-bench-relay-'));
  const logger = pino({ level: 'silent' });
  const server = await startServer({ dataDir: join(dir, 'server'), heartbeat: false, logger });
  const gws: PnGateway[] = [];
  const pnes: PneClient[] = [];
  await pool(
    Array.from({ length: o.gateways }, (_, i) => i),
    4,
    async (i) => {
      const credentials = await PnGateway.enroll({
        enrollUrl: server.enrollUrl,
        caPem: server.caPem,
        token: await server.admin.createToken('gw'),
      });
      gws[i] = await PnGateway.start({ serverUrl: server.url, credentials, heartbeat: false, logger });
    },
  );
  await pool(
    Array.from({ length: o.members + 1 }, (_, i) => i),
    8,
    async (i) => {
      const gw = gws[i % o.gateways]!;
      const credentials = await PneClient.enroll({
        enrollUrl: gw.enrollUrl,
        caPem: server.caPem,
        token: await server.admin.createToken('pne'),
      });
      pnes[i] = await PneClient.connect({ gwUrl: gw.url, credentials, heartbeat: false, logger });
    },
  );
  const { sgId } = await server.admin.createGroup({
    name: 'relay-bench',
    joinPolicy: 'invite',
    members: pnes.map((p) => p.identity),
  });
  await Promise.all(pnes.map((p) => p.waitForKey(sgId, 1)));
  const [sender, ...receivers] = pnes as [PneClient, ...PneClient[]];
  const payload = randomBytes(o.bytes);
  return {
    round: fanOut(receivers, () => sender.send(sgId, payload)),
    async close() {
      await Promise.all(pnes.map((p) => p.close()));
      await pool(gws, 8, (g) => g.close());
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The anchor: the same hops as plain WebSocket over TLS, forwarding bytes (no authentication, no crypto). */
async function wsTopology(o: { members: number; gateways: number; bytes: number }): Promise<Topology> {
  const ca = await loadCa(await createCa('relay bench CA'));
  const tls = await issueServerCert(ca, formatIdentity('server', 'relay-bench'), { ips: ['127.0.0.1'] });
  const servers: Server[] = [];
  const listen = async (onConn: (ws: WebSocket) => void): Promise<string> => {
    const https = createServer({ cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.3' });
    servers.push(https);
    const wss = new WebSocketServer({ server: https, perMessageDeflate: false });
    wss.on('connection', onConn);
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    const a = https.address();
    return `wss://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  };
  const dial = (url: string) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url, { ca: ca.certPem, perMessageDeflate: false });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  const sockets: WebSocket[] = [];
  const relaysAtHub: WebSocket[] = [];
  const hubUrl = await listen((ws) => {
    relaysAtHub.push(ws);
    ws.on('message', (data: Buffer) => {
      for (const r of relaysAtHub) r.send(data);
    });
  });
  const relayUrls: string[] = [];
  const clientsOf: WebSocket[][] = [];
  for (let g = 0; g < o.gateways; g++) {
    const clients: WebSocket[] = [];
    clientsOf.push(clients);
    const up = await dial(hubUrl);
    sockets.push(up);
    relayUrls.push(
      await listen((ws) => {
        clients.push(ws);
        // from a client: up to the hub; from the hub: to every client but the sender (index 0 of relay 0)
        ws.on('message', (data: Buffer) => up.send(data));
      }),
    );
    up.on('message', (data: Buffer) => {
      for (const c of clients) if (c !== senderAtRelay) c.send(data);
    });
  }
  let senderAtRelay: WebSocket | undefined;
  const peers: WebSocket[] = [];
  for (let i = 0; i < o.members + 1; i++) {
    const before = clientsOf[i % o.gateways]!.length;
    peers.push(await dial(relayUrls[i % o.gateways]!));
    while (clientsOf[i % o.gateways]!.length === before) await new Promise((r) => setImmediate(r));
    if (i === 0) senderAtRelay = clientsOf[0]![0];
  }
  while (relaysAtHub.length < o.gateways) await new Promise((r) => setImmediate(r));
  const [sender, ...receivers] = peers as [WebSocket, ...WebSocket[]];
  const payload = randomBytes(o.bytes);
  return {
    round: fanOut(receivers, () => sender.send(payload)),
    async close() {
      for (const s of [...peers, ...sockets]) s.terminate();
      for (const s of servers) s.close();
    },
  };
}

export interface RelayResult {
  readonly members: number;
  readonly gateways: number;
  readonly bytes: number;
  readonly cpnsPerSec: number[];
  readonly wsPerSec: number[];
  readonly ratios: number[];
}

export async function benchRelay(o: {
  members: number;
  gateways: number;
  bytes: number;
  messages: number;
  rounds: number;
  log: (l: string) => void;
}): Promise<RelayResult> {
  const cpns = await cpnsTopology(o);
  const ws = await wsTopology(o);
  try {
    // warm-up of both paths (JIT, TLS buffers)
    await cpns.round(Math.ceil(o.messages / 4));
    await ws.round(Math.ceil(o.messages / 4));
    const cpnsPerSec: number[] = [];
    const wsPerSec: number[] = [];
    const ratios: number[] = [];
    for (let r = 0; r < o.rounds; r++) {
      const a = await cpns.round(o.messages);
      const b = await ws.round(o.messages);
      cpnsPerSec.push(a);
      wsPerSec.push(b);
      ratios.push(a / b);
      o.log(
        `  round ${r + 1}: CPNS ${a.toFixed(0)}/s, ws-over-TLS ${b.toFixed(0)}/s, ratio ${(a / b).toFixed(2)}`,
      );
    }
    return { members: o.members, gateways: o.gateways, bytes: o.bytes, cpnsPerSec, wsPerSec, ratios };
  } finally {
    await cpns.close();
    await ws.close();
  }
}

export async function runRelayBench(o: {
  members: number;
  gateways: number;
  bytes: number;
  messages: number;
  rounds: number;
  outDir?: string;
}): Promise<void> {
  const log = (l: string) => process.stdout.write(`${l}\n`);
  log(
    `Group-message fan-out: 1 sender -> ${o.members} members on ${o.gateways} PN GWs, ${o.bytes} B, ${o.messages} messages per round`,
  );
  const r = await benchRelay({ ...o, log });
  log(
    `median deliveries/s: CPNS ${median(r.cpnsPerSec).toFixed(0)}, plain ws-over-TLS ${median(r.wsPerSec).toFixed(0)}; ` +
      `ratio (per round) median ${median(r.ratios).toFixed(2)} (target >= 0.4)`,
  );
  const outDir = o.outDir ?? join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const date = new Date().toISOString();
  const file = join(outDir, `relay-${o.members}x${o.gateways}-${o.bytes}B-${date.slice(0, 10)}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ date, node: process.version, cpu: cpus()[0]?.model, ...r }, null, 2)}\n`,
  );
  log(`written ${file}`);
}
