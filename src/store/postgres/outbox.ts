/** The outbox of changes for the other server nodes (docs/cluster.md): written in the change's transaction. */
import type { JsonObject, OutboxEntry, OutboxWrite } from '../store.js';
import * as v from '../validate.js';
import { all, type Ctx, type Queryable, run, tx } from './db.js';

interface OutboxRow {
  seq: number;
  at: number;
  kind: string;
  body: JsonObject;
}

/** Inserts a row; on a transaction's client, the transaction covers it. */
export async function insertOutbox(q: Queryable, at: number, kind: string, body: JsonObject): Promise<void> {
  await run(q, 'INSERT INTO outbox (at, kind, body) VALUES ($1, $2, $3)', [at, kind, JSON.stringify(body)]);
}

/** Inserts validated rows (validate.ts outboxWrites: bodies already encoded) on the transaction's client. */
export async function insertOutboxRows(
  q: Queryable,
  at: number,
  rows: readonly { kind: string; body: string }[],
): Promise<void> {
  for (const r of rows)
    await run(q, 'INSERT INTO outbox (at, kind, body) VALUES ($1, $2, $3)', [at, r.kind, r.body]);
}

export async function appendOutbox(ctx: Ctx, rows: readonly OutboxWrite[], at?: number): Promise<void> {
  const out = v.outboxWrites(rows);
  const when = at === undefined ? ctx.now() : v.time(at, 'at');
  await tx(ctx, (c) => insertOutboxRows(c, when, out));
}

export async function listOutbox(q: Queryable, limit?: number): Promise<OutboxEntry[]> {
  const n = v.outboxLimit(limit);
  const rows = await all<OutboxRow>(q, 'SELECT seq, at, kind, body FROM outbox ORDER BY seq LIMIT $1', [n]);
  return rows.map((r) => ({ seq: r.seq, at: r.at, kind: r.kind, body: r.body }));
}

export async function deleteOutbox(q: Queryable, seqs: readonly number[]): Promise<void> {
  const ids = v.outboxSeqs(seqs);
  if (ids.length > 0) await run(q, 'DELETE FROM outbox WHERE seq = ANY($1::bigint[])', [ids]);
}
