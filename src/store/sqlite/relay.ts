/** Relay high-water marks: highest counter relayed per (SG, epoch, sender, instance), the replay anchors. */
import type { RelayMark } from '../store.js';
import * as v from '../validate.js';
import type { Ctx } from './db.js';

export function upsertRelayMark(ctx: Ctx, m: RelayMark): void {
  const sgId = v.sgId(m.sgId);
  const epoch = v.epoch(m.epoch);
  const sender = v.sender(m.sender);
  const instance = v.instance(m.instance);
  const counter = v.int(m.counter, 'counter', 0, v.MAX_COUNTER);
  // FK on sg_id: an unknown group is NOT_FOUND (mapped from the constraint error).
  ctx.db
    .prepare(
      `INSERT INTO relay_marks (sg_id, epoch, sender, instance, counter, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (sg_id, epoch, sender, instance) DO UPDATE
         SET counter = excluded.counter, updated_at = excluded.updated_at
         WHERE excluded.counter > relay_marks.counter`,
    )
    .run(sgId, epoch, sender, instance, counter, ctx.now());
}

export function listRelayMarks(ctx: Ctx, sgId: string, epoch: number): RelayMark[] {
  const rows = ctx.db
    .prepare(
      'SELECT sg_id, epoch, sender, instance, counter FROM relay_marks WHERE sg_id = ? AND epoch = ? ORDER BY sender, instance',
    )
    .all(v.sgId(sgId), v.epoch(epoch)) as {
    sg_id: string;
    epoch: number;
    sender: string;
    instance: string;
    counter: number;
  }[];
  return rows.map((r) => ({
    sgId: r.sg_id,
    epoch: r.epoch,
    sender: r.sender,
    instance: r.instance,
    counter: r.counter,
  }));
}
