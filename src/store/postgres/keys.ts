/**
 * Group Keys. Epoch allocation rule (docs/store.md): the group row carries epoch_hwm, the highest epoch ever
 * allocated. rotateGroupKey is ONE transaction that locks the group row (SELECT ... FOR UPDATE), reads epoch_hwm,
 * writes hwm + 1 (a compare-and-set on the old value), inserts the sealed key and the key's audit row (with that
 * epoch), and commits them together: the row lock makes one connection, on one node, the single writer of a
 * group's epochs at a time, while other groups rotate in parallel. Every committed epoch has exactly one
 * key.create/key.update audit row, whatever the crash.
 * Pruning key rows never lowers epoch_hwm, and deleted group ids are retired, so an epoch number is never reused.
 */
import { StoreError } from '../errors.js';
import type { GroupKey, KeyMeta, RotateOptions } from '../store.js';
import * as v from '../validate.js';
import { insertAudit } from './audit.js';
import { all, type Ctx, one, type Queryable, relaxCommit, run, tx } from './db.js';
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

export async function rotateGroupKey(
  ctx: Ctx,
  sgId: string,
  key: Uint8Array,
  reason: string,
  opts: RotateOptions,
): Promise<KeyMeta> {
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
  return tx(ctx, async (c) => {
    // The single-writer lock: a concurrent rotation of this group (any pool, any node) waits here until we
    // commit or roll back, then reads the new high-water mark.
    const g = await one<{ epoch_hwm: number }>(
      c,
      'SELECT epoch_hwm FROM service_groups WHERE sg_id = $1 FOR UPDATE',
      [id],
    );
    if (g === undefined) throw new StoreError('NOT_FOUND', 'no such service group', 'sgId');
    if (g.epoch_hwm >= v.MAX_EPOCH)
      throw new StoreError('EPOCH_EXHAUSTED', 'group epoch space exhausted', 'sgId');
    const epoch = g.epoch_hwm + 1;
    const sealed = ctx.sealer.seal(k, 'gk', id, epoch);
    // The WHERE on the old value makes the allocation a compare-and-set even without the lock.
    const changed = await run(
      c,
      'UPDATE service_groups SET epoch_hwm = $1 WHERE sg_id = $2 AND epoch_hwm = $3',
      [epoch, id, g.epoch_hwm],
    );
    if (changed !== 1) throw new StoreError('BUSY', 'concurrent epoch allocation', 'sgId');
    await run(
      c,
      `INSERT INTO group_keys (sg_id, epoch, key_nonce, key_ct, created_at, reason, activate_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [id, epoch, sealed.nonce, sealed.ct, at, why, activateAt],
    );
    // The outbox row before the audit row: a failing audit insert must also take the outbox row back (tested).
    if (o.outbox === true)
      await insertOutbox(c, at, 'key.epoch', { sgId: id, epoch, reason: why, ...committer });
    await insertAudit(c, { ...audit, epoch });
    return { sgId: id, epoch, createdAt: at, reason: why, activateAt };
  });
}

/** Epoch of the key current at `now` (0 if none); shared with delivery status. */
export async function currentEpoch(q: Queryable, sgId: string, now: number): Promise<number> {
  const r = await one<{ e: number | null }>(
    q,
    `SELECT MAX(epoch) AS e FROM group_keys
     WHERE sg_id = $1 AND (activate_at IS NULL OR activate_at <= $2)`,
    [sgId, now],
  );
  return r?.e ?? 0;
}

export async function getCurrentKey(ctx: Ctx, sgId: string, now?: number): Promise<GroupKey | undefined> {
  const id = v.sgId(sgId);
  const when = now === undefined ? ctx.now() : v.time(now, 'now');
  const r = await one<KeyRow>(
    ctx.pool,
    `SELECT * FROM group_keys WHERE sg_id = $1 AND (activate_at IS NULL OR activate_at <= $2)
     ORDER BY epoch DESC LIMIT 1`,
    [id, when],
  );
  return r === undefined ? undefined : decrypt(ctx, r);
}

export async function getKey(ctx: Ctx, sgId: string, epoch: number): Promise<GroupKey | undefined> {
  const r = await one<KeyRow>(ctx.pool, 'SELECT * FROM group_keys WHERE sg_id = $1 AND epoch = $2', [
    v.sgId(sgId),
    v.epoch(epoch),
  ]);
  return r === undefined ? undefined : decrypt(ctx, r);
}

export async function listKeyEpochs(ctx: Ctx, sgId: string): Promise<KeyMeta[]> {
  const rows = await all<KeyRow>(
    ctx.pool,
    `SELECT ${META_COLS} FROM group_keys WHERE sg_id = $1 ORDER BY epoch`,
    [v.sgId(sgId)],
  );
  return rows.map(toMeta);
}

export async function pruneKeys(ctx: Ctx, sgId: string, keepFromEpoch: number): Promise<number> {
  const id = v.sgId(sgId);
  const keep = v.epoch(keepFromEpoch, 'keepFromEpoch');
  // Garbage collection: a prune undone by a crash is done again by the next one (docs/store.md).
  return tx(ctx, async (c) => {
    await relaxCommit(c);
    const n = await run(c, 'DELETE FROM group_keys WHERE sg_id = $1 AND epoch < $2', [id, keep]);
    await run(c, 'DELETE FROM relay_marks WHERE sg_id = $1 AND epoch < $2', [id, keep]);
    // Old delivery history goes too, except each member's / GW's latest ack (delivery status needs it).
    await run(
      c,
      `DELETE FROM deliveries WHERE sg_id = $1 AND epoch < $2 AND epoch < (
         SELECT MAX(d2.epoch) FROM deliveries d2 WHERE d2.sg_id = deliveries.sg_id AND d2.pne_id = deliveries.pne_id)`,
      [id, keep],
    );
    await run(
      c,
      `DELETE FROM gw_deliveries WHERE sg_id = $1 AND epoch < $2 AND epoch < (
         SELECT MAX(d2.epoch) FROM gw_deliveries d2 WHERE d2.sg_id = gw_deliveries.sg_id AND d2.gw_id = gw_deliveries.gw_id)`,
      [id, keep],
    );
    return n;
  });
}
