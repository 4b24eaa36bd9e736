/** Admin API tokens (docs/operator.md "Admin tokens"): name, scope, SHA-256 of the token; never the token. */
import { StoreError } from '../errors.js';
import type { AdminToken, NewAdminToken, NewAuditEntry } from '../store.js';
import * as v from '../validate.js';
import { insertAudit } from './audit.js';
import { all, type Ctx, one, run, tx } from './db.js';

interface AdminTokenRow {
  name: string;
  scope: AdminToken['scope'];
  created_at: number;
  revoked_at: number | null;
}

const toToken = (r: AdminTokenRow): AdminToken => ({
  name: r.name,
  scope: r.scope,
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
});

const COLUMNS = 'name, scope, created_at, revoked_at';

export async function createAdminToken(
  ctx: Ctx,
  t: NewAdminToken,
  opts: { readonly audit?: readonly NewAuditEntry[] } = {},
): Promise<AdminToken> {
  const name = v.adminTokenName(t.name);
  const scope = v.adminScope(t.scope);
  const hash = v.tokenHash(t.tokenHash);
  const now = t.now === undefined ? ctx.now() : v.time(t.now, 'now');
  const audit = v.audits(opts.audit, now);
  return tx(ctx, async (c) => {
    // ON CONFLICT DO NOTHING: a concurrent creator of the same name (any node) waits on the key and inserts nothing
    const n = await run(
      c,
      `INSERT INTO admin_tokens (name, scope, token_hash, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT DO NOTHING`,
      [name, scope, hash, now],
    );
    if (n !== 1) throw new StoreError('CONFLICT', 'an admin token with this name exists', 'name');
    for (const a of audit) await insertAudit(c, a);
    return { name, scope, createdAt: now, revokedAt: null };
  });
}

export async function listAdminTokens(ctx: Ctx): Promise<AdminToken[]> {
  return (await all<AdminTokenRow>(ctx.pool, `SELECT ${COLUMNS} FROM admin_tokens ORDER BY name`)).map(
    toToken,
  );
}

export async function revokeAdminToken(
  ctx: Ctx,
  name: string,
  at?: number,
  opts: { readonly audit?: readonly NewAuditEntry[] } = {},
): Promise<AdminToken> {
  const n = v.adminTokenName(name);
  const when = at === undefined ? ctx.now() : v.time(at, 'at');
  const audit = v.audits(opts.audit, when);
  return tx(ctx, async (c) => {
    await run(c, 'UPDATE admin_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL', [when, n]);
    const row = await one<AdminTokenRow>(c, `SELECT ${COLUMNS} FROM admin_tokens WHERE name = $1`, [n]);
    if (row === undefined) throw new StoreError('NOT_FOUND', 'no such admin token', 'name');
    for (const a of audit) await insertAudit(c, a);
    return toToken(row);
  });
}

export async function findAdminToken(ctx: Ctx, tokenHash: string): Promise<AdminToken | undefined> {
  const hash = v.tokenHash(tokenHash);
  const row = await one<AdminTokenRow>(
    ctx.pool,
    `SELECT ${COLUMNS} FROM admin_tokens WHERE token_hash = $1`,
    [hash],
  );
  return row === undefined ? undefined : toToken(row);
}
