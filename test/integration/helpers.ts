import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SqliteServerOptions, startServer as startSqliteServer } from '../../src/embed/index.js';
import { type GatewayOptions, PnGateway } from '../../src/gateway/index.js';
import { type Credentials, type GroupMessageEvent, PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';

export const BACKOFF = { initialMs: 30, maxMs: 300 };

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'cpns-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function startServer(
  dataDir: string,
  extra: Partial<SqliteServerOptions> = {},
): Promise<CpnsServer> {
  return startSqliteServer({ dataDir, heartbeat: false, ...extra });
}

/** Enrolls (unless credentials are given) and starts a PN GW; `extra` adds options such as broadcast media. */
export async function startGateway(
  server: CpnsServer,
  credentials?: Credentials,
  extra: Partial<GatewayOptions> = {},
): Promise<PnGateway> {
  const creds =
    credentials ??
    (await PnGateway.enroll({
      enrollUrl: server.enrollUrl,
      caPem: server.caPem,
      token: await server.admin.createToken('gw'),
    }));
  return PnGateway.start({
    serverUrl: server.url,
    credentials: creds,
    heartbeat: false,
    reconnect: BACKOFF,
    ...extra,
  });
}

/** A PN GW with one broadcast medium ('wifi', UDP multicast on loopback) and its state in `dataDir`. */
export function startBroadcastGateway(
  server: CpnsServer,
  dataDir: string,
  medium: { group: string; port: number },
): Promise<PnGateway> {
  return startGateway(server, undefined, {
    dataDir,
    broadcastMedia: [{ name: 'wifi', group: medium.group, port: medium.port }],
  });
}

/** `n` PNEs enrolled through `gw`, listening on 'wifi'. */
export async function startWifiPnes(server: CpnsServer, gw: PnGateway, n: number): Promise<PneClient[]> {
  const out: PneClient[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      await PneClient.connect({
        gwUrl: gw.url,
        credentials: await enrollPne(server, gw),
        heartbeat: false,
        reconnect: BACKOFF,
        media: ['wifi'],
      }),
    );
  }
  return out;
}

export async function enrollPne(server: CpnsServer, gw: PnGateway): Promise<Credentials> {
  return PneClient.enroll({
    enrollUrl: gw.enrollUrl,
    caPem: server.caPem,
    token: await server.admin.createToken('pne'),
  });
}

export async function startPne(
  server: CpnsServer,
  gw: PnGateway,
  credentials?: Credentials,
): Promise<PneClient> {
  const creds = credentials ?? (await enrollPne(server, gw));
  return PneClient.connect({ gwUrl: gw.url, credentials: creds, heartbeat: false, reconnect: BACKOFF });
}

/** Collects 'message' events of a PNE. */
export function inbox(p: PneClient): GroupMessageEvent[] {
  const got: GroupMessageEvent[] = [];
  p.on('message', (m: GroupMessageEvent) => got.push(m));
  return got;
}

export async function until(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 15));
  }
  throw new Error(`timeout waiting for ${what}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the server has every member's ack of `epoch` of `sgId`. A PNE installs a key before its ack is
 * through the GW; the GW sends a PNE's first key of an SG by unicast and counts it delivered only on the ack
 * (gateway/decisions.ts planDistribution), so a test that wants the next update chosen by policy waits for this.
 */
export async function untilAcked(server: CpnsServer, sgId: string, epoch: number, timeoutMs = 10_000) {
  await until(
    async () => (await server.admin.groupStatus(sgId)).members.every((m) => m.ackedEpoch === epoch),
    timeoutMs,
    `acks of epoch ${epoch}`,
  );
}
