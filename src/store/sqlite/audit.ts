/** Append-only audit log of key and membership operations (never key material; SQL triggers forbid UPDATE/DELETE). */
import type { AuditEntry, AuditPage, AuditQuery, JsonObject, NewAuditEntry } from '../store.js';
import * as v from '../validate.js';
import type { Ctx } from './db.js';

interface AuditRow {
  seq: number;
  at: number;
  actor: string;
  action: string;
  sg_id: string | null;
  subject: string | null;
  epoch: number | null;
  reason: string | null;
  detail: string | null;
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
  detail: r.detail === null ? null : (JSON.parse(r.detail) as JsonObject),
});

/** Inserts a validated audit row; the callers' transaction (if any) covers it. Returns its seq. */
export function insertAudit(ctx: Ctx, a: v.AuditValues): number {
  const r = ctx.db
    .prepare(
      `INSERT INTO audit_log (at, actor, action, sg_id, subject, epoch, reason, detail)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(a.at, a.actor, a.action, a.sgId, a.subject, a.epoch, a.reason, a.detail);
  return Number(r.lastInsertRowid);
}

export function appendAudit(ctx: Ctx, e: NewAuditEntry): number {
  return insertAudit(ctx, v.auditEntry(e, ctx.now()));
}

export function listAudit(ctx: Ctx, q: AuditQuery = {}): AuditPage {
  const f = v.auditQuery(q);
  const where: string[] = [];
  const args: unknown[] = [];
  for (const [column, op, value] of f.conditions) {
    where.push(`${column} ${op} ?`);
    args.push(value);
  }
  // Fetch one more than asked to know whether another page exists.
  const rows = ctx.db
    .prepare(
      `SELECT * FROM audit_log ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY seq ${f.desc ? 'DESC' : 'ASC'} LIMIT ?`,
    )
    .all(...args, f.limit + 1) as AuditRow[];
  return v.auditPage(rows.map(toEntry), f);
}
