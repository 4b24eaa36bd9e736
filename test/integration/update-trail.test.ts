/**
 * The trail of one key update (docs/operator.md "Following a key update"): the admin request's id (x-request-id)
 * is the update's `updateId` in the server's log line, the audit entry, the 'key.update' change event, and the
 * GW's delivery log line; an update with no traced cause (here the in-process API, like the periodic timer) gets
 * a fresh id carried the same way. Real server, GW and PNEs; every component logs into one buffer.
 */
import { Writable } from 'node:stream';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAdminApp } from '../../src/admin/app.js';
import type { ChangeEvent } from '../../src/admin/types.js';
import { startServer } from '../../src/embed/index.js';
import { PnGateway } from '../../src/gateway/index.js';
import { PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { BACKOFF, tempDir, until } from './helpers.js';

const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
    cb();
  },
});
const log = (name: string): Logger => pino({ name, level: 'debug' }, sink);

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let app: FastifyInstance;
let gw: PnGateway;
const pnes: PneClient[] = [];
const events: ChangeEvent[] = [];
const TOKEN = 'update-trail-test-admin-token';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer({ dataDir: tmp.dir, heartbeat: false, logger: log('server') });
  server.events.on('change', (ev: ChangeEvent) => events.push(ev));
  app = await buildAdminApp({
    admin: server.admin,
    store: server.store,
    events: server.events,
    metrics: server.metrics,
    auth: { token: TOKEN },
    logger: log('admin') as unknown as FastifyBaseLogger,
  });
  gw = await PnGateway.start({
    serverUrl: server.url,
    credentials: await PnGateway.enroll({
      enrollUrl: server.enrollUrl,
      caPem: server.caPem,
      token: await server.admin.createToken('gw'),
    }),
    heartbeat: false,
    reconnect: BACKOFF,
    logger: log('gw'),
  });
  for (const name of ['a', 'b']) {
    const credentials = await PneClient.enroll({
      enrollUrl: gw.enrollUrl,
      caPem: server.caPem,
      token: await server.admin.createToken('pne'),
    });
    pnes.push(
      await PneClient.connect({
        gwUrl: gw.url,
        credentials,
        heartbeat: false,
        reconnect: BACKOFF,
        logger: log(name),
      }),
    );
  }
}, 60_000);

afterAll(async () => {
  for (const p of pnes) await p.close();
  await gw?.close();
  await app?.close();
  await server?.close();
  tmp?.cleanup();
});

const withId = (id: string) => lines.filter((l) => l.updateId === id);

async function trailOf(sgId: string, epoch: number, id: string) {
  await Promise.all(pnes.map((p) => p.waitForKey(sgId, epoch)));
  await until(
    () => withId(id).some((l) => l.name === 'gw' && l.msg === 'group key delivery'),
    5000,
    'GW log',
  );
  const server = withId(id).find((l) => l.name === 'server' && l.msg === 'group key updated');
  expect(server, 'server log line').toMatchObject({ sgId, epoch, updateId: id, gws: 1, members: 2 });
  expect(withId(id).find((l) => l.name === 'gw' && l.msg === 'group key delivery')).toMatchObject({
    sgId,
    epoch,
    unicast: 2,
    broadcast: 0,
  });
  expect(events.find((e) => e.kind === 'key.update' && e.epoch === epoch && e.sgId === sgId)?.updateId).toBe(
    id,
  );
  const audit = await server_audit(sgId, epoch);
  expect(audit?.detail).toEqual({ updateId: id });
  await until(
    () =>
      withId(id).some((l) => l.msg === 'all members online here acked the key update' && l.epoch === epoch),
    5000,
    'all acked log',
  );
  const acked = withId(id).find((l) => l.msg === 'all members online here acked the key update');
  expect(typeof acked?.ms).toBe('number');
}

const server_audit = async (sgId: string, epoch: number) =>
  (await server.store.listAudit({ sgId })).entries.find(
    (e) => (e.action === 'key.update' || e.action === 'key.create') && e.epoch === epoch,
  );

describe('refused enrollments', () => {
  it('are logged with the peer address and the reason, at the GW and the server, never with the token', async () => {
    const token = 'Zm9yZ2VkLXRva2VuLW5vdC1pc3N1ZWQtYnktdGhlLXNlcnZlcg';
    await expect(PneClient.enroll({ enrollUrl: gw.enrollUrl, caPem: server.caPem, token })).rejects.toThrow();
    const atGw = lines.find((l) => l.name === 'gw' && l.msg === 'PNE enrollment refused');
    expect(atGw).toMatchObject({ reason: 'token.unknown' });
    expect(String(atGw?.peer)).toMatch(/127\.0\.0\.1$/);
    const atServer = lines.find((l) => l.name === 'server' && l.msg === 'enrollment refused');
    expect(atServer).toMatchObject({ reason: 'unknown', role: 'pne', gw: gw.identity });
    expect(JSON.stringify(lines)).not.toContain(token);
  });
});

describe('the trail of a key update', () => {
  it('an admin request: its x-request-id is the updateId everywhere', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/api/v1/service-groups',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: { name: 'trail', members: pnes.map((p) => p.identity) },
    });
    expect(created.statusCode).toBe(201);
    const sgId = created.json().sgId as string;
    const createId = created.headers['x-request-id'] as string;
    expect(createId).toMatch(UUID);
    await trailOf(sgId, 1, createId);

    const r = await app.inject({
      method: 'POST',
      url: `/api/v1/service-groups/${sgId}/rekey`,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(r.statusCode).toBe(200);
    const id = r.headers['x-request-id'] as string;
    expect(id).toMatch(UUID);
    expect(id).not.toBe(createId);
    await trailOf(sgId, 2, id);
    // the admin app's own request log names the same id
    expect(lines.some((l) => l.name === 'admin' && l.reqId === id)).toBe(true);
  }, 30_000);

  it('an update with no traced cause gets a fresh id, carried the same way; a request id header is not trusted', async () => {
    const { sgId } = await server.admin.createGroup({
      name: 'untraced',
      members: pnes.map((p) => p.identity),
    });
    await Promise.all(pnes.map((p) => p.waitForKey(sgId, 1)));
    const { epoch } = await server.admin.rekey(sgId);
    const ev = events.find((e) => e.kind === 'key.update' && e.sgId === sgId && e.epoch === epoch);
    expect(ev?.updateId).toMatch(UUID);
    await trailOf(sgId, epoch, ev!.updateId!);
    const forged = await app.inject({
      method: 'POST',
      url: `/api/v1/service-groups/${sgId}/rekey`,
      headers: { authorization: `Bearer ${TOKEN}`, 'request-id': 'forged', 'x-request-id': 'forged' },
    });
    expect(forged.headers['x-request-id']).toMatch(UUID);
  }, 30_000);
});
