/** Service Groups, their members and invitations. */
import { randomUUID } from 'node:crypto';
import type { Suite } from '../../core/crypto/aead.js';
import { StoreError } from '../errors.js';
import type {
  DeletedGroup,
  GroupAuditOptions,
  JoinPolicy,
  JsonObject,
  Member,
  NewServiceGroup,
  ServiceGroup,
  ServiceGroupPatch,
} from '../store.js';
import * as v from '../validate.js';
import { insertAudit } from './audit.js';
import { all, type Ctx, one, type Queryable, run, tx } from './db.js';
import { insertOutboxRows } from './outbox.js';

interface GroupRow {
  sg_id: string;
  name: string;
  owner_id: string;
  join_policy: JoinPolicy;
  suite: number;
  source_auth: boolean;
  update_on_join: boolean;
  rekey_interval_sec: number | null;
  delivery_policy: JsonObject | null;
  created_at: number;
  epoch_hwm: number;
}

const toGroup = (r: GroupRow): ServiceGroup => ({
  sgId: r.sg_id,
  name: r.name,
  ownerId: r.owner_id,
  joinPolicy: r.join_policy,
  suite: r.suite as Suite,
  sourceAuth: r.source_auth,
  updateOnJoin: r.update_on_join,
  rekeyIntervalSec: r.rekey_interval_sec,
  deliveryPolicy: r.delivery_policy,
  createdAt: r.created_at,
  epochHighWater: r.epoch_hwm,
});

const MAX_REKEY_INTERVAL_SEC = 366 * 24 * 3600;
const rekeyInterval = (x: number) => v.int(x, 'rekeyIntervalSec', 1, MAX_REKEY_INTERVAL_SEC);
const policy = (x: JsonObject) => v.jsonObject(x, 'deliveryPolicy', v.MAX_POLICY_JSON);

export async function readGroup(q: Queryable, sgId: string, lock = false): Promise<ServiceGroup | undefined> {
  const r = await one<GroupRow>(
    q,
    `SELECT * FROM service_groups WHERE sg_id = $1${lock ? ' FOR UPDATE' : ''}`,
    [sgId],
  );
  return r === undefined ? undefined : toGroup(r);
}

/**
 * NOT_FOUND unless the group exists; with FOR SHARE, so a concurrent deleteGroup (FOR UPDATE) waits for this
 * transaction instead of deleting the group under it.
 */
export async function requireGroup(q: Queryable, sgId: string): Promise<void> {
  if ((await one(q, 'SELECT 1 FROM service_groups WHERE sg_id = $1 FOR SHARE', [sgId])) === undefined)
    throw new StoreError('NOT_FOUND', 'no such service group', 'sgId');
}

export async function createGroup(
  ctx: Ctx,
  g: NewServiceGroup,
  opts: GroupAuditOptions = {},
): Promise<ServiceGroup> {
  const sgId = g.sgId === undefined ? randomUUID() : v.sgId(g.sgId);
  const name = v.text(g.name, 'name', 128);
  const owner = v.ownerId(g.ownerId);
  const join = v.joinPolicy(g.joinPolicy);
  const suite = v.suite(g.suite);
  const sourceAuth = v.bool(g.sourceAuth, 'sourceAuth');
  const updateOnJoin = g.updateOnJoin === undefined ? true : v.bool(g.updateOnJoin, 'updateOnJoin');
  const interval = v.optional(g.rekeyIntervalSec, rekeyInterval);
  const dp = g.deliveryPolicy === undefined || g.deliveryPolicy === null ? null : policy(g.deliveryPolicy);
  const createdAt = g.createdAt === undefined ? ctx.now() : v.time(g.createdAt, 'createdAt');
  const members = v.initialMembers(g.members);
  const audit = v.groupAudits(opts.audit, sgId, createdAt);
  const out = v.outboxWrites(opts.outbox);
  return tx(ctx, async (c) => {
    if ((await one(c, 'SELECT 1 FROM retired_groups WHERE sg_id = $1', [sgId])) !== undefined)
      throw new StoreError('GROUP_RETIRED', 'service group id was used by a deleted group', 'sgId');
    if ((await one(c, 'SELECT 1 FROM service_groups WHERE sg_id = $1', [sgId])) !== undefined)
      throw new StoreError('CONFLICT', 'service group already exists', 'sgId');
    await run(
      c,
      `INSERT INTO service_groups (sg_id, name, owner_id, join_policy, suite, source_auth, update_on_join,
         rekey_interval_sec, delivery_policy, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10)`,
      [sgId, name, owner, join, suite, sourceAuth, updateOnJoin, interval, dp, createdAt],
    );
    if (members.length > 0)
      await run(
        c,
        'INSERT INTO members (sg_id, pne_id, joined_at) SELECT $1, m, $3 FROM unnest($2::text[]) AS m',
        [sgId, members, createdAt],
      );
    for (const a of audit) await insertAudit(c, a);
    await insertOutboxRows(c, createdAt, out);
    return (await readGroup(c, sgId))!;
  });
}

export async function getGroup(ctx: Ctx, sgId: string): Promise<ServiceGroup | undefined> {
  return readGroup(ctx.pool, v.sgId(sgId));
}

export async function listGroups(ctx: Ctx, filter?: { ownerId?: string }): Promise<ServiceGroup[]> {
  const rows =
    filter?.ownerId === undefined
      ? await all<GroupRow>(ctx.pool, 'SELECT * FROM service_groups ORDER BY created_at, sg_id')
      : await all<GroupRow>(
          ctx.pool,
          'SELECT * FROM service_groups WHERE owner_id = $1 ORDER BY created_at, sg_id',
          [v.ownerId(filter.ownerId)],
        );
  return rows.map(toGroup);
}

export async function updateGroup(
  ctx: Ctx,
  sgId: string,
  patch: ServiceGroupPatch,
  opts: GroupAuditOptions = {},
): Promise<ServiceGroup> {
  const id = v.sgId(sgId);
  const at = ctx.now();
  const audit = v.groupAudits(opts.audit, id, at);
  const out = v.outboxWrites(opts.outbox);
  const sets: string[] = [];
  const args: unknown[] = [];
  const set = (col: string, value: unknown, cast = '') => {
    args.push(value);
    sets.push(`${col} = $${args.length}${cast}`);
  };
  if (patch.name !== undefined) set('name', v.text(patch.name, 'name', 128));
  if (patch.joinPolicy !== undefined) set('join_policy', v.joinPolicy(patch.joinPolicy));
  if (patch.sourceAuth !== undefined) set('source_auth', v.bool(patch.sourceAuth, 'sourceAuth'));
  if (patch.updateOnJoin !== undefined) set('update_on_join', v.bool(patch.updateOnJoin, 'updateOnJoin'));
  if (patch.rekeyIntervalSec !== undefined)
    set('rekey_interval_sec', v.optional(patch.rekeyIntervalSec, rekeyInterval));
  if (patch.deliveryPolicy !== undefined)
    set('delivery_policy', patch.deliveryPolicy === null ? null : policy(patch.deliveryPolicy), '::jsonb');
  return tx(ctx, async (c) => {
    if ((await readGroup(c, id, true)) === undefined)
      throw new StoreError('NOT_FOUND', 'no such service group', 'sgId');
    if (sets.length > 0)
      await run(c, `UPDATE service_groups SET ${sets.join(', ')} WHERE sg_id = $${args.length + 1}`, [
        ...args,
        id,
      ]);
    for (const a of audit) await insertAudit(c, a);
    await insertOutboxRows(c, at, out);
    return (await readGroup(c, id))!;
  });
}

export async function deleteGroup(
  ctx: Ctx,
  sgId: string,
  opts: GroupAuditOptions = {},
): Promise<DeletedGroup> {
  const id = v.sgId(sgId);
  const at = ctx.now();
  const audit = v.groupAudits(opts.audit, id, at);
  const out = v.outboxWrites(opts.outbox);
  return tx(ctx, async (c) => {
    // the group row's lock: a rotation on another node waits, then finds no group (NOT_FOUND)
    const g = await readGroup(c, id, true);
    if (g === undefined) throw new StoreError('NOT_FOUND', 'no such service group', 'sgId');
    const members = (
      await all<{ pne_id: string }>(c, 'SELECT pne_id FROM members WHERE sg_id = $1 ORDER BY pne_id', [id])
    ).map((r) => r.pne_id);
    await run(c, 'INSERT INTO retired_groups (sg_id, epoch_hwm, deleted_at) VALUES ($1, $2, $3)', [
      id,
      g.epochHighWater,
      at,
    ]);
    // ON DELETE CASCADE removes keys, members, invitations, deliveries, gw_deliveries and relay marks.
    await run(c, 'DELETE FROM service_groups WHERE sg_id = $1', [id]);
    for (const a of audit) await insertAudit(c, a); // the audit log has no foreign keys: it outlives the group
    await insertOutboxRows(c, at, out);
    return { sgId: id, members, epochHighWater: g.epochHighWater };
  });
}

export async function addMember(
  ctx: Ctx,
  sgId: string,
  pneId: string,
  at?: number,
  opts: GroupAuditOptions = {},
): Promise<boolean> {
  const id = v.sgId(sgId);
  const p = v.pneId(pneId);
  const when = at === undefined ? ctx.now() : v.time(at, 'at');
  const audit = v.groupAudits(opts.audit, id, when);
  const out = v.outboxWrites(opts.outbox);
  return tx(ctx, async (c) => {
    await requireGroup(c, id);
    await run(c, 'DELETE FROM invitations WHERE sg_id = $1 AND pne_id = $2', [id, p]);
    const added =
      (await run(
        c,
        'INSERT INTO members (sg_id, pne_id, joined_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
        [id, p, when],
      )) === 1;
    if (added) {
      for (const a of audit) await insertAudit(c, a);
      await insertOutboxRows(c, when, out);
    }
    return added;
  });
}

export async function removeMember(
  ctx: Ctx,
  sgId: string,
  pneId: string,
  opts: GroupAuditOptions = {},
): Promise<boolean> {
  const id = v.sgId(sgId);
  const p = v.pneId(pneId);
  const at = ctx.now();
  const audit = v.groupAudits(opts.audit, id, at);
  const out = v.outboxWrites(opts.outbox);
  return tx(ctx, async (c) => {
    await run(c, 'DELETE FROM deliveries WHERE sg_id = $1 AND pne_id = $2', [id, p]);
    const removed = (await run(c, 'DELETE FROM members WHERE sg_id = $1 AND pne_id = $2', [id, p])) === 1;
    if (removed) {
      for (const a of audit) await insertAudit(c, a);
      await insertOutboxRows(c, at, out);
    }
    return removed;
  });
}

export async function listMembers(ctx: Ctx, sgId: string): Promise<Member[]> {
  const id = v.sgId(sgId);
  const rows = await all<{ sg_id: string; pne_id: string; joined_at: number }>(
    ctx.pool,
    'SELECT sg_id, pne_id, joined_at FROM members WHERE sg_id = $1 ORDER BY pne_id',
    [id],
  );
  return rows.map((r) => ({ sgId: r.sg_id, pneId: r.pne_id, joinedAt: r.joined_at }));
}

export async function isMember(ctx: Ctx, sgId: string, pneId: string): Promise<boolean> {
  const args = [v.sgId(sgId), v.pneId(pneId)];
  return (await one(ctx.pool, 'SELECT 1 FROM members WHERE sg_id = $1 AND pne_id = $2', args)) !== undefined;
}

export async function countMembers(ctx: Ctx, sgId: string): Promise<number> {
  const r = await one<{ n: number }>(ctx.pool, 'SELECT COUNT(*) AS n FROM members WHERE sg_id = $1', [
    v.sgId(sgId),
  ]);
  return r?.n ?? 0;
}

export async function invite(ctx: Ctx, sgId: string, pneId: string, at?: number): Promise<void> {
  const id = v.sgId(sgId);
  const p = v.pneId(pneId);
  const when = at === undefined ? ctx.now() : v.time(at, 'at');
  await tx(ctx, async (c) => {
    await requireGroup(c, id);
    await run(
      c,
      'INSERT INTO invitations (sg_id, pne_id, invited_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
      [id, p, when],
    );
  });
}

export async function hasInvite(ctx: Ctx, sgId: string, pneId: string): Promise<boolean> {
  const args = [v.sgId(sgId), v.pneId(pneId)];
  return (
    (await one(ctx.pool, 'SELECT 1 FROM invitations WHERE sg_id = $1 AND pne_id = $2', args)) !== undefined
  );
}

export async function uninvite(ctx: Ctx, sgId: string, pneId: string): Promise<boolean> {
  const args = [v.sgId(sgId), v.pneId(pneId)];
  return (await run(ctx.pool, 'DELETE FROM invitations WHERE sg_id = $1 AND pne_id = $2', args)) === 1;
}

export async function listInvites(ctx: Ctx, sgId: string): Promise<string[]> {
  const rows = await all<{ pne_id: string }>(
    ctx.pool,
    'SELECT pne_id FROM invitations WHERE sg_id = $1 ORDER BY pne_id',
    [v.sgId(sgId)],
  );
  return rows.map((r) => r.pne_id);
}

export async function groupsOfPne(ctx: Ctx, pneId: string): Promise<string[]> {
  const rows = await all<{ sg_id: string }>(
    ctx.pool,
    'SELECT sg_id FROM members WHERE pne_id = $1 ORDER BY sg_id',
    [v.pneId(pneId)],
  );
  return rows.map((r) => r.sg_id);
}
