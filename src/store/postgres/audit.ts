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
  const limit = q.limit === undefined ? v.DEFAULT_AUDIT_LIMIT : v.int(q.limit, 'limit', 1, v.MAX_AUDIT_LIMIT);
  const args: unknown[] = [
    q.afterSeq === undefined ? 0 : v.int(q.afterSeq, 'afterSeq', 0, Number.MAX_SAFE_INTEGER),
  ];
  const where = ['seq > $1'];
  if (q.sgId !== undefined) {
    args.push(v.sgId(q.sgId));
    where.push(`sg_id = $${args.length}`);
  }
  if (q.action !== undefined) {
    args.push(v.action(q.action));
    where.push(`action = $${args.length}`);
  }
  args.push(limit + 1);
  // Fetch one more than asked to know whether another page exists.
  const rows = await all<AuditRow>(
    ctx.pool,
    `SELECT * FROM audit_log WHERE ${where.join(' AND ')} ORDER BY seq LIMIT $${args.length}`,
    args,
  );
  const more = rows.length > limit;
  const entries = rows.slice(0, limit).map(toEntry);
  return { entries, nextAfterSeq: more ? entries[entries.length - 1]!.seq : null };
}
