/**
 * Authentication is decided on the matched route (docs/operator.md): for every operation of the generated OpenAPI
 * document, a table of path spellings (percent-encoding of each character, case, dot segments, duplicate, trailing
 * and encoded slashes, query / fragment / matrix tricks...) is sent over a real TLS connection with the request
 * target verbatim, without a token and with a wrong one. None may succeed (no 2xx, no 3xx) and none may change the
 * state (store API and every SQLite table compared before and after). With the token, the canonical spelling works.
 * Plus the public routes, and the framework error envelopes that never echo the request.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrolled, randomPne, type Stack, startStack } from './fixture.js';

interface Raw {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface SendOptions {
  auth?: string;
  body?: string | Buffer;
  type?: string;
  headers?: Record<string, string>;
}

const agents = new Map<Stack, Agent>();

/** One request; `path` goes on the request line exactly as given (node's client does not normalise it). */
function send(s: Stack, method: string, path: string, o: SendOptions = {}): Promise<Raw> {
  const u = new URL(s.url);
  let agent = agents.get(s);
  if (!agent) {
    agent = new Agent({ keepAlive: true, maxSockets: 8, ca: s.caPem });
    agents.set(s, agent);
  }
  const headers: Record<string, string | number> = { ...o.headers };
  if (o.auth !== undefined) headers.authorization = o.auth;
  if (o.body !== undefined) {
    headers['content-type'] = o.type ?? 'application/json';
    headers['content-length'] = Buffer.byteLength(o.body);
  }
  return new Promise((resolve, reject) => {
    const req = request(
      { hostname: u.hostname, port: u.port, method, path, headers, agent, ca: s.caPem },
      (res) => {
        if (String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
          // An event stream never ends: the status line is all we need.
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
          res.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error(`timeout: ${method} ${path}`)));
    req.end(o.body);
  });
}

/** Raw bytes over TLS (for what node's client refuses to send); resolves with everything the server wrote. */
function sendRaw(s: Stack, bytes: string | Buffer): Promise<string> {
  const u = new URL(s.url);
  return new Promise((resolve, reject) => {
    const sock = connect(
      { host: u.hostname, port: Number(u.port), ca: s.caPem, servername: 'localhost' },
      () => sock.write(bytes),
    );
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      // The server closes right after its error reply; a reset after that is not a failure.
      if (chunks.length > 0) resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(e);
    });
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.setTimeout(15_000, () => sock.destroy(new Error('raw request timeout')));
  });
}

async function pool<T, R>(items: readonly T[], n: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: n }, worker));
  return out;
}

// ------------------------------------------------------------------ spellings

const hex = (c: string) => c.charCodeAt(0).toString(16).padStart(2, '0');

/** Ways to write `p` that a URL-string check and the router could disagree on. `p` itself is excluded. */
function spellings(p: string): string[] {
  const out = new Set<string>();
  // Percent-encoding of each single character, lower- and upper-case hex.
  for (let i = 0; i < p.length; i++) {
    const h = hex(p.charAt(i));
    for (const e of [h.toLowerCase(), h.toUpperCase()]) out.add(`${p.slice(0, i)}%${e}${p.slice(i + 1)}`);
  }
  out.add(p.replace(/^\/api\//, '/%61%70%69/'));
  out.add(p.replace(/^\/api\//, '/%41%50%49/'));
  const segs = p.split('/').slice(1);
  const join = (xs: readonly string[]) => `/${xs.join('/')}`;
  // Case.
  out.add(p.toUpperCase());
  segs.forEach((seg, i) => {
    const up = [...segs];
    up[i] = seg.toUpperCase();
    out.add(join(up));
    const cap = [...segs];
    cap[i] = seg.charAt(0).toUpperCase() + seg.slice(1);
    out.add(join(cap));
    const matrix = [...segs];
    matrix[i] = `${seg};x=1`;
    out.add(join(matrix));
  });
  // At each segment boundary: dot segments (plain and encoded), duplicate slash, encoded slash, matrix bits.
  const inserts = [
    '.',
    '%2e',
    '%2E',
    'x/..',
    'x/%2e%2e',
    'x/%2E%2E',
    'x/.%2e',
    'x/%2e.',
    'x/..;',
    '',
    ';',
    '.;',
  ];
  for (let k = 0; k <= segs.length; k++) {
    for (const ins of inserts) out.add(join([...segs.slice(0, k), ...ins.split('/'), ...segs.slice(k)]));
    out.add(`${join(segs.slice(0, k))}%2f${segs.slice(k).join('/')}`);
  }
  // Every slash encoded / replaced.
  out.add(p.replaceAll('/', '%2f'));
  out.add(p.replaceAll('/', '%2F'));
  out.add(`/${p.slice(1).replaceAll('/', '%2F')}`);
  out.add(p.replaceAll('/', '\\'));
  out.add(`/${p.slice(1).replaceAll('/', '\\')}`);
  out.add(p.replaceAll('/', '//'));
  // Query, fragment, matrix, trailing junk.
  for (const suffix of [
    '/',
    '//',
    '/.',
    '/..',
    '.',
    '?',
    '?x=/console/',
    '?/console/',
    '#',
    '#/console/',
    '?#',
    ';',
    ';x=1',
    '/;',
    '%00',
    '%20',
    '%09',
    '%3F',
    '%3f',
    '%23',
    '%3b',
    '%2f',
  ]) {
    out.add(p + suffix);
  }
  // Prefixes that look public to a string test.
  for (const prefix of [
    '/console/..',
    '/console/%2e%2e',
    '/console/%2E%2E',
    '/console/x/..',
    '/console',
    '/console/',
    '/console/app.js/..',
    '/openapi.json/..',
    '/healthz/..',
    '/metrics/..',
    '/%2e%2e',
    '/..',
    '/.',
    '/',
  ]) {
    out.add(prefix + p);
  }
  // Absolute-form and authority-looking targets; overlong and full-width characters.
  out.add(`http://localhost${p}`);
  out.add(`https://127.0.0.1${p}`);
  out.add(`//localhost${p}`);
  out.add(p.replace(/^\/api\//, '/api%c0%af'));
  out.add(p.replace(/^\/api\//, '/%EF%BD%81pi/'));
  out.add(p.replace(/^\/api\//, '/api%e2%80%8b/'));
  out.delete(p);
  return [...out];
}

// ------------------------------------------------------------------ state snapshot

interface Snapshot {
  auditCount: number;
  lastAuditSeq: number | null;
  groups: unknown;
  identities: unknown;
  tables: Record<string, { rows: number; sha256: string }>;
}

async function snapshot(s: Stack, db: Database.Database): Promise<Snapshot> {
  const st = s.server.store;
  let auditCount = 0;
  let lastAuditSeq: number | null = null;
  let afterSeq: number | undefined;
  for (;;) {
    const page = await st.listAudit({ ...(afterSeq === undefined ? {} : { afterSeq }), limit: 1000 });
    auditCount += page.entries.length;
    const last = page.entries.at(-1);
    if (last) lastAuditSeq = last.seq;
    if (page.nextAfterSeq === null) break;
    afterSeq = page.nextAfterSeq;
  }
  const groups = [];
  for (const g of await st.listGroups()) {
    groups.push({
      g,
      epochs: await st.listKeyEpochs(g.sgId),
      members: (await st.listMembers(g.sgId)).map((m) => m.pneId).sort(),
    });
  }
  const identities = (await st.listIdentities()).map((i) => ({ id: i.id, revokedAt: i.revokedAt }));
  const tables: Snapshot['tables'] = {};
  const names = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
    name: string;
  }[];
  for (const { name } of names) {
    const rows = db.prepare(`SELECT * FROM "${name.replaceAll('"', '""')}"`).all();
    tables[name] = {
      rows: rows.length,
      sha256: createHash('sha256').update(JSON.stringify(rows)).digest('hex'),
    };
  }
  return { auditCount, lastAuditSeq, groups, identities, tables };
}

// ------------------------------------------------------------------ fixtures

let s: Stack;
let db: Database.Database;
// biome-ignore lint/suspicious/noExplicitAny: the OpenAPI document, read field by field
let doc: any;
/** A PNE identity in the store (the revocation target). */
let identity: string;

interface Op {
  method: string;
  template: string;
  security: unknown[];
  hasBody: boolean;
}

interface Ctx {
  sgId: string;
  member: string;
  identity: string;
  newPne: string;
  tokenName: string;
}

/** A body that would succeed, so that a bypass would show as a state change. */
const BODIES: Readonly<Record<string, (c: Ctx) => unknown>> = {
  'POST /api/v1/enrollment-tokens': () => ({ role: 'pne', ttlSec: 600 }),
  'POST /api/v1/service-groups': () => ({ name: 'evil' }),
  'PATCH /api/v1/service-groups/{sgId}': () => ({ sourceAuth: true, joinPolicy: 'open' }),
  'POST /api/v1/service-groups/{sgId}/members': (c) => ({ pneId: c.newPne }),
  'POST /api/v1/service-groups/{sgId}/members/batch': (c) => ({ pneIds: [c.newPne] }),
  'POST /api/v1/admin-tokens': () => ({ name: `evil-${randomUUID().slice(0, 8)}`, scope: 'admin' }),
};

const fill = (template: string, c: Ctx) =>
  template.replace(/\{(\w+)\}/g, (_m, name: string) => {
    if (name === 'sgId') return c.sgId;
    if (name === 'pneId') return c.member;
    if (name === 'id') return c.identity;
    if (name === 'name') return c.tokenName;
    throw new Error(`no value for path parameter ${name} of ${template}`);
  });

function operations(d: typeof doc): Op[] {
  const ops: Op[] = [];
  for (const [template, methods] of Object.entries(d.paths as Record<string, Record<string, unknown>>)) {
    for (const [m, raw] of Object.entries(methods)) {
      const op = raw as { security?: unknown[]; requestBody?: unknown };
      ops.push({
        method: m.toUpperCase(),
        template,
        security: op.security ?? d.security ?? [],
        hasBody: op.requestBody !== undefined,
      });
    }
  }
  // Revocation last: the other operations' contexts do not depend on that identity.
  return ops.sort((a, b) => Number(a.template.includes('/revoke')) - Number(b.template.includes('/revoke')));
}

/** A fresh Service Group with one member, so the canonical call with the token can succeed for every op. */
async function freshCtx(): Promise<Ctx> {
  const member = await enrolled(s, randomPne());
  const { sgId } = await s.server.admin.createGroup({
    name: `auth-${randomUUID().slice(0, 8)}`,
    members: [member],
    // No join update running late (20 ms after an add): the store snapshots compare only what requests did.
    updateOnJoin: false,
  });
  const tokenName = `t-${randomUUID().slice(0, 8)}`;
  await s.server.admin.createAdminToken(tokenName, 'read');
  return { sgId, member, identity, newPne: await enrolled(s, randomPne()), tokenName };
}

beforeAll(async () => {
  s = await startStack();
  identity = randomPne();
  // Written straight into the store: enrollment is not what this file tests.
  await s.server.store.putIdentity({
    id: identity,
    role: 'pne',
    certSerial: randomBytes(8).toString('hex'),
    certPem: s.caPem,
  });
  db = new Database(join(s.dataDir, 'cpns.db'), { readonly: true, fileMustExist: true });
  doc = (s.app as unknown as { swagger(): unknown }).swagger();
});

afterAll(async () => {
  db?.close();
  for (const a of agents.values()) a.destroy();
  await s?.close();
});

const operationKey = (op: Op) => `${op.method} ${op.template}`;
const isSuccessOrRedirect = (status: number) => status >= 200 && status < 400;

describe('deny by default: the OpenAPI operations', () => {
  it('every operation needs the bearer token except the health probes; every body has a test value', () => {
    const ops = operations(doc);
    expect(ops.length).toBeGreaterThanOrEqual(20);
    expect(
      ops
        .filter((op) => op.security.length === 0)
        .map(operationKey)
        .sort(),
    ).toEqual(['GET /healthz', 'GET /readyz']);
    for (const op of ops) if (op.hasBody) expect(BODIES[operationKey(op)], operationKey(op)).toBeDefined();
  });

  it('the state snapshot is stable when nothing happens', async () => {
    expect(await snapshot(s, db)).toEqual(await snapshot(s, db));
  });

  it('no spelling of any protected operation succeeds or changes state without the token or with a wrong one; ' +
    'the canonical spelling with the token works', async () => {
    const wrong = `Bearer ${'x'.repeat(s.token.length)}`;
    const violations: string[] = [];
    const statuses = new Map<number, number>();
    let sent = 0;
    for (const op of operations(doc)) {
      if (op.security.length === 0) continue;
      const key = operationKey(op);
      const c = await freshCtx();
      const canonical = fill(op.template, c);
      const bodyOf = BODIES[key];
      const body = bodyOf ? JSON.stringify(bodyOf(c)) : undefined;
      const cases = [canonical, ...spellings(canonical)].flatMap((path) => [
        { method: op.method, path, auth: undefined as string | undefined },
        { method: op.method, path, auth: wrong },
      ]);
      if (op.method === 'GET') cases.push({ method: 'HEAD', path: canonical, auth: undefined });
      const before = await snapshot(s, db);
      await pool(cases, 8, async (t) => {
        const method = t.method;
        let r: Raw;
        try {
          r = await send(s, method, t.path, {
            ...(t.auth === undefined ? {} : { auth: t.auth }),
            ...(body === undefined ? {} : { body }),
          });
        } catch (e) {
          violations.push(`${method} ${t.path}: no reply (${(e as Error).message})`);
          return;
        } finally {
          sent++;
        }
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (isSuccessOrRedirect(r.status)) {
          violations.push(`${method} ${t.path} (${t.auth ? 'wrong token' : 'no token'}) -> ${r.status}`);
        }
        if (t.path === canonical && r.status !== 401) {
          violations.push(`${method} ${t.path} canonical without a valid token -> ${r.status}, not 401`);
        }
        if (r.status === 401 && r.headers['cache-control'] !== 'no-store') {
          violations.push(`${method} ${t.path} 401 without cache-control: no-store`);
        }
      });
      const after = await snapshot(s, db);
      if (JSON.stringify(after) !== JSON.stringify(before)) violations.push(`${key}: state changed`);
      expect(after, key).toEqual(before);

      const ok = await send(s, op.method, canonical, {
        auth: `Bearer ${s.token}`,
        ...(body === undefined ? {} : { body }),
      });
      expect(ok.status, `${key} with the token: ${ok.body}`).toBeGreaterThanOrEqual(200);
      expect(ok.status, `${key} with the token: ${ok.body}`).toBeLessThan(300);
      if (
        ok.headers['content-type'] !== undefined &&
        !String(ok.headers['content-type']).startsWith('text/event')
      ) {
        expect(ok.headers['cache-control'], key).toBe('no-store');
      }
    }
    expect(violations).toEqual([]);
    expect(sent).toBeGreaterThan(4000);
    // Only refusals: unauthenticated (401), and router-level errors that never reach a handler.
    expect(
      [...statuses.keys()].every((st) => [400, 401, 404, 414].includes(st)),
      JSON.stringify([...statuses]),
    ).toBe(true);
  }, 240_000);

  it('refuses the right token in the wrong form', async () => {
    for (const auth of [
      s.token,
      `bearer ${s.token}`,
      `Basic ${s.token}`,
      `Bearer  ${s.token}`,
      `Bearer ${s.token.slice(0, -1)}`,
      `Bearer ${s.token}x`,
    ]) {
      const r = await send(s, 'GET', '/api/v1/service-groups', { auth });
      expect(r.status, auth === s.token ? 'bare token' : auth.replace(s.token, '<token>')).toBe(401);
    }
    const twice = await send(s, 'GET', '/api/v1/service-groups', {
      headers: { authorization: `Bearer ${s.token}, Bearer ${s.token}` },
    });
    expect(twice.status).toBe(401);
  });

  it('unknown routes: 401 without the token (deny by default), a bare 404 with it; other methods too', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/EVILMARKER'],
      ['GET', '/EVILMARKER'],
      ['GET', '/favicon.ico'],
      ['PUT', '/api/v1/service-groups'],
      ['DELETE', '/api/v1/audit'],
      ['OPTIONS', '/api/v1/service-groups'],
      ['POST', '/healthz'],
      ['TRACE', '/api/v1/pns'],
    ] as const) {
      const none = await send(s, method, path);
      expect(none.status, `${method} ${path}`).toBe(401);
      expect(JSON.parse(none.body)).toEqual({
        error: { code: 'UNAUTHORIZED', message: 'missing or invalid bearer token' },
      });
      expect(none.headers['cache-control']).toBe('no-store');
      const withToken = await send(s, method, path, { auth: `Bearer ${s.token}` });
      expect(withToken.status, `${method} ${path}`).toBe(404);
      if (method !== 'TRACE') {
        expect(JSON.parse(withToken.body)).toEqual({
          error: { code: 'NOT_FOUND', message: 'no such route' },
        });
      }
      expect(withToken.headers['cache-control']).toBe('no-store');
      expect(none.body + withToken.body).not.toContain('EVILMARKER');
    }
  });
});

describe('public routes', () => {
  it('/healthz and /readyz answer without a token', async () => {
    const h = await send(s, 'GET', '/healthz');
    expect(h.status).toBe(200);
    expect(JSON.parse(h.body)).toEqual({ status: 'ok' });
    expect(h.headers['cache-control']).toBe('no-store');
    const r = await send(s, 'GET', '/readyz');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ status: 'ready' });
    expect((await send(s, 'HEAD', '/healthz')).status).toBe(200);
  });

  it('the console files, the redirects to it and /openapi.json need no token', async () => {
    for (const p of ['/console/', '/console/index.html', '/console/app.js', '/console/style.css']) {
      const r = await send(s, 'GET', p);
      expect(r.status, p).toBe(200);
      expect(r.headers['content-security-policy'], p).toContain("default-src 'none'");
      expect(r.headers['cache-control'], p).toBe('no-cache');
    }
    for (const p of ['/', '/console']) {
      const r = await send(s, 'GET', p);
      expect(r.status, p).toBe(302);
      expect(r.headers.location, p).toBe('/console/');
    }
    const o = await send(s, 'GET', '/openapi.json');
    expect(o.status).toBe(200);
    expect(JSON.parse(o.body).openapi).toBe('3.0.3');
    // A public route's schema still applies: no file outside the console's three.
    expect((await send(s, 'GET', '/console/EVILMARKER.js')).status).toBe(400);
  });

  it('/metrics needs the token unless publicMetrics', async () => {
    const none = await send(s, 'GET', '/metrics');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(none.headers['cache-control']).toBe('no-store');
    for (const p of ['/%6detrics', '/metrics#', '/metrics?', '/Metrics', '/metrics/', '//metrics']) {
      expect(isSuccessOrRedirect((await send(s, 'GET', p)).status), p).toBe(false);
    }
    const ok = await send(s, 'GET', '/metrics', { auth: `Bearer ${s.token}` });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('cpns_service_groups');

    const pub = await startStack({ publicMetrics: true });
    try {
      const r = await send(pub, 'GET', '/metrics');
      expect(r.status).toBe(200);
      expect(r.body).toContain('cpns_service_groups');
      expect((await send(pub, 'GET', '/api/v1/service-groups')).status).toBe(401);
      const d = (pub.app as unknown as { swagger(): typeof doc }).swagger();
      expect(d.paths['/metrics'].get.security).toEqual([]);
    } finally {
      agents.get(pub)?.destroy();
      await pub.close();
    }
  });
});

describe('framework errors: the envelope, never the request bytes', () => {
  const MARK = 'EVILMARKER';
  const auth = () => `Bearer ${s.token}`;
  const expectEnvelope = (r: Raw, status: number, code: string) => {
    expect(r.status, r.body).toBe(status);
    const j = JSON.parse(r.body);
    expect(j.error.code).toBe(code);
    expect(typeof j.error.message).toBe('string');
    expect(Object.keys(j)).toEqual(['error']);
    expect(r.body).not.toContain(MARK);
    expect(r.body.toLowerCase()).not.toContain('fst_');
    expect(r.headers['cache-control']).toBe('no-store');
  };

  it('414 URI_TOO_LONG for a too-long path parameter, with or without the token', async () => {
    const long = `${MARK}${'a'.repeat(200)}`;
    for (const [method, path] of [
      ['GET', `/api/v1/service-groups/${long}`],
      ['POST', `/api/v1/service-groups/${long}/rekey`],
      ['GET', `/console/${long}`],
    ] as const) {
      expectEnvelope(await send(s, method, path), 414, 'URI_TOO_LONG');
      expectEnvelope(await send(s, method, path, { auth: auth() }), 414, 'URI_TOO_LONG');
    }
  });

  it('400 BAD_URL for broken percent-encoding anywhere in the path, with or without the token', async () => {
    for (const path of [
      `/api/v1/service-groups/${MARK}%zz`,
      `/api/v1/service-groups/${MARK}%`,
      `/api/v1/service-groups/%E0%A4${MARK}`,
      `/api/v1/service-groups/%zz${MARK}/key`,
      `/api/v1/${MARK}%zz`,
      `/%zz/${MARK}`,
    ]) {
      expectEnvelope(await send(s, 'GET', path), 400, 'BAD_URL');
      expectEnvelope(await send(s, 'GET', path, { auth: auth() }), 400, 'BAD_URL');
    }
  });

  it('413 TOO_LARGE, 415 UNSUPPORTED_MEDIA_TYPE, 400 MALFORMED and SCHEMA without echo', async () => {
    const big = JSON.stringify({ name: MARK + 'x'.repeat(70 * 1024) });
    expectEnvelope(
      await send(s, 'POST', '/api/v1/service-groups', { auth: auth(), body: big }),
      413,
      'TOO_LARGE',
    );
    // Without the token the body is never parsed: 401 first.
    expectEnvelope(await send(s, 'POST', '/api/v1/service-groups', { body: big }), 401, 'UNAUTHORIZED');
    expectEnvelope(
      await send(s, 'POST', '/api/v1/service-groups', { auth: auth(), body: MARK, type: `text/${MARK}` }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expectEnvelope(
      await send(s, 'POST', '/api/v1/service-groups', { auth: auth(), body: `{"name": ${MARK}` }),
      400,
      'MALFORMED',
    );
    expectEnvelope(
      await send(s, 'POST', '/api/v1/service-groups', {
        auth: auth(),
        body: JSON.stringify({ name: 'a', x: MARK }),
      }),
      400,
      'SCHEMA',
    );
    expectEnvelope(await send(s, 'GET', `/api/v1/service-groups/${MARK}`, { auth: auth() }), 400, 'SCHEMA');
  });

  it("requests node's parser refuses get the envelope too (400 MALFORMED, 431 HEADERS_TOO_LARGE)", async () => {
    const badLine = await sendRaw(s, `GET /api/v1/${MARK}\x01 HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(badLine).toMatch(/^HTTP\/1\.1 400 /);
    const [, badBody] = badLine.split('\r\n\r\n');
    expect(JSON.parse(badBody ?? '')).toEqual({ error: { code: 'MALFORMED', message: 'malformed request' } });
    expect(badLine).not.toContain(MARK);
    const huge = await sendRaw(
      s,
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ${MARK}${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(huge).toMatch(/^HTTP\/1\.1 431 /);
    expect(JSON.parse(huge.split('\r\n\r\n')[1] ?? '').error.code).toBe('HEADERS_TOO_LARGE');
    expect(huge).not.toContain(MARK);
  });
});
