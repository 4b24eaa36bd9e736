/**
 * Named admin tokens with scopes (docs/operator.md "Admin tokens"), over real HTTPS: read / operator / admin, each
 * refused exactly what is above it (every operation of the OpenAPI document is tried); revocation takes effect on
 * the next request; the audit actor is the token's name; tokens are stored as SHA-256 only.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAdminApp } from '../../src/admin/app.js';
import { CpnsMetrics } from '../../src/metrics/index.js';
import { enrolled, randomPne, type Stack, startStack } from './fixture.js';

interface Reply {
  status: number;
  body: { error?: { code: string }; [k: string]: unknown } & Record<string, unknown>;
}

let s: Stack;

function call(method: string, path: string, token: string | undefined, body?: unknown): Promise<Reply> {
  const u = new URL(path, s.url);
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      u,
      {
        method,
        ca: s.caPem,
        headers: {
          ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
          ...(data !== undefined ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () => {
          let parsed: Reply['body'] = {};
          try {
            parsed = text && res.headers['content-type']?.includes('json') ? JSON.parse(text) : {};
          } catch {}
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        // SSE never ends: the status is enough
        if (res.headers['content-type']?.startsWith('text/event-stream')) {
          resolve({ status: res.statusCode ?? 0, body: {} });
          res.destroy();
        }
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function create(name: string, scope: string, by = s.token): Promise<string> {
  const r = await call('POST', '/api/v1/admin-tokens', by, { name, scope });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect(r.body).toMatchObject({ name, scope });
  return r.body.token as string;
}

const tokens: Record<'read' | 'operator' | 'admin', string> = { read: '', operator: '', admin: '' };

beforeAll(async () => {
  s = await startStack();
  tokens.read = await create('dashboard', 'read');
  tokens.operator = await create('alice', 'operator');
  tokens.admin = await create('security-team', 'admin');
});
afterAll(async () => {
  await s.close();
});

describe('admin token scopes', () => {
  it('read: every GET; nothing that changes state, nor the admin tokens', async () => {
    expect((await call('GET', '/api/v1/service-groups', tokens.read)).status).toBe(200);
    expect((await call('GET', '/api/v1/audit', tokens.read)).status).toBe(200);
    expect((await call('GET', '/metrics', tokens.read)).status).toBe(200);
    const refused = await call('POST', '/api/v1/service-groups', tokens.read, { name: 'no' });
    expect(refused.status).toBe(403);
    expect(refused.body.error?.code).toBe('INSUFFICIENT_SCOPE');
    expect((await call('GET', '/api/v1/admin-tokens', tokens.read)).status).toBe(403);
    expect((await s.server.store.listGroups()).map((g) => g.name)).not.toContain('no');
  });

  it('every operation of the API document: read refused all but GET, operator refused only admin tokens', async () => {
    const doc = (await call('GET', '/openapi.json', undefined)).body as {
      paths: Record<string, Record<string, { security?: unknown[] }>>;
    };
    let checked = 0;
    for (const [template, ops] of Object.entries(doc.paths)) {
      for (const [verb, op] of Object.entries(ops)) {
        if (op.security !== undefined && op.security.length === 0) continue; // public probes
        const method = verb.toUpperCase();
        // parameters that match the schemas; whether the target exists does not matter: scope comes first
        const path = template
          .replace('{sgId}', '00000000-0000-4000-8000-000000000000')
          .replace('{pneId}', randomPne())
          .replace('{id}', randomPne())
          .replace('{name}', 'dashboard');
        const tokenRoute = template.startsWith('/api/v1/admin-tokens');
        const body = method === 'POST' || method === 'PATCH' ? {} : undefined;
        const read = await call(method, path, tokens.read, body);
        if (method === 'GET' && !tokenRoute) expect(read.status, `read ${method} ${template}`).not.toBe(403);
        else expect(read.status, `read ${method} ${template}`).toBe(403);
        const op2 = await call(method, path, tokens.operator, body);
        if (tokenRoute) expect(op2.status, `operator ${method} ${template}`).toBe(403);
        else expect(op2.status, `operator ${method} ${template}`).not.toBe(403);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
    // nothing above was allowed to revoke `dashboard`
    expect((await call('GET', '/api/v1/service-groups', tokens.read)).status).toBe(200);
  });

  it("operator: changes state, audited as the token's name", async () => {
    const member = await enrolled(s, randomPne());
    const r = await call('POST', '/api/v1/service-groups', tokens.operator, {
      name: 'by-alice',
      members: [member],
    });
    expect(r.status).toBe(201);
    const sgId = r.body.sgId as string;
    expect((await call('POST', `/api/v1/service-groups/${sgId}/rekey`, tokens.operator)).status).toBe(200);
    const audit = await s.server.store.listAudit({ sgId });
    const actors = new Set(audit.entries.map((e) => e.actor));
    expect(actors).toEqual(new Set(['operator:alice']));
    expect(audit.entries.map((e) => e.action)).toEqual(
      expect.arrayContaining(['group.create', 'member.add', 'key.create', 'key.update']),
    );
    // the group is the operator's, not a device's
    expect((await s.server.store.getGroup(sgId))?.ownerId).toBe('operator');
    expect(
      (await call('POST', '/api/v1/admin-tokens', tokens.operator, { name: 'x', scope: 'read' })).status,
    ).toBe(403);
  });

  it('admin (named or root): manages tokens; names unique and never reused; root reserved', async () => {
    const t = await create('ci', 'read', tokens.admin);
    const list = await call('GET', '/api/v1/admin-tokens', tokens.admin);
    expect(list.status).toBe(200);
    const rows = list.body as unknown as { name: string; scope: string; revokedAt: number | null }[];
    expect(rows.map((x) => x.name).sort()).toEqual(['alice', 'ci', 'dashboard', 'security-team']);
    for (const row of rows)
      expect(Object.keys(row).sort()).toEqual(['createdAt', 'name', 'revokedAt', 'scope']);
    expect(
      (await call('POST', '/api/v1/admin-tokens', tokens.admin, { name: 'ci', scope: 'admin' })).status,
    ).toBe(409);
    expect(
      (await call('POST', '/api/v1/admin-tokens', s.token, { name: 'root', scope: 'admin' })).status,
    ).toBe(409);
    expect(
      (await call('POST', '/api/v1/admin-tokens', s.token, { name: 'Bad Name', scope: 'read' })).status,
    ).toBe(400);
    expect((await call('POST', '/api/v1/admin-tokens', s.token, { name: 'n', scope: 'root' })).status).toBe(
      400,
    );
    // revoked: refused from the next request on; the name stays taken
    expect((await call('GET', '/api/v1/pns', t)).status).toBe(200);
    const rv = await call('POST', '/api/v1/admin-tokens/ci/revoke', tokens.admin);
    expect(rv.status).toBe(200);
    expect(typeof rv.body.revokedAt).toBe('number');
    expect((await call('GET', '/api/v1/pns', t)).status).toBe(401);
    expect((await call('POST', '/api/v1/admin-tokens', s.token, { name: 'ci', scope: 'read' })).status).toBe(
      409,
    );
    expect((await call('POST', '/api/v1/admin-tokens/nobody/revoke', s.token)).status).toBe(404);
    const audit = await s.server.store.listAudit({ action: 'admin-token.revoke' });
    expect(audit.entries.map((e) => [e.actor, e.subject])).toEqual([['operator:security-team', 'ci']]);
    const created = await s.server.store.listAudit({ action: 'admin-token.create' });
    expect(created.entries.map((e) => e.actor)).toEqual([
      'operator:root',
      'operator:root',
      'operator:root',
      'operator:security-team',
    ]);
  });

  it("a read token gets no change through any spelling of a mutating route (scope is the matched route's)", async () => {
    const before = (await s.server.store.listGroups()).length;
    for (const url of [
      '/api/v1/service-groups',
      '/api/v1/service-groups?x=1',
      '/api/v1/service-groups#frag',
      '/api/v1/%73ervice-groups',
      '/api/v1/service-groups/',
      '/API/v1/service-groups',
      '//api/v1/service-groups',
      '/api/v1/./service-groups',
      '/api/v1/x/../service-groups',
    ]) {
      const r = await s.app.inject({
        method: 'POST',
        url,
        headers: { authorization: `Bearer ${tokens.read}` },
        payload: { name: 'via-spelling' },
      });
      expect(r.statusCode, url).toBeGreaterThanOrEqual(400);
    }
    expect((await s.server.store.listGroups()).length).toBe(before);
  });

  it('revocation reaches an admin app on another node at once: nothing is cached', async () => {
    // A second admin app over the same store, as a second cluster node over the shared database.
    const other = await buildAdminApp({
      admin: s.server.admin,
      store: s.server.store,
      metrics: new CpnsMetrics({ defaultMetrics: false }),
      auth: { token: randomBytes(32).toString('base64url') },
    });
    try {
      const t = await create('short-lived', 'read');
      const get = () =>
        other.inject({ method: 'GET', url: '/api/v1/pns', headers: { authorization: `Bearer ${t}` } });
      expect((await get()).statusCode).toBe(200);
      expect((await call('POST', '/api/v1/admin-tokens/short-lived/revoke', s.token)).status).toBe(200);
      expect((await get()).statusCode).toBe(401);
    } finally {
      await other.close();
    }
  });

  it('tokens at rest: only their SHA-256; an unknown, overlong or odd-alphabet token is 401', async () => {
    const db = new Database(join(s.dataDir, 'cpns.db'), { readonly: true });
    try {
      const rows = db.prepare('SELECT name, token_hash FROM admin_tokens').all() as {
        name: string;
        token_hash: string;
      }[];
      const byName = new Map(rows.map((r) => [r.name, r.token_hash]));
      expect(byName.get('dashboard')).toBe(createHash('sha256').update(tokens.read).digest('hex'));
      const dump = JSON.stringify(db.prepare('SELECT * FROM admin_tokens').all());
      for (const t of Object.values(tokens)) expect(dump).not.toContain(t);
    } finally {
      db.close();
    }
    expect((await call('GET', '/api/v1/pns', randomBytes(32).toString('base64url'))).status).toBe(401);
    expect((await call('GET', '/api/v1/pns', 'a'.repeat(257))).status).toBe(401);
    expect((await call('GET', '/api/v1/pns', `${tokens.read}=`)).status).toBe(401);
    expect((await call('GET', '/api/v1/pns', tokens.read.slice(0, -1))).status).toBe(401);
    const logs = s.logs.join('');
    for (const t of Object.values(tokens)) expect(logs).not.toContain(t);
  });
});
