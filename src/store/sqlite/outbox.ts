/** The outbox of changes for the other server nodes (docs/cluster.md): written in the change's transaction. */
import type { JsonObject, OutboxEntry, OutboxWrite } from '../store.js';
import * as v from '../validate.js';
import type { Ctx } from './db.js';

interface OutboxRow {
  seq: number;
  at: number;
  kind: string;
  body: string;
}

/** Inserts a row; inside a transaction, that transaction covers it. */
export function insertOutbox(ctx: Ctx, at: number, kind: string, body: JsonObject): void {
  ctx.db.prepare('INSERT INTO outbox (at, kind, body) VALUES (?, ?, ?)').run(at, kind, JSON.stringify(body));
}

/** Inserts validated rows (validate.ts outboxWrites: bodies already encoded) in the caller's transaction. */
export function insertOutboxRows(
  ctx: Ctx,
  at: number,
  rows: readonly { kind: string; body: string }[],
): void {
  if (rows.length === 0) return;
  const ins = ctx.db.prepare('INSERT INTO outbox (at, kind, body) VALUES (?, ?, ?)');
  for (const r of rows) ins.run(at, r.kind, r.body);
}

export function appendOutbox(ctx: Ctx, rows: readonly OutboxWrite[], at?: number): void {
  const out = v.outboxWrites(rows);
  const when = at === undefined ? ctx.now() : v.time(at, 'at');
  ctx.db.transaction(() => insertOutboxRows(ctx, when, out))();
}

export function listOutbox(ctx: Ctx, limit?: number): OutboxEntry[] {
  const n = v.outboxLimit(limit);
  const rows = ctx.db
    .prepare('SELECT seq, at, kind, body FROM outbox ORDER BY seq LIMIT ?')
    .all(n) as OutboxRow[];
  return rows.map((r) => ({ seq: r.seq, at: r.at, kind: r.kind, body: JSON.parse(r.body) as JsonObject }));
}

export function deleteOutbox(ctx: Ctx, seqs: readonly number[]): void {
  const ids = v.outboxSeqs(seqs);
  const del = ctx.db.prepare('DELETE FROM outbox WHERE seq = ?');
  ctx.db.transaction(() => {
    for (const s of ids) del.run(s);
  })();
}
