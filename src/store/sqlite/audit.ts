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
  const limit = q.limit === undefined ? v.DEFAULT_AUDIT_LIMIT : v.int(q.limit, 'limit', 1, v.MAX_AUDIT_LIMIT);
  const where = ['seq > ?'];
  const args: unknown[] = [
    q.afterSeq === undefined ? 0 : v.int(q.afterSeq, 'afterSeq', 0, Number.MAX_SAFE_INTEGER),
  ];
  if (q.sgId !== undefined) {
    where.push('sg_id = ?');
    args.push(v.sgId(q.sgId));
  }
  if (q.action !== undefined) {
    where.push('action = ?');
    args.push(v.action(q.action));
  }
  // Fetch one more than asked to know whether another page exists.
  const rows = ctx.db
    .prepare(`SELECT * FROM audit_log WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`)
    .all(...args, limit + 1) as AuditRow[];
  const more = rows.length > limit;
  const entries = rows.slice(0, limit).map(toEntry);
  return { entries, nextAfterSeq: more ? entries[entries.length - 1]!.seq : null };
}
