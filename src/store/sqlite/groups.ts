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
import { b2i, type Ctx, i2b, readTx, tx } from './db.js';
import { insertOutboxRows } from './outbox.js';

interface GroupRow {
  sg_id: string;
  name: string;
  owner_id: string;
  join_policy: JoinPolicy;
  suite: number;
  source_auth: number;
  update_on_join: number;
  rekey_interval_sec: number | null;
  delivery_policy: string | null;
  created_at: number;
  epoch_hwm: number;
}

const toGroup = (r: GroupRow): ServiceGroup => ({
  sgId: r.sg_id,
  name: r.name,
  ownerId: r.owner_id,
  joinPolicy: r.join_policy,
  suite: r.suite as Suite,
  sourceAuth: i2b(r.source_auth),
  updateOnJoin: i2b(r.update_on_join),
  rekeyIntervalSec: r.rekey_interval_sec,
  deliveryPolicy: r.delivery_policy === null ? null : (JSON.parse(r.delivery_policy) as JsonObject),
  createdAt: r.created_at,
  epochHighWater: r.epoch_hwm,
});

const MAX_REKEY_INTERVAL_SEC = 366 * 24 * 3600;
const rekeyInterval = (x: number) => v.int(x, 'rekeyIntervalSec', 1, MAX_REKEY_INTERVAL_SEC);
const policy = (x: JsonObject) => v.jsonObject(x, 'deliveryPolicy', v.MAX_POLICY_JSON);

export function readGroup(ctx: Ctx, sgId: string): ServiceGroup | undefined {
  const r = ctx.db.prepare('SELECT * FROM service_groups WHERE sg_id = ?').get(sgId) as GroupRow | undefined;
  return r === undefined ? undefined : toGroup(r);
}

export function requireGroup(ctx: Ctx, sgId: string): void {
  if (ctx.db.prepare('SELECT 1 FROM service_groups WHERE sg_id = ?').get(sgId) === undefined)
    throw new StoreError('NOT_FOUND', 'no such service group', 'sgId');
}

export function createGroup(ctx: Ctx, g: NewServiceGroup, opts: GroupAuditOptions = {}): ServiceGroup {
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
  return tx(ctx.db, () => {
    if (ctx.db.prepare('SELECT 1 FROM retired_groups WHERE sg_id = ?').get(sgId) !== undefined)
      throw new StoreError('GROUP_RETIRED', 'service group id was used by a deleted group', 'sgId');
    if (ctx.db.prepare('SELECT 1 FROM service_groups WHERE sg_id = ?').get(sgId) !== undefined)
      throw new StoreError('CONFLICT', 'service group already exists', 'sgId');
    ctx.db
      .prepare(
        `INSERT INTO service_groups (sg_id, name, owner_id, join_policy, suite, source_auth, update_on_join,
           rekey_interval_sec, delivery_policy, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(sgId, name, owner, join, suite, b2i(sourceAuth), b2i(updateOnJoin), interval, dp, createdAt);
    const add = ctx.db.prepare('INSERT INTO members (sg_id, pne_id, joined_at) VALUES (?, ?, ?)');
    for (const m of members) add.run(sgId, m, createdAt);
    for (const a of audit) insertAudit(ctx, a);
    insertOutboxRows(ctx, createdAt, out);
    return readGroup(ctx, sgId)!;
  });
}

export function getGroup(ctx: Ctx, sgId: string): ServiceGroup | undefined {
  return readGroup(ctx, v.sgId(sgId));
}

export function listGroups(ctx: Ctx, filter?: { ownerId?: string }): ServiceGroup[] {
  const rows = (
    filter?.ownerId === undefined
      ? ctx.db.prepare('SELECT * FROM service_groups ORDER BY created_at, sg_id').all()
      : ctx.db
          .prepare('SELECT * FROM service_groups WHERE owner_id = ? ORDER BY created_at, sg_id')
          .all(v.ownerId(filter.ownerId))
  ) as GroupRow[];
  return rows.map(toGroup);
}

export function updateGroup(
  ctx: Ctx,
  sgId: string,
  patch: ServiceGroupPatch,
  opts: GroupAuditOptions = {},
): ServiceGroup {
  const id = v.sgId(sgId);
  const at = ctx.now();
  const audit = v.groupAudits(opts.audit, id, at);
  const out = v.outboxWrites(opts.outbox);
  const sets: string[] = [];
  const args: unknown[] = [];
  if (patch.name !== undefined) {
    sets.push('name = ?');
    args.push(v.text(patch.name, 'name', 128));
  }
  if (patch.joinPolicy !== undefined) {
    sets.push('join_policy = ?');
    args.push(v.joinPolicy(patch.joinPolicy));
  }
  if (patch.sourceAuth !== undefined) {
    sets.push('source_auth = ?');
    args.push(b2i(v.bool(patch.sourceAuth, 'sourceAuth')));
  }
  if (patch.updateOnJoin !== undefined) {
    sets.push('update_on_join = ?');
    args.push(b2i(v.bool(patch.updateOnJoin, 'updateOnJoin')));
  }
  if (patch.rekeyIntervalSec !== undefined) {
    sets.push('rekey_interval_sec = ?');
    args.push(v.optional(patch.rekeyIntervalSec, rekeyInterval));
  }
  if (patch.deliveryPolicy !== undefined) {
    sets.push('delivery_policy = ?');
    args.push(patch.deliveryPolicy === null ? null : policy(patch.deliveryPolicy));
  }
  return tx(ctx.db, () => {
    requireGroup(ctx, id);
    if (sets.length > 0)
      ctx.db.prepare(`UPDATE service_groups SET ${sets.join(', ')} WHERE sg_id = ?`).run(...args, id);
    for (const a of audit) insertAudit(ctx, a);
    insertOutboxRows(ctx, at, out);
    return readGroup(ctx, id)!;
  });
}

export function deleteGroup(ctx: Ctx, sgId: string, opts: GroupAuditOptions = {}): DeletedGroup {
  const id = v.sgId(sgId);
  const at = ctx.now();
  const audit = v.groupAudits(opts.audit, id, at);
  const out = v.outboxWrites(opts.outbox);
  return tx(ctx.db, () => {
    const g = readGroup(ctx, id);
    if (g === undefined) throw new StoreError('NOT_FOUND', 'no such service group', 'sgId');
    const members = (
      ctx.db.prepare('SELECT pne_id FROM members WHERE sg_id = ? ORDER BY pne_id').all(id) as {
        pne_id: string;
      }[]
    ).map((r) => r.pne_id);
    ctx.db
      .prepare('INSERT INTO retired_groups (sg_id, epoch_hwm, deleted_at) VALUES (?, ?, ?)')
      .run(id, g.epochHighWater, at);
    // ON DELETE CASCADE removes keys, members, invitations, deliveries, gw_deliveries and relay marks.
    ctx.db.prepare('DELETE FROM service_groups WHERE sg_id = ?').run(id);
    for (const a of audit) insertAudit(ctx, a); // the audit log has no foreign keys: it outlives the group
    insertOutboxRows(ctx, at, out);
    return { sgId: id, members, epochHighWater: g.epochHighWater };
  });
}

export function addMember(
  ctx: Ctx,
  sgId: string,
  pneId: string,
  at?: number,
  opts: GroupAuditOptions = {},
): boolean {
  const id = v.sgId(sgId);
  const p = v.pneId(pneId);
  const when = at === undefined ? ctx.now() : v.time(at, 'at');
  const audit = v.groupAudits(opts.audit, id, when);
  const out = v.outboxWrites(opts.outbox);
  return tx(ctx.db, () => {
    requireGroup(ctx, id);
    ctx.db.prepare('DELETE FROM invitations WHERE sg_id = ? AND pne_id = ?').run(id, p);
    const added =
      ctx.db
        .prepare('INSERT INTO members (sg_id, pne_id, joined_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
        .run(id, p, when).changes === 1;
    if (added) {
      for (const a of audit) insertAudit(ctx, a);
      insertOutboxRows(ctx, when, out);
    }
    return added;
  });
}

export function removeMember(ctx: Ctx, sgId: string, pneId: string, opts: GroupAuditOptions = {}): boolean {
  const id = v.sgId(sgId);
  const p = v.pneId(pneId);
  const at = ctx.now();
  const audit = v.groupAudits(opts.audit, id, at);
  const out = v.outboxWrites(opts.outbox);
  return tx(ctx.db, () => {
    ctx.db.prepare('DELETE FROM deliveries WHERE sg_id = ? AND pne_id = ?').run(id, p);
    const removed =
      ctx.db.prepare('DELETE FROM members WHERE sg_id = ? AND pne_id = ?').run(id, p).changes === 1;
    if (removed) {
      for (const a of audit) insertAudit(ctx, a);
      insertOutboxRows(ctx, at, out);
    }
    return removed;
  });
}

export function listMembers(ctx: Ctx, sgId: string): Member[] {
  const id = v.sgId(sgId);
  const rows = ctx.db
    .prepare('SELECT sg_id, pne_id, joined_at FROM members WHERE sg_id = ? ORDER BY pne_id')
    .all(id) as { sg_id: string; pne_id: string; joined_at: number }[];
  return rows.map((r) => ({ sgId: r.sg_id, pneId: r.pne_id, joinedAt: r.joined_at }));
}

export function isMember(ctx: Ctx, sgId: string, pneId: string): boolean {
  return (
    ctx.db
      .prepare('SELECT 1 FROM members WHERE sg_id = ? AND pne_id = ?')
      .get(v.sgId(sgId), v.pneId(pneId)) !== undefined
  );
}

export function countMembers(ctx: Ctx, sgId: string): number {
  const r = ctx.db.prepare('SELECT COUNT(*) AS n FROM members WHERE sg_id = ?').get(v.sgId(sgId)) as {
    n: number;
  };
  return r.n;
}

export function invite(ctx: Ctx, sgId: string, pneId: string, at?: number): void {
  const id = v.sgId(sgId);
  const p = v.pneId(pneId);
  const when = at === undefined ? ctx.now() : v.time(at, 'at');
  tx(ctx.db, () => {
    requireGroup(ctx, id);
    ctx.db
      .prepare('INSERT INTO invitations (sg_id, pne_id, invited_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
      .run(id, p, when);
  });
}

export function hasInvite(ctx: Ctx, sgId: string, pneId: string): boolean {
  return (
    ctx.db
      .prepare('SELECT 1 FROM invitations WHERE sg_id = ? AND pne_id = ?')
      .get(v.sgId(sgId), v.pneId(pneId)) !== undefined
  );
}

export function uninvite(ctx: Ctx, sgId: string, pneId: string): boolean {
  return (
    ctx.db.prepare('DELETE FROM invitations WHERE sg_id = ? AND pne_id = ?').run(v.sgId(sgId), v.pneId(pneId))
      .changes === 1
  );
}

export function listInvites(ctx: Ctx, sgId: string): string[] {
  return (
    ctx.db.prepare('SELECT pne_id FROM invitations WHERE sg_id = ? ORDER BY pne_id').all(v.sgId(sgId)) as {
      pne_id: string;
    }[]
  ).map((r) => r.pne_id);
}

export function groupsOfPne(ctx: Ctx, pneId: string): string[] {
  return readTx(ctx.db, () =>
    (
      ctx.db.prepare('SELECT sg_id FROM members WHERE pne_id = ? ORDER BY sg_id').all(v.pneId(pneId)) as {
        sg_id: string;
      }[]
    ).map((r) => r.sg_id),
  );
}
