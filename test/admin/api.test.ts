import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHttpError } from '../../src/admin/errors.js';
import { DROPPED_DEFAULT_METRICS, METRIC_NAMES } from '../../src/metrics/index.js';
import { hashToken } from '../../src/store/token.js';
import { until } from '../integration/helpers.js';
import { enrolled, randomPne, type Stack, startStack } from './fixture.js';

let s: Stack;
/** Every response body the API produced in this file: checked for key material at the end. */
const bodies: string[] = [];
/** Every Group Key that existed during the test (hex, base64, base64url forms). */
const keyForms = new Set<string>();

async function collectKeys(sgId: string): Promise<void> {
  for (const meta of await s.server.store.listKeyEpochs(sgId)) {
    const k = await s.server.store.getKey(sgId, meta.epoch);
    if (!k) continue;
    keyForms.add(k.key.toString('hex'));
    keyForms.add(k.key.toString('base64'));
    keyForms.add(k.key.toString('base64url'));
    keyForms.add(k.key.subarray(0, 12).toString('hex'));
    k.key.fill(0);
  }
}

interface Res {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: response JSON, checked field by field by the assertions
  json: any;
  headers: Record<string, unknown>;
  body: string;
}

async function call(
  method: InjectOptions['method'],
  url: string,
  payload?: unknown,
  o: { token?: string | null; headers?: Record<string, string> } = {},
): Promise<Res> {
  const headers: Record<string, string> = { ...o.headers };
  const token = o.token === undefined ? s.token : o.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const r = await s.app.inject({
    method,
    url,
    headers,
    ...(payload === undefined
      ? {}
      : typeof payload === 'string'
        ? { payload }
        : { payload: payload as object }),
  });
  bodies.push(r.body);
  let json: unknown;
  try {
    json = r.body.length > 0 ? JSON.parse(r.body) : undefined;
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, json, headers: r.headers, body: r.body };
}

function expectError(r: Res, status: number, code: string, field?: string): void {
  expect(r.status, r.body).toBe(status);
  expect(r.json.error.code).toBe(code);
  expect(typeof r.json.error.message).toBe('string');
  if (field !== undefined) expect(r.json.error.field).toBe(field);
  expect(r.body).not.toMatch(/\bat .*\.(ts|js):\d+/);
}

beforeAll(async () => {
  s = await startStack({ withGateway: true });
});

afterAll(async () => {
  await s?.close();
});

describe('authentication', () => {
  it('refuses /api without, with a wrong, or with a same-length wrong token', async () => {
    const none = await call('GET', '/api/v1/service-groups', undefined, { token: null });
    expectError(none, 401, 'UNAUTHORIZED');
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expectError(await call('GET', '/api/v1/pns', undefined, { token: 'nope' }), 401, 'UNAUTHORIZED');
    const sameLength = s.token.slice(0, -1) + (s.token.endsWith('A') ? 'B' : 'A');
    expectError(await call('GET', '/api/v1/pns', undefined, { token: sameLength }), 401, 'UNAUTHORIZED');
    expectError(
      await call('POST', '/api/v1/service-groups', { name: 'x' }, { token: null }),
      401,
      'UNAUTHORIZED',
    );
    expectError(await call('GET', '/metrics', undefined, { token: null }), 401, 'UNAUTHORIZED');
    expect((await call('GET', '/api/v1/pns')).status).toBe(200);
  });

  it('serves the OpenAPI document and the console without a token (they hold no data)', async () => {
    expect((await call('GET', '/openapi.json', undefined, { token: null })).status).toBe(200);
    const c = await call('GET', '/console/', undefined, { token: null });
    expect(c.status).toBe(200);
    expect(c.headers['content-security-policy']).toContain("script-src 'self'");
    expect((await call('GET', '/console/app.js', undefined, { token: null })).status).toBe(200);
    // Unknown paths are not public (deny by default): 401 without the token, 404 with it.
    expectError(await call('GET', '/console/../app.ts', undefined, { token: null }), 401, 'UNAUTHORIZED');
    expectError(await call('GET', '/console/../app.ts'), 404, 'NOT_FOUND');
    expectError(await call('GET', '/console/other.js', undefined, { token: null }), 400, 'SCHEMA');
  });

  it('answers unknown routes with a stable 404', async () => {
    expectError(await call('GET', '/api/v1/nothing'), 404, 'NOT_FOUND');
  });
});

describe('inventory, enrollment and identities', () => {
  it('lists the PN of the enrolled GW, the GWs and the identities', async () => {
    const gwId = s.gw!.identity;
    const pns = await call('GET', '/api/v1/pns');
    expect(pns.status).toBe(200);
    expect(pns.json).toEqual([expect.objectContaining({ gwId, online: true, pnes: [] })]);
    const gws = await call('GET', '/api/v1/gateways');
    expect(gws.json).toEqual([expect.objectContaining({ gwId, online: true, pneCount: 0 })]);
    expect((await call('GET', '/api/v1/pnes')).json).toEqual([]);
    const ids = await call('GET', '/api/v1/identities');
    expect(ids.json.map((i: { id: string }) => i.id).sort()).toEqual([gwId, s.pneIdentity].sort());
    for (const i of ids.json)
      expect(Object.keys(i).sort()).toEqual(['certSerial', 'createdAt', 'id', 'revokedAt', 'role']);
    const pnes = await call('GET', '/api/v1/identities?role=pne');
    expect(pnes.json).toEqual([expect.objectContaining({ id: s.pneIdentity, role: 'pne', revokedAt: null })]);
    expectError(await call('GET', '/api/v1/identities?role=server'), 400, 'SCHEMA', 'role');
  });

  it('creates enrollment tokens and validates the body', async () => {
    const r = await call('POST', '/api/v1/enrollment-tokens', { role: 'pne', ttlSec: 600 });
    expect(r.status).toBe(201);
    expect(r.json.token).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(r.json.role).toBe('pne');
    expect(r.json.expiresAt).toBeGreaterThan(Date.now());
    expect(r.json.label).toBeNull();
    expect(r.headers['cache-control']).toBe('no-store');
    // A label names the device to enroll: stored with the token and audited (the token itself never is).
    const l = await call('POST', '/api/v1/enrollment-tokens', { role: 'pne', label: 'living-room tv' });
    expect(l.status).toBe(201);
    expect(l.json.label).toBe('living-room tv');
    const consumed = await s.server.store.consumeToken(hashToken(l.json.token), 'pne');
    expect(consumed.ok && consumed.token.label).toBe('living-room tv');
    const audit = await call('GET', '/api/v1/audit?action=token.create');
    const last = audit.json.entries.at(-1);
    expect(last).toMatchObject({
      actor: 'operator:root',
      subject: 'pne',
      detail: { label: 'living-room tv' },
    });
    expect(JSON.stringify(audit.json)).not.toContain(l.json.token);
    for (const label of ['', 'x'.repeat(129), 'line\nbreak', 7])
      expectError(
        await call('POST', '/api/v1/enrollment-tokens', { role: 'gw', label }),
        400,
        'SCHEMA',
        'label',
      );
    expectError(await call('POST', '/api/v1/enrollment-tokens', { role: 'server' }), 400, 'SCHEMA', 'role');
    expectError(await call('POST', '/api/v1/enrollment-tokens', {}), 400, 'SCHEMA', 'role');
    expectError(
      await call('POST', '/api/v1/enrollment-tokens', { role: 'gw', admin: true }),
      400,
      'SCHEMA',
      'admin',
    );
    expectError(
      await call('POST', '/api/v1/enrollment-tokens', { role: 'gw', ttlSec: '600' }),
      400,
      'SCHEMA',
      'ttlSec',
    );
    expectError(await call('POST', '/api/v1/enrollment-tokens', { role: 'gw', ttlSec: 5 }), 400, 'SCHEMA');
    expectError(
      await call('POST', '/api/v1/enrollment-tokens', '{"role":', {
        headers: { 'content-type': 'application/json' },
      }),
      400,
      'MALFORMED',
    );
    expectError(
      await call('POST', '/api/v1/enrollment-tokens', 'role=gw', {
        headers: { 'content-type': 'text/plain' },
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expectError(
      await call('POST', '/api/v1/enrollment-tokens', { role: 'gw', pad: 'x'.repeat(70_000) }),
      413,
      'TOO_LARGE',
    );
  });
});

describe('Service Groups, members and Group Key status', () => {
  let sgId: string;
  const other = randomPne();
  const bare = randomUUID();

  it('creates a Service Group with policy and members; its first key is epoch 1', async () => {
    await enrolled(s, [other, bare]);
    const r = await call('POST', '/api/v1/service-groups', {
      name: 'living room',
      joinPolicy: 'invite',
      suite: 'chacha20-poly1305',
      sourceAuth: true,
      rekeyIntervalSec: 3600,
      // Off here, so the epochs below count only the updates this file makes; update on join: its own test.
      updateOnJoin: false,
      members: [s.pneIdentity, other, bare],
    });
    expect(r.status, r.body).toBe(201);
    sgId = r.json.sgId;
    expect(r.json).toMatchObject({
      name: 'living room',
      ownerId: 'operator',
      joinPolicy: 'invite',
      suite: 'chacha20-poly1305',
      sourceAuth: true,
      rekeyIntervalSec: 3600,
      currentEpoch: 1,
      memberCount: 3,
    });
    expect([...r.json.members].sort()).toEqual([s.pneIdentity, other, `urn:cpns:pne:${bare}`].sort());
    await collectKeys(sgId);
    const list = await call('GET', '/api/v1/service-groups');
    expect(list.json.map((g: { sgId: string }) => g.sgId)).toContain(sgId);
    const one = await call('GET', `/api/v1/service-groups/${sgId}`);
    expect(one.json).toMatchObject({ sgId, currentEpoch: 1 });
  });

  it('changes a Service Group policy (join mode, periodic update, source authentication)', async () => {
    const url = `/api/v1/service-groups/${sgId}`;
    const r = await call('PATCH', url, { joinPolicy: 'open', rekeyIntervalSec: 7200, sourceAuth: false });
    expect(r.status, r.body).toBe(200);
    expect(r.json).toMatchObject({ sgId, joinPolicy: 'open', rekeyIntervalSec: 7200, sourceAuth: false });
    expect((await call('PATCH', url, { rekeyIntervalSec: null })).json.rekeyIntervalSec).toBeNull();
    const dp = { broadcast: false, broadcastThreshold: 4, ackTimeoutMs: 2000 };
    expect((await call('PATCH', url, { deliveryPolicy: dp })).json.deliveryPolicy).toEqual(dp);
    expectError(await call('PATCH', url, { deliveryPolicy: { broadcast: true } }), 400, 'SCHEMA');
    expect((await call('PATCH', url, { deliveryPolicy: null })).json.deliveryPolicy).toBeNull();
    expect((await call('GET', url)).json).toMatchObject({ joinPolicy: 'open', rekeyIntervalSec: null });
    expectError(await call('PATCH', url, {}), 400, 'SCHEMA');
    expectError(await call('PATCH', url, { rekeyIntervalSec: 59 }), 400, 'SCHEMA', 'rekeyIntervalSec');
    expectError(await call('PATCH', url, { suite: 'chacha20-poly1305' }), 400, 'SCHEMA', 'suite');
    expectError(
      await call('PATCH', `/api/v1/service-groups/${randomUUID()}`, { joinPolicy: 'open' }),
      404,
      'NOT_FOUND',
    );
    const audit = await call('GET', `/api/v1/audit?sgId=${sgId}&action=sg.policy`);
    expect(audit.json.entries.length).toBe(4);
    // restore for the tests below
    await call('PATCH', url, { joinPolicy: 'invite', rekeyIntervalSec: 3600, sourceAuth: true });
  });

  it('validates Service Group requests', async () => {
    const url = '/api/v1/service-groups';
    expectError(await call('POST', url, {}), 400, 'SCHEMA', 'name');
    expectError(await call('POST', url, { name: '' }), 400, 'SCHEMA', 'name');
    expectError(await call('POST', url, { name: 'a', owner: 'me' }), 400, 'SCHEMA', 'owner');
    expectError(await call('POST', url, { name: 'a', suite: 'aes-128-cbc' }), 400, 'SCHEMA', 'suite');
    expectError(await call('POST', url, { name: 'a', joinPolicy: 'closed' }), 400, 'SCHEMA', 'joinPolicy');
    expectError(
      await call('POST', url, { name: 'a', members: ['urn:cpns:gw:x'] }),
      400,
      'SCHEMA',
      'members.0',
    );
    expectError(await call('POST', url, { name: 'a', rekeyIntervalSec: 1.5 }), 400, 'SCHEMA');
    expectError(await call('POST', url, { name: 'a', sourceAuth: 'true' }), 400, 'SCHEMA', 'sourceAuth');
    expectError(await call('POST', url, [{ name: 'a' }]), 400, 'SCHEMA');
    const unknown = randomUUID();
    expectError(await call('GET', `${url}/${unknown}`), 404, 'NOT_FOUND', 'sgId');
    expectError(await call('GET', `${url}/${unknown}/key`), 404, 'NOT_FOUND', 'sgId');
    expectError(await call('GET', `${url}/${unknown}/members`), 404, 'NOT_FOUND', 'sgId');
    expectError(await call('POST', `${url}/${unknown}/rekey`), 404, 'NOT_FOUND', 'sgId');
    expectError(await call('DELETE', `${url}/${unknown}`), 404, 'NOT_FOUND', 'sgId');
    expectError(await call('POST', `${url}/${unknown}/members`, { pneId: randomPne() }), 404, 'NOT_FOUND');
    expectError(await call('GET', `${url}/not-a-uuid`), 400, 'SCHEMA', 'sgId');
    expectError(await call('GET', `${url}/${unknown.toUpperCase()}`), 400, 'SCHEMA', 'sgId');
  });

  it('adds and lists members, refusing duplicates and bad ids', async () => {
    const url = `/api/v1/service-groups/${sgId}/members`;
    const fresh = await enrolled(s, randomPne());
    const r = await call('POST', url, { pneId: fresh });
    expect(r.status, r.body).toBe(201);
    expect(r.json).toEqual({ sgId, pneId: fresh });
    expectError(await call('POST', url, { pneId: fresh }), 409, 'ALREADY_MEMBER');
    // A PNE that was never enrolled cannot be a member (docs/operator.md): refused, nothing changes.
    const before = await call('GET', `/api/v1/service-groups/${sgId}`);
    const groupsBefore = (await call('GET', '/api/v1/service-groups')).json.length;
    expectError(await call('POST', url, { pneId: randomPne() }), 404, 'NOT_FOUND', 'pneId');
    expectError(
      await call('POST', '/api/v1/service-groups', { name: 'ghost', members: [randomPne()] }),
      404,
      'NOT_FOUND',
      'pneId',
    );
    expect((await call('GET', `/api/v1/service-groups/${sgId}`)).json).toEqual(before.json);
    expect((await call('GET', '/api/v1/service-groups')).json.length).toBe(groupsBefore);
    expectError(await call('POST', url, { pneId: `urn:cpns:gw:${randomUUID()}` }), 400, 'SCHEMA', 'pneId');
    expectError(await call('POST', url, { pneId: fresh, why: 'x' }), 400, 'SCHEMA', 'why');
    const members = await call('GET', url);
    expect(members.json).toHaveLength(4);
    for (const m of members.json) {
      expect(m).toMatchObject({ online: false, lag: 1, ackedEpoch: null });
      expect(typeof m.joinedAt).toBe('number');
    }
  });

  it('shows the Group Key status (epochs, reasons, per-member lag) and never key bytes', async () => {
    const r = await call('GET', `/api/v1/service-groups/${sgId}/key`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      sgId,
      currentEpoch: 1,
      current: { epoch: 1, reason: 'create' },
      lagging: 4,
    });
    expect(r.json.epochs).toEqual([expect.objectContaining({ epoch: 1, reason: 'create' })]);
    expect(Object.keys(r.json.current).sort()).toEqual(['activateAt', 'createdAt', 'epoch', 'reason']);
    expect(r.body).not.toMatch(/"key"|"keyHex"|"secret"/);
  });

  it('forces a key update (reason operator) and removes a member (reason remove)', async () => {
    const r = await call('POST', `/api/v1/service-groups/${sgId}/rekey`);
    expect(r.status, r.body).toBe(200);
    expect(r.json).toEqual({ sgId, epoch: 2 });
    await collectKeys(sgId);
    const del = await call('DELETE', `/api/v1/service-groups/${sgId}/members/${other}`);
    expect(del.status, del.body).toBe(204);
    await collectKeys(sgId);
    const ks = await call('GET', `/api/v1/service-groups/${sgId}/key`);
    expect(ks.json).toMatchObject({ currentEpoch: 3, current: { epoch: 3, reason: 'remove' } });
    expect(ks.json.members.map((m: { pneId: string }) => m.pneId)).not.toContain(other);
    expectError(await call('DELETE', `/api/v1/service-groups/${sgId}/members/${other}`), 404, 'NOT_MEMBER');
    const bareDel = await call('DELETE', `/api/v1/service-groups/${sgId}/members/${bare}`);
    expect(bareDel.status).toBe(204);
    await collectKeys(sgId);
    expectError(
      await call('DELETE', `/api/v1/service-groups/${sgId}/members/nobody`),
      400,
      'SCHEMA',
      'pneId',
    );
  });

  it('revokes an identity: it leaves its Service Groups with an immediate key update', async () => {
    const before = (await call('GET', `/api/v1/service-groups/${sgId}`)).json.currentEpoch;
    const r = await call('POST', `/api/v1/identities/${encodeURIComponent(s.pneIdentity!)}/revoke`);
    expect(r.status, r.body).toBe(200);
    expect(r.json).toMatchObject({ id: s.pneIdentity, role: 'pne' });
    expect(r.json.revokedAt).toBeGreaterThan(0);
    await collectKeys(sgId);
    const g = (await call('GET', `/api/v1/service-groups/${sgId}`)).json;
    expect(g.members).not.toContain(s.pneIdentity);
    expect(g.currentEpoch).toBe(before + 1);
    const ks = await call('GET', `/api/v1/service-groups/${sgId}/key`);
    expect(ks.json.current.reason).toBe('revoke');
    expectError(
      await call('POST', `/api/v1/identities/urn:cpns:pne:${randomUUID()}/revoke`),
      404,
      'NOT_FOUND',
    );
    expectError(await call('POST', '/api/v1/identities/urn:cpns:server:node1/revoke'), 400, 'SCHEMA', 'id');
    expectError(
      await call('POST', `/api/v1/service-groups/${sgId}/members`, { pneId: s.pneIdentity }),
      409,
      'REVOKED',
    );
  });

  it('update on join is the default: a join updates the key, a batch costs one update; PATCH turns it off', async () => {
    const created = await call('POST', '/api/v1/service-groups', { name: 'backward secrecy' });
    expect(created.status, created.body).toBe(201);
    expect(created.json).toMatchObject({ updateOnJoin: true, joinPolicy: 'invite', currentEpoch: 1 });
    const id = created.json.sgId;
    const one = await enrolled(s, randomPne());
    expect((await call('POST', `/api/v1/service-groups/${id}/members`, { pneId: one })).status).toBe(201);
    await until(async () => (await call('GET', `/api/v1/service-groups/${id}`)).json.currentEpoch === 2);
    const key = await call('GET', `/api/v1/service-groups/${id}/key`);
    expect(key.json.current).toMatchObject({ epoch: 2, reason: 'join' });
    const batch = await enrolled(s, [randomPne(), randomPne(), randomPne()]);
    const b = await call('POST', `/api/v1/service-groups/${id}/members/batch`, { pneIds: batch });
    expect(b.status, b.body).toBe(201);
    expect(b.json).toEqual({ sgId: id, pneIds: batch });
    await until(async () => (await call('GET', `/api/v1/service-groups/${id}`)).json.currentEpoch === 3);
    expect((await call('GET', `/api/v1/service-groups/${id}`)).json.memberCount).toBe(4);
    // A batch with a member already in, or a PNE never enrolled: refused as a whole.
    expectError(
      await call('POST', `/api/v1/service-groups/${id}/members/batch`, { pneIds: [one, randomPne()] }),
      409,
      'ALREADY_MEMBER',
    );
    expectError(
      await call('POST', `/api/v1/service-groups/${id}/members/batch`, { pneIds: [randomPne()] }),
      404,
      'NOT_FOUND',
    );
    expect((await call('GET', `/api/v1/service-groups/${id}`)).json.memberCount).toBe(4);
    const off = await call('PATCH', `/api/v1/service-groups/${id}`, { updateOnJoin: false });
    expect(off.json.updateOnJoin).toBe(false);
    await call('POST', `/api/v1/service-groups/${id}/members`, { pneId: await enrolled(s, randomPne()) });
    await new Promise((r) => setTimeout(r, 100));
    expect((await call('GET', `/api/v1/service-groups/${id}`)).json.currentEpoch).toBe(3);
    await call('DELETE', `/api/v1/service-groups/${id}`);
  });

  it('pages and filters the audit log', async () => {
    const all = await call('GET', '/api/v1/audit?limit=1000');
    expect(all.status).toBe(200);
    const actions = all.json.entries.map((e: { action: string }) => e.action);
    for (const a of [
      'group.create',
      'member.add',
      'key.create',
      'key.update',
      'member.remove',
      'identity.revoke',
    ])
      expect(actions).toContain(a);
    const p1 = await call('GET', '/api/v1/audit?limit=2');
    expect(p1.json.entries).toHaveLength(2);
    expect(p1.json.nextAfterSeq).toBe(p1.json.entries[1].seq);
    const p2 = await call('GET', `/api/v1/audit?limit=2&afterSeq=${p1.json.nextAfterSeq}`);
    expect(p2.json.entries[0].seq).toBeGreaterThan(p1.json.nextAfterSeq);
    const updates = await call('GET', `/api/v1/audit?action=key.update&sgId=${sgId}`);
    expect(updates.json.entries.map((e: { reason: string }) => e.reason)).toEqual([
      'operator',
      'remove',
      'remove',
      'revoke',
    ]);
    expect(updates.json.entries.map((e: { epoch: number }) => e.epoch)).toEqual([2, 3, 4, 5]);
    expect(updates.json.nextAfterSeq).toBeNull();
    expectError(await call('GET', '/api/v1/audit?limit=0'), 400, 'SCHEMA', 'limit');
    expectError(await call('GET', '/api/v1/audit?limit=1001'), 400, 'SCHEMA', 'limit');
    expectError(await call('GET', '/api/v1/audit?afterSeq=-1'), 400, 'SCHEMA', 'afterSeq');
    expectError(await call('GET', '/api/v1/audit?action=DROP%20TABLE'), 400, 'SCHEMA', 'action');
    expectError(await call('GET', '/api/v1/audit?who=x'), 400, 'SCHEMA', 'who');
  });

  it('lists the audit log newest first, paged backwards, filtered by actor and subject', async () => {
    const all = (await call('GET', '/api/v1/audit?limit=1000')).json.entries as { seq: number }[];
    const seqs = all.map((e) => e.seq);
    const d1 = await call('GET', '/api/v1/audit?order=desc&limit=3');
    expect(d1.status).toBe(200);
    expect(d1.json.entries.map((e: { seq: number }) => e.seq)).toEqual(seqs.slice(-3).reverse());
    expect(d1.json.nextAfterSeq).toBeNull();
    expect(d1.json.nextBeforeSeq).toBe(d1.json.entries[2].seq);
    const d2 = await call('GET', `/api/v1/audit?order=desc&limit=3&beforeSeq=${d1.json.nextBeforeSeq}`);
    expect(d2.json.entries.map((e: { seq: number }) => e.seq)).toEqual(seqs.slice(-6, -3).reverse());
    // The oldest page: no cursor.
    const last = await call('GET', `/api/v1/audit?order=desc&limit=1000&beforeSeq=${seqs[2]}`);
    expect(last.json.entries.map((e: { seq: number }) => e.seq)).toEqual(seqs.slice(0, 2).reverse());
    expect(last.json.nextBeforeSeq).toBeNull();
    // Oldest first, the new cursor is null.
    expect((await call('GET', '/api/v1/audit?limit=1')).json.nextBeforeSeq).toBeNull();
    // Exact actor and subject.
    const mine = await call('GET', '/api/v1/audit?actor=operator:root&limit=1000');
    expect(mine.json.entries.length).toBeGreaterThan(0);
    for (const e of mine.json.entries) expect(e.actor).toBe('operator:root');
    const server = await call('GET', '/api/v1/audit?actor=server&limit=1000');
    for (const e of server.json.entries) expect(e.actor).toBe('server');
    expect(server.json.entries.map((e: { action: string }) => e.action)).toContain('identity.enroll');
    const about = await call('GET', `/api/v1/audit?subject=${encodeURIComponent(s.pneIdentity!)}&order=desc`);
    expect(about.json.entries.length).toBeGreaterThan(0);
    for (const e of about.json.entries) expect(e.subject).toBe(s.pneIdentity);
    expect((await call('GET', '/api/v1/audit?actor=nobody')).json.entries).toEqual([]);
    expectError(await call('GET', '/api/v1/audit?order=random'), 400, 'SCHEMA', 'order');
    expectError(await call('GET', '/api/v1/audit?beforeSeq=0'), 400, 'SCHEMA', 'beforeSeq');
    expectError(await call('GET', '/api/v1/audit?actor='), 400, 'SCHEMA', 'actor');
    expectError(await call('GET', `/api/v1/audit?subject=${'x'.repeat(257)}`), 400, 'SCHEMA', 'subject');
    expectError(await call('GET', '/api/v1/audit?actor=a%0Ab'), 400, 'SCHEMA', 'actor');
  });

  it('deletes a Service Group', async () => {
    const r = await call('DELETE', `/api/v1/service-groups/${sgId}`);
    expect(r.status, r.body).toBe(204);
    expectError(await call('GET', `/api/v1/service-groups/${sgId}`), 404, 'NOT_FOUND');
    expectError(await call('DELETE', `/api/v1/service-groups/${sgId}`), 404, 'NOT_FOUND');
    const audit = await call('GET', `/api/v1/audit?sgId=${sgId}&action=group.delete`);
    expect(audit.json.entries).toHaveLength(1);
  });
});

describe('OpenAPI, metrics, errors and events', () => {
  it('documents every API route in /openapi.json, generated from the schemas', async () => {
    const doc = (await call('GET', '/openapi.json', undefined, { token: null })).json;
    expect(doc.openapi).toBe('3.0.3');
    const ops = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, m]) =>
      Object.keys(m).map((verb) => `${verb.toUpperCase()} ${p}`),
    );
    expect(ops.sort()).toEqual(
      [
        'GET /api/v1/pns',
        'GET /api/v1/pnes',
        'GET /api/v1/gateways',
        'GET /api/v1/identities',
        'POST /api/v1/enrollment-tokens',
        'POST /api/v1/identities/{id}/revoke',
        'GET /api/v1/service-groups',
        'POST /api/v1/service-groups',
        'GET /api/v1/service-groups/{sgId}',
        'DELETE /api/v1/service-groups/{sgId}',
        'PATCH /api/v1/service-groups/{sgId}',
        'GET /api/v1/service-groups/{sgId}/members',
        'POST /api/v1/service-groups/{sgId}/members',
        'POST /api/v1/service-groups/{sgId}/members/batch',
        'DELETE /api/v1/service-groups/{sgId}/members/{pneId}',
        'GET /api/v1/service-groups/{sgId}/key',
        'POST /api/v1/service-groups/{sgId}/rekey',
        'GET /api/v1/audit',
        'GET /api/v1/admin-tokens',
        'POST /api/v1/admin-tokens',
        'POST /api/v1/admin-tokens/{name}/revoke',
        'GET /api/v1/events',
        'GET /metrics',
        'GET /healthz',
        'GET /readyz',
      ].sort(),
    );
    const create = doc.paths['/api/v1/service-groups'].post;
    expect(create.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
    expect(create.responses['201']).toBeDefined();
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const name of ['ServiceGroup', 'KeyStatus', 'MemberKeyState', 'AuditEntry', 'Error'])
      expect(doc.components.schemas[name]).toBeDefined();
  });

  it('exposes the Prometheus metrics', async () => {
    s.metrics.keyUpdated('operator');
    s.metrics.ackLatency(0.2);
    s.metrics.relayRefused('REPLAY');
    s.metrics.relayed(120);
    s.metrics.sessionOpened('gw');
    s.metrics.relayRefused('</script>{}');
    const g = await call('POST', '/api/v1/service-groups', {
      name: 'metrics',
      members: [await enrolled(s, randomPne())],
    });
    expect(g.status).toBe(201);
    await collectKeys(g.json.sgId);
    const r = await call('GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    for (const n of METRIC_NAMES) expect(r.body).toContain(`# TYPE ${n} `);
    expect(r.body).toContain('process_cpu_seconds_total');
    expect(r.body).toMatch(/^cpns_service_groups 1$/m);
    expect(r.body).toMatch(/^cpns_sg_members 1$/m);
    expect(r.body).toMatch(/^cpns_members_lagging 1$/m);
    expect(r.body).toMatch(/^cpns_key_updates_total\{reason="operator"\} 1$/m);
    expect(r.body).toMatch(/^cpns_relay_refusals_total\{code="REPLAY"\} 1$/m);
    expect(r.body).toMatch(/^cpns_relay_refusals_total\{code="other"\} 1$/m);
    expect(r.body).toMatch(/^cpns_relayed_bytes_total 120$/m);
    expect(r.body).toMatch(/^cpns_sessions\{role="gw"\} 1$/m);
    expect(r.body).toMatch(/^cpns_key_ack_latency_seconds_count 1$/m);
    // The label values we know are there at 0 before anything happened.
    expect(r.body).toMatch(/^cpns_relay_refusals_total\{code="NOT_MEMBER"\} 0$/m);
    expect(r.body).toMatch(/^cpns_key_updates_total\{reason="restart"\} 0$/m);
    expect(r.body).toMatch(/^cpns_sessions\{role="enroll"\} 0$/m);
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(r.body).toContain(`cpns_build_info{version="${pkg.version}",node="${process.version}"} 1\n`);
    // prom-client's gauges named like counters are not exported (promtool refuses them).
    for (const n of DROPPED_DEFAULT_METRICS) expect(r.body).not.toContain(n);
    expect(r.body).toMatch(/^nodejs_active_handles\{/m);
  });

  it('maps unexpected errors to 500 INTERNAL without details', () => {
    const e = toHttpError(new Error('secret internal detail /srv/x.ts:12'));
    expect(e).toEqual({ status: 500, body: { error: { code: 'INTERNAL', message: 'internal error' } } });
  });

  it('streams change events over HTTPS (SSE), sanitized, and refuses streams without the token', async () => {
    const refused = await sseOpen(null);
    expect(refused.status).toBe(401);
    refused.close();
    const stream = await sseOpen(s.token);
    expect(stream.status).toBe(200);
    expect(stream.contentType).toMatch(/^text\/event-stream/);
    await stream.waitFor((t) => t.includes('event: hello'));
    const g = await call('POST', '/api/v1/service-groups', { name: 'sse' });
    await collectKeys(g.json.sgId);
    await stream.waitFor((t) => t.includes(`"kind":"sg.create","sgId":"${g.json.sgId}","epoch":1`));
    await call('POST', `/api/v1/service-groups/${g.json.sgId}/rekey`);
    await collectKeys(g.json.sgId);
    await stream.waitFor((t) => t.includes(`"kind":"key.update","sgId":"${g.json.sgId}","epoch":2`));
    // Server events are forwarded with their whitelisted primitive fields only.
    s.events.emit('change', {
      kind: 'key.ack',
      sgId: g.json.sgId,
      epoch: 2,
      key: Buffer.alloc(32, 7),
      x: 'y',
    });
    const text = await stream.waitFor((t) => t.includes('"kind":"key.ack"'));
    expect(text).not.toContain('"key":');
    expect(text).not.toContain('"x"');
    await stream.waitFor((t) => t.includes(': keep-alive'));
    bodies.push(text);
    stream.close();
    // A stream left open must not block shutdown: afterAll's app.close() ends it (else the hook times out).
    const dangling = await sseOpen(s.token);
    await dangling.waitFor((t) => t.includes('event: hello'));
  });

  it('never returns or logs Group Key material', async () => {
    expect(keyForms.size).toBeGreaterThan(20);
    const all = bodies.join('\n');
    const logs = s.logs.join('');
    expect(logs.length).toBeGreaterThan(0);
    for (const k of keyForms) {
      expect(all.includes(k)).toBe(false);
      expect(logs.includes(k)).toBe(false);
    }
    expect(logs.includes(s.token)).toBe(false);
  });
});

function sseOpen(token: string | null): Promise<{
  status: number;
  contentType: string;
  waitFor(pred: (text: string) => boolean): Promise<string>;
  close(): void;
}> {
  return new Promise((resolve, reject) => {
    const u = new URL('/api/v1/events', s.url);
    const req = request(
      {
        hostname: u.hostname,
        port: u.port,
        path: u.pathname,
        ca: s.caPem,
        headers: token === null ? {} : { authorization: `Bearer ${token}` },
      },
      (res) => {
        let text = '';
        const waiters: (() => void)[] = [];
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
          for (const w of [...waiters]) w();
        });
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type']),
          waitFor: (pred) =>
            new Promise((ok, ko) => {
              const t = setTimeout(() => ko(new Error(`timeout; got: ${text}`)), 5000);
              const check = () => {
                if (pred(text)) {
                  clearTimeout(t);
                  waiters.splice(waiters.indexOf(check), 1);
                  ok(text);
                }
              };
              waiters.push(check);
              check();
            }),
          close: () => req.destroy(),
        });
      },
    );
    req.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(e);
    });
    req.end();
  });
}
