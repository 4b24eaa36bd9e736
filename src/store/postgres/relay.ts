/** Relay high-water marks: highest counter relayed per (SG, epoch, sender, instance), the replay anchors. */
import type { RelayMark } from '../store.js';
import * as v from '../validate.js';
import { all, type Ctx, run } from './db.js';

export async function upsertRelayMark(ctx: Ctx, m: RelayMark): Promise<void> {
  const sgId = v.sgId(m.sgId);
  const epoch = v.epoch(m.epoch);
  const sender = v.sender(m.sender);
  const instance = v.instance(m.instance);
  const counter = v.int(m.counter, 'counter', 0, v.MAX_COUNTER);
  // FK on sg_id: an unknown group is NOT_FOUND (mapped from the constraint error, SQLSTATE 23503).
  await run(
    ctx.pool,
    `INSERT INTO relay_marks (sg_id, epoch, sender, instance, counter, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (sg_id, epoch, sender, instance) DO UPDATE
       SET counter = excluded.counter, updated_at = excluded.updated_at
       WHERE excluded.counter > relay_marks.counter`,
    [sgId, epoch, sender, instance, counter, ctx.now()],
  );
}

export async function listRelayMarks(ctx: Ctx, sgId: string, epoch: number): Promise<RelayMark[]> {
  const rows = await all<{ sg_id: string; epoch: number; sender: string; instance: string; counter: number }>(
    ctx.pool,
    'SELECT sg_id, epoch, sender, instance, counter FROM relay_marks WHERE sg_id = $1 AND epoch = $2 ORDER BY sender, instance',
    [v.sgId(sgId), v.epoch(epoch)],
  );
  return rows.map((r) => ({
    sgId: r.sg_id,
    epoch: r.epoch,
    sender: r.sender,
    instance: r.instance,
    counter: r.counter,
  }));
}
