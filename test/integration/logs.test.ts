/**
 * Observability of a full run (docs/operator.md "Logs"): a CPNS Server, two PN GWs and four PNEs, every component logging at
 * level 'trace' into one buffer, the admin app on top. The run goes through every Group Key reason (create,
 * leave, remove, operator, detach, revoke, periodic) and exchanges protected messages. Then:
 * - no Group Key of any epoch (fetched from the store as soon as it exists, before pruning or deletion) appears
 *   in any log line, as hex, base64, base64url or a serialized Buffer;
 * - the server's 'change' events and Prometheus metrics describe what happened.
 */
import { Writable } from 'node:stream';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAdminApp } from '../../src/admin/app.js';
import type { ChangeEvent } from '../../src/admin/types.js';
import { startServer } from '../../src/embed/index.js';
import { PnGateway } from '../../src/gateway/index.js';
import { CpnsMetrics } from '../../src/metrics/index.js';
import { type GroupMessageEvent, PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { BACKOFF, inbox, tempDir, until } from './helpers.js';

const lines: string[] = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    cb();
  },
});
const log = (name: string): Logger => pino({ name, level: 'trace' }, sink);

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let app: FastifyInstance;
let gw1: PnGateway;
let gw2: PnGateway;
let a: PneClient, b: PneClient, c: PneClient, d: PneClient;
const events: ChangeEvent[] = [];
/** Every Group Key the store ever held in this run: `${sgId}|${epoch}` -> key bytes. */
const keys = new Map<string, Buffer>();
const pending: Promise<void>[] = [];
let sgId: string;
let periodicSg: string;

const TOKEN = 'observability-test-admin-token';
async function api(method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) {
  const r = await app.inject({
    method,
    url: `/api/v1${url}`,
    headers: { authorization: `Bearer ${TOKEN}` },
    ...(payload ? { payload } : {}),
  });
  if (r.statusCode >= 400) throw new Error(`${method} ${url}: ${r.statusCode} ${r.body}`);
  return r.body ? r.json() : undefined;
}

async function grab(sg: string, epoch: number): Promise<void> {
  const k = await server.store.getKey(sg, epoch);
  if (k) keys.set(`${sg}|${epoch}`, Buffer.from(k.key));
}

async function pne(gw: PnGateway, name: string): Promise<PneClient> {
  const credentials = await PneClient.enroll({
    enrollUrl: gw.enrollUrl,
    caPem: server.caPem,
    token: await server.admin.createToken('pne'),
  });
  return PneClient.connect({
    gwUrl: gw.url,
    credentials,
    heartbeat: false,
    reconnect: BACKOFF,
    logger: log(name),
  });
}

async function gateway(name: string): Promise<PnGateway> {
  const credentials = await PnGateway.enroll({
    enrollUrl: server.enrollUrl,
    caPem: server.caPem,
    token: await server.admin.createToken('gw'),
  });
  return PnGateway.start({
    serverUrl: server.url,
    credentials,
    heartbeat: false,
    reconnect: BACKOFF,
    logger: log(name),
  });
}

const texts = (box: GroupMessageEvent[]) => box.map((m) => m.plaintext.toString());

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer({
    dataDir: tmp.dir,
    heartbeat: false,
    logger: log('server'),
    metrics: new CpnsMetrics({ defaultMetrics: false }),
    periodicGraceSec: 0,
  });
  server.events.on('change', (ev: ChangeEvent) => {
    events.push(ev);
    // Fetch each new key right away: later updates prune old epochs, deletion erases all.
    if (ev.kind === 'key.update' && ev.sgId && ev.epoch) pending.push(grab(ev.sgId, ev.epoch));
  });
  app = await buildAdminApp({
    admin: server.admin,
    store: server.store,
    events: server.events,
    metrics: server.metrics,
    auth: { token: TOKEN },
    logger: log('admin') as unknown as FastifyBaseLogger,
  });
  [gw1, gw2] = await Promise.all([gateway('gw1'), gateway('gw2')]);
  [a, b] = await Promise.all([pne(gw1, 'pne-a'), pne(gw1, 'pne-b')]);
  [c, d] = await Promise.all([pne(gw2, 'pne-c'), pne(gw2, 'pne-d')]);
  const boxes = new Map([a, b, c, d].map((p) => [p, inbox(p)]));

  // create (operator, over the API) -> messages across both PNs
  const g = await api('POST', '/service-groups', {
    name: 'observed',
    members: [a, b, c, d].map((p) => p.identity),
  });
  sgId = g.sgId;
  await Promise.all([a, b, c, d].map((p) => p.waitForKey(sgId, 1)));
  a.send(sgId, 'one');
  await until(() => [b, c, d].every((p) => texts(boxes.get(p)!).includes('one')), 5000, 'one');
  // leave (PNE) -> remove (operator) -> operator rekey
  await b.leaveGroup(sgId);
  await api('DELETE', `/service-groups/${sgId}/members/${encodeURIComponent(c.identity)}`);
  await api('POST', `/service-groups/${sgId}/rekey`);
  await Promise.all([a, d].map((p) => p.waitForKey(sgId, 4)));
  d.send(sgId, 'two');
  await until(() => texts(boxes.get(a)!).includes('two'), 5000, 'two');
  // detach (PNE leaves its PN) -> revoke (operator)
  // (re-adding c updates the key: update on join)
  await api('POST', `/service-groups/${sgId}/members`, { pneId: c.identity });
  await c.waitForKey(sgId, 5);
  await c.detach();
  await until(() => server.currentEpoch(sgId) === 6, 5000, 'detach update');
  await api('POST', `/identities/${encodeURIComponent(d.identity)}/revoke`);
  await until(() => server.currentEpoch(sgId) === 7, 5000, 'revoke update');
  await a.waitForKey(sgId, 7);
  // periodic updates (scheduler), on a second SG with a 1 s interval
  periodicSg = (
    await server.admin.createGroup({ name: 'periodic', members: [a.identity], rekeyIntervalSec: 1 })
  ).sgId;
  await a.waitForKey(periodicSg, 2, 5000);
  a.send(periodicSg, 'three');
  // Let acks, reports and log lines settle, then delete an SG (its keys are erased: we fetched them first).
  await until(
    async () => (await server.store.deliveryStatus(sgId)).members.every((m) => !m.online || m.lag === 0),
    5000,
  );
  await Promise.all(pending);
  await api('DELETE', `/service-groups/${periodicSg}`);
}, 60_000);

afterAll(async () => {
  await Promise.all([a, b, c, d].map((p) => p?.close()));
  await Promise.all([gw1?.close(), gw2?.close()]);
  await app?.close();
  await server?.close();
  tmp?.cleanup();
});

/** Every textual form a 32-byte key could take in a JSON log line. */
function forms(key: Buffer): string[] {
  const hex = key.toString('hex');
  return [
    hex,
    hex.toUpperCase(),
    key.toString('base64'),
    key.toString('base64').replace(/=+$/, ''),
    key.toString('base64url'),
    // half a key is a leak too
    key.subarray(0, 16).toString('hex'),
    key.subarray(16).toString('hex'),
    // pino/JSON.stringify of a Buffer or Uint8Array
    JSON.stringify(key.toJSON().data),
    JSON.stringify(Object.fromEntries([...key.subarray(0, 8)].map((v, i) => [String(i), v]))).slice(1, -1),
  ];
}

describe('logs of a full run never contain Group Key bytes', () => {
  it('collected every Group Key epoch of the run', () => {
    const epochs = (sg: string) =>
      [...keys.keys()]
        .filter((k) => k.startsWith(`${sg}|`))
        .map((k) => Number(k.split('|')[1]))
        .sort((x, y) => x - y);
    expect(epochs(sgId)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(epochs(periodicSg).slice(0, 2)).toEqual([1, 2]);
    for (const k of keys.values()) expect(k.length).toBe(32);
  });

  it('logged at trace level from every component', () => {
    expect(lines.length).toBeGreaterThan(50);
    const names = new Set(lines.map((l) => (JSON.parse(l) as { name?: string }).name));
    for (const n of ['server', 'admin', 'gw1', 'gw2']) expect(names).toContain(n);
    expect(lines.some((l) => l.includes('group key updated'))).toBe(true);
    // fastify's per-request lines carry a request id
    expect(lines.some((l) => l.includes('"name":"admin"') && l.includes('"reqId"'))).toBe(true);
  });

  it('no key appears in any line, in any encoding', () => {
    expect(keys.size).toBeGreaterThanOrEqual(8);
    // the detector works: each way a key could be logged is caught
    const probe = [...keys.values()][0]!;
    const probeLines: string[] = [];
    const probeLog = pino(
      { level: 'trace' },
      new Writable({
        write(chunk, _enc, cb) {
          probeLines.push(String(chunk));
          cb();
        },
      }),
    );
    probeLog.info({ key: probe }, 'buffer');
    probeLog.info({ key: new Uint8Array(probe) }, 'uint8array');
    probeLog.info({ key: probe.toString('hex') }, 'hex');
    probeLog.info({ key: probe.toString('base64') }, 'base64');
    probeLog.info({ key: probe.toString('base64url') }, 'base64url');
    probeLog.info(`key=${probe.toString('hex').toUpperCase()}`);
    expect(probeLines).toHaveLength(6);
    for (const l of probeLines) expect(forms(probe).some((f) => l.includes(f))).toBe(true);
    const leaks: string[] = [];
    for (const [id, key] of keys) {
      for (const f of forms(key)) {
        const hit = lines.find((l) => l.includes(f));
        if (hit) leaks.push(`${id}: ${hit.slice(0, 200)}`);
      }
    }
    expect(leaks).toEqual([]);
  });
});

describe('server events and metrics of the run', () => {
  it("emits 'change' events for every key update reason, acks, PN and membership changes", () => {
    const reasons = new Set(events.filter((e) => e.kind === 'key.update').map((e) => e.reason));
    for (const r of ['create', 'leave', 'remove', 'operator', 'detach', 'revoke', 'periodic'])
      expect(reasons).toContain(r);
    const kinds = new Set(events.map((e) => e.kind));
    for (const k of [
      'sg.create',
      'sg.delete',
      'member.add',
      'member.remove',
      'identity.revoke',
      'key.ack',
      'pn.change',
    ])
      expect(kinds).toContain(k);
    expect(events.some((e) => e.kind === 'pn.change' && e.pneId === a.identity && e.online === true)).toBe(
      true,
    );
    expect(events.some((e) => e.kind === 'pn.change' && e.pneId === c.identity && e.online === false)).toBe(
      true,
    );
    expect(
      events.some((e) => e.kind === 'member.remove' && e.pneId === b.identity && e.reason === 'leave'),
    ).toBe(true);
    // events carry only ids, epochs, reasons and flags
    for (const e of events) {
      for (const v of Object.values(e)) expect(['string', 'number', 'boolean']).toContain(typeof v);
    }
  });

  it('exposes sessions, key updates by reason, ack latency and relayed messages', async () => {
    const t = await server.metrics.text();
    expect(t).toMatch(/^cpns_sessions\{role="gw"\} 2$/m);
    // a's and b's tunnels are open; c detached, d was revoked
    expect(t).toMatch(/^cpns_sessions\{role="pne"\} 2$/m);
    for (const r of ['create', 'leave', 'remove', 'operator', 'detach', 'revoke'])
      expect(t).toMatch(new RegExp(`^cpns_key_updates_total\\{reason="${r}"\\} [1-9]`, 'm'));
    expect(t).toMatch(/^cpns_key_updates_total\{reason="periodic"\} [1-9]/m);
    expect(t).toMatch(/^cpns_key_ack_latency_seconds_count [1-9]/m);
    expect(t).toMatch(/^cpns_relayed_messages_total [2-9]/m);
    expect(t).toMatch(/^cpns_relayed_bytes_total [1-9]/m);
    // and over HTTP, with the gauges refreshed from the store at scrape time
    const r = await app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(r.statusCode).toBe(200);
    expect(r.body).toMatch(/^cpns_service_groups 1$/m);
    // a, and c which detached from its PN (still a member, offline, behind)
    expect(r.body).toMatch(/^cpns_sg_members 2$/m);
    expect(r.body).toMatch(/^cpns_members_lagging 1$/m);
  });
});
