/**
 * Group Keys. Epoch allocation rule: the group row carries epoch_hwm, the highest epoch ever allocated.
 * rotateGroupKey reads it, writes hwm + 1, inserts the encrypted key and the key's audit row (with that epoch),
 * all in one BEGIN IMMEDIATE transaction (SQLite's single writer lock; PostgreSQL: SELECT ... FOR UPDATE on the
 * group row): every committed epoch has exactly one key.create/key.update audit row, whatever the crash.
 * Pruning key rows never lowers epoch_hwm, and deleted group ids are retired, so an epoch number is never reused.
 */
import { StoreError } from '../errors.js';
import type { GroupKey, KeyMeta, RotateOptions } from '../store.js';
import * as v from '../validate.js';
import { insertAudit } from './audit.js';
import { type Ctx, relaxedTx, tx } from './db.js';
import { insertOutbox } from './outbox.js';

interface KeyRow {
  sg_id: string;
  epoch: number;
  key_nonce: Buffer;
  key_ct: Buffer;
  created_at: number;
  reason: string;
  activate_at: number | null;
}

const META_COLS = 'sg_id, epoch, created_at, reason, activate_at';

const toMeta = (r: Omit<KeyRow, 'key_nonce' | 'key_ct'>): KeyMeta => ({
  sgId: r.sg_id,
  epoch: r.epoch,
  createdAt: r.created_at,
  reason: r.reason,
  activateAt: r.activate_at,
});

function decrypt(ctx: Ctx, r: KeyRow): GroupKey {
  const key = ctx.sealer.open({ nonce: r.key_nonce, ct: r.key_ct }, 'gk', r.sg_id, r.epoch);
  if (key.length !== 32) throw new StoreError('STORE_CORRUPT', 'stored group key has a wrong length', 'key');
  return { ...toMeta(r), key };
}

export function rotateGroupKey(
  ctx: Ctx,
  sgId: string,
  key: Uint8Array,
  reason: string,
  opts: RotateOptions,
): KeyMeta {
  const id = v.sgId(sgId);
  const k = v.groupKey(key);
  const why = v.reason(reason);
  const o: Partial<RotateOptions> = opts ?? {};
  const committer = {
    ...(o.node === undefined ? {} : { node: v.clusterNodeId(o.node, 'node') }),
    ...(o.updateId === undefined ? {} : { updateId: v.uuid(o.updateId, 'updateId') }),
  };
  const activateAt = v.optional(o.activateAt, (x) => v.time(x, 'activateAt'));
  const at = o.at === undefined ? ctx.now() : v.time(o.at, 'at');
  // Validated before any query, like appendAudit: a bad audit entry fails the rotation, nothing is written.
  const audit = v.keyAudit(o.audit, id, at);
  return tx(ctx.db, () => {
    const g = ctx.db.prepare('SELECT epoch_hwm FROM service_groups WHERE sg_id = ?').get(id) as
      | { epoch_hwm: number }
      | undefined;
    if (g === undefined) throw new StoreError('NOT_FOUND', 'no such service group', 'sgId');
    if (g.epoch_hwm >= v.MAX_EPOCH)
      throw new StoreError('EPOCH_EXHAUSTED', 'group epoch space exhausted', 'sgId');
    const epoch = g.epoch_hwm + 1;
    const sealed = ctx.sealer.seal(k, 'gk', id, epoch);
    // The WHERE on the old value makes the allocation a compare-and-set even without the lock.
    const upd = ctx.db
      .prepare('UPDATE service_groups SET epoch_hwm = ? WHERE sg_id = ? AND epoch_hwm = ?')
      .run(epoch, id, g.epoch_hwm);
    if (upd.changes !== 1) throw new StoreError('BUSY', 'concurrent epoch allocation', 'sgId');
    ctx.db
      .prepare(
        `INSERT INTO group_keys (sg_id, epoch, key_nonce, key_ct, created_at, reason, activate_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(id, epoch, sealed.nonce, sealed.ct, at, why, activateAt);
    // The outbox row before the audit row: a failing audit insert must also take the outbox row back (tested).
    if (o.outbox === true) insertOutbox(ctx, at, 'key.epoch', { sgId: id, epoch, reason: why, ...committer });
    insertAudit(ctx, { ...audit, epoch });
    return { sgId: id, epoch, createdAt: at, reason: why, activateAt };
  });
}

/** Epoch of the key current at `now` (0 if none); shared with delivery status. */
export function currentEpoch(ctx: Ctx, sgId: string, now: number): number {
  const r = ctx.db
    .prepare(
      `SELECT MAX(epoch) AS e FROM group_keys
       WHERE sg_id = ? AND (activate_at IS NULL OR activate_at <= ?)`,
    )
    .get(sgId, now) as { e: number | null };
  return r.e ?? 0;
}

export function getCurrentKey(ctx: Ctx, sgId: string, now?: number): GroupKey | undefined {
  const id = v.sgId(sgId);
  const when = now === undefined ? ctx.now() : v.time(now, 'now');
  const r = ctx.db
    .prepare(
      `SELECT * FROM group_keys WHERE sg_id = ? AND (activate_at IS NULL OR activate_at <= ?)
       ORDER BY epoch DESC LIMIT 1`,
    )
    .get(id, when) as KeyRow | undefined;
  return r === undefined ? undefined : decrypt(ctx, r);
}

export function getKey(ctx: Ctx, sgId: string, epoch: number): GroupKey | undefined {
  const r = ctx.db
    .prepare('SELECT * FROM group_keys WHERE sg_id = ? AND epoch = ?')
    .get(v.sgId(sgId), v.epoch(epoch)) as KeyRow | undefined;
  return r === undefined ? undefined : decrypt(ctx, r);
}

export function listKeyEpochs(ctx: Ctx, sgId: string): KeyMeta[] {
  const rows = ctx.db
    .prepare(`SELECT ${META_COLS} FROM group_keys WHERE sg_id = ? ORDER BY epoch`)
    .all(v.sgId(sgId)) as KeyRow[];
  return rows.map(toMeta);
}

export function pruneKeys(ctx: Ctx, sgId: string, keepFromEpoch: number): number {
  const id = v.sgId(sgId);
  const keep = v.epoch(keepFromEpoch, 'keepFromEpoch');
  // Garbage collection: a prune undone by a power cut is done again by the next one (docs/store.md).
  return relaxedTx(ctx.db, () => {
    const n = ctx.db.prepare('DELETE FROM group_keys WHERE sg_id = ? AND epoch < ?').run(id, keep).changes;
    ctx.db.prepare('DELETE FROM relay_marks WHERE sg_id = ? AND epoch < ?').run(id, keep);
    // Old delivery history goes too, except each member's / GW's latest ack (delivery status needs it).
    ctx.db
      .prepare(
        `DELETE FROM deliveries WHERE sg_id = ? AND epoch < ? AND epoch < (
           SELECT MAX(d2.epoch) FROM deliveries d2 WHERE d2.sg_id = deliveries.sg_id AND d2.pne_id = deliveries.pne_id)`,
      )
      .run(id, keep);
    ctx.db
      .prepare(
        `DELETE FROM gw_deliveries WHERE sg_id = ? AND epoch < ? AND epoch < (
           SELECT MAX(d2.epoch) FROM gw_deliveries d2 WHERE d2.sg_id = gw_deliveries.sg_id AND d2.gw_id = gw_deliveries.gw_id)`,
      )
      .run(id, keep);
    return n;
  });
}
