/** Admin API tokens (docs/operator.md "Admin tokens"): name, scope, SHA-256 of the token; never the token. */
import { StoreError } from '../errors.js';
import type { AdminToken, NewAdminToken, NewAuditEntry } from '../store.js';
import * as v from '../validate.js';
import { insertAudit } from './audit.js';
import { type Ctx, tx } from './db.js';

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

export function createAdminToken(
  ctx: Ctx,
  t: NewAdminToken,
  opts: { readonly audit?: readonly NewAuditEntry[] } = {},
): AdminToken {
  const name = v.adminTokenName(t.name);
  const scope = v.adminScope(t.scope);
  const hash = v.tokenHash(t.tokenHash);
  const now = t.now === undefined ? ctx.now() : v.time(t.now, 'now');
  const audit = v.audits(opts.audit, now);
  return tx(ctx.db, () => {
    const dup = ctx.db.prepare('SELECT 1 FROM admin_tokens WHERE name = ? OR token_hash = ?').get(name, hash);
    if (dup !== undefined) throw new StoreError('CONFLICT', 'an admin token with this name exists', 'name');
    ctx.db
      .prepare('INSERT INTO admin_tokens (name, scope, token_hash, created_at) VALUES (?, ?, ?, ?)')
      .run(name, scope, hash, now);
    for (const a of audit) insertAudit(ctx, a);
    return { name, scope, createdAt: now, revokedAt: null };
  });
}

export function listAdminTokens(ctx: Ctx): AdminToken[] {
  const rows = ctx.db.prepare(`SELECT ${COLUMNS} FROM admin_tokens ORDER BY name`).all() as AdminTokenRow[];
  return rows.map(toToken);
}

export function revokeAdminToken(
  ctx: Ctx,
  name: string,
  at?: number,
  opts: { readonly audit?: readonly NewAuditEntry[] } = {},
): AdminToken {
  const n = v.adminTokenName(name);
  const when = at === undefined ? ctx.now() : v.time(at, 'at');
  const audit = v.audits(opts.audit, when);
  return tx(ctx.db, () => {
    ctx.db
      .prepare('UPDATE admin_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL')
      .run(when, n);
    const row = ctx.db.prepare(`SELECT ${COLUMNS} FROM admin_tokens WHERE name = ?`).get(n) as
      | AdminTokenRow
      | undefined;
    if (row === undefined) throw new StoreError('NOT_FOUND', 'no such admin token', 'name');
    for (const a of audit) insertAudit(ctx, a);
    return toToken(row);
  });
}

export function findAdminToken(ctx: Ctx, tokenHash: string): AdminToken | undefined {
  const hash = v.tokenHash(tokenHash);
  const row = ctx.db.prepare(`SELECT ${COLUMNS} FROM admin_tokens WHERE token_hash = ?`).get(hash) as
    | AdminTokenRow
    | undefined;
  return row === undefined ? undefined : toToken(row);
}
