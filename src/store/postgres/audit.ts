/** Append-only audit log of key and membership operations (never key material; triggers forbid UPDATE/DELETE/TRUNCATE). */
import type { AuditEntry, AuditPage, AuditQuery, JsonObject, NewAuditEntry } from '../store.js';
import * as v from '../validate.js';
import { all, type Ctx, one, type Queryable } from './db.js';

interface AuditRow {
  seq: number;
  at: number;
  actor: string;
  action: string;
  sg_id: string | null;
  subject: string | null;
  epoch: number | null;
  reason: string | null;
  detail: JsonObject | null;
}

const toEntry = (r: AuditRow): AuditEntry => ({
  seq: r.seq,
  at: r.at,
  actor: r.actor,
  action: r.action,
  sgId: r.sg_id,
  subject: r.subject,
  epoch: r.epoch,
  reason: r.reason,
  detail: r.detail,
});

/** Inserts a validated audit row; on a transaction's client, the transaction covers it. Returns its seq. */
export async function insertAudit(q: Queryable, a: v.AuditValues): Promise<number> {
  const r = await one<{ seq: number }>(
    q,
    `INSERT INTO audit_log (at, actor, action, sg_id, subject, epoch, reason, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) RETURNING seq`,
    [a.at, a.actor, a.action, a.sgId, a.subject, a.epoch, a.reason, a.detail],
  );
  return r!.seq;
}

export async function appendAudit(ctx: Ctx, e: NewAuditEntry): Promise<number> {
  return insertAudit(ctx.pool, v.auditEntry(e, ctx.now()));
}

export async function listAudit(ctx: Ctx, q: AuditQuery = {}): Promise<AuditPage> {
  const f = v.auditQuery(q);
  const where: string[] = [];
  const args: unknown[] = [];
  for (const [column, op, value] of f.conditions) {
    args.push(value);
    where.push(`${column} ${op} $${args.length}`);
  }
  args.push(f.limit + 1);
  // Fetch one more than asked to know whether another page exists.
  const rows = await all<AuditRow>(
    ctx.pool,
    `SELECT * FROM audit_log ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY seq ${f.desc ? 'DESC' : 'ASC'} LIMIT $${args.length}`,
    args,
  );
  return v.auditPage(rows.map(toEntry), f);
}
