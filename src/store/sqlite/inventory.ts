/** PN inventory: gateways and the PNEs attached to them (one PN = one GW + its PNEs). */
import { StoreError } from '../errors.js';
import type { Gateway, OutboxWrite, PersonalNetwork, Pne } from '../store.js';
import * as v from '../validate.js';
import { b2i, type Ctx, i2b, readTx, tx } from './db.js';
import { insertOutboxRows } from './outbox.js';

interface GwRow {
  gw_id: string;
  registered_at: number;
  last_seen: number;
  online: number;
}
interface PneRow {
  pne_id: string;
  gw_id: string | null;
  media: string;
  online: number;
  last_seen: number;
}

const toGw = (r: GwRow): Gateway => ({
  gwId: r.gw_id,
  registeredAt: r.registered_at,
  lastSeen: r.last_seen,
  online: i2b(r.online),
});

const toPne = (r: PneRow): Pne => ({
  pneId: r.pne_id,
  gwId: r.gw_id,
  media: JSON.parse(r.media) as string[],
  online: i2b(r.online),
  lastSeen: r.last_seen,
});

const at_ = (ctx: Ctx, at: number | undefined) => (at === undefined ? ctx.now() : v.time(at, 'at'));

export function registerGateway(ctx: Ctx, gwId: string, at?: number): Gateway {
  const id = v.gwId(gwId);
  const when = at_(ctx, at);
  return tx(ctx.db, () => {
    ctx.db
      .prepare(
        'INSERT INTO gateways (gw_id, registered_at, last_seen, online) VALUES (?, ?, ?, 0) ON CONFLICT DO NOTHING',
      )
      .run(id, when, when);
    return getGateway(ctx, id)!;
  });
}

export function getGateway(ctx: Ctx, gwId: string): Gateway | undefined {
  const r = ctx.db.prepare('SELECT * FROM gateways WHERE gw_id = ?').get(v.gwId(gwId)) as GwRow | undefined;
  return r === undefined ? undefined : toGw(r);
}

export function deregisterGateway(ctx: Ctx, gwId: string): string[] {
  const id = v.gwId(gwId);
  return tx(ctx.db, () => {
    if (ctx.db.prepare('SELECT 1 FROM gateways WHERE gw_id = ?').get(id) === undefined)
      throw new StoreError('NOT_FOUND', 'no such gateway', 'gwId');
    const pnes = (
      ctx.db.prepare('SELECT pne_id FROM pnes WHERE gw_id = ? ORDER BY pne_id').all(id) as {
        pne_id: string;
      }[]
    ).map((r) => r.pne_id);
    ctx.db.prepare('UPDATE pnes SET gw_id = NULL, online = 0 WHERE gw_id = ?').run(id);
    ctx.db.prepare('DELETE FROM gateways WHERE gw_id = ?').run(id);
    return pnes;
  });
}

export function attachPne(
  ctx: Ctx,
  pneId: string,
  gwId: string,
  media: readonly string[],
  at?: number,
  opts: { readonly outbox?: readonly OutboxWrite[] } = {},
): { previousGwId: string | null } {
  const p = v.pneId(pneId);
  const g = v.gwId(gwId);
  const m = JSON.stringify(v.media(media));
  const when = at_(ctx, at);
  const out = v.outboxWrites(opts.outbox);
  return tx(ctx.db, () => {
    if (ctx.db.prepare('SELECT 1 FROM gateways WHERE gw_id = ?').get(g) === undefined)
      throw new StoreError('NOT_FOUND', 'no such gateway', 'gwId');
    const prev = ctx.db.prepare('SELECT gw_id FROM pnes WHERE pne_id = ?').get(p) as
      | { gw_id: string | null }
      | undefined;
    ctx.db
      .prepare(
        `INSERT INTO pnes (pne_id, gw_id, media, online, last_seen) VALUES (?, ?, ?, 1, ?)
         ON CONFLICT (pne_id) DO UPDATE SET gw_id = excluded.gw_id, media = excluded.media, online = 1,
           last_seen = excluded.last_seen`,
      )
      .run(p, g, m, when);
    if ((prev?.gw_id ?? null) !== g) insertOutboxRows(ctx, when, out);
    return { previousGwId: prev?.gw_id ?? null };
  });
}

export function detachPne(ctx: Ctx, pneId: string, at?: number): boolean {
  const p = v.pneId(pneId);
  const when = at_(ctx, at);
  return (
    ctx.db
      .prepare(
        'UPDATE pnes SET gw_id = NULL, online = 0, last_seen = ? WHERE pne_id = ? AND gw_id IS NOT NULL',
      )
      .run(when, p).changes === 1
  );
}

export function getPne(ctx: Ctx, pneId: string): Pne | undefined {
  const r = ctx.db.prepare('SELECT * FROM pnes WHERE pne_id = ?').get(v.pneId(pneId)) as PneRow | undefined;
  return r === undefined ? undefined : toPne(r);
}

export function setOnline(ctx: Ctx, id: string, online: boolean, at?: number): void {
  const role = v.nodeId(id);
  const on = b2i(v.bool(online, 'online'));
  const when = at_(ctx, at);
  const sql =
    role === 'gw'
      ? 'UPDATE gateways SET online = ?, last_seen = ? WHERE gw_id = ?'
      : 'UPDATE pnes SET online = ?, last_seen = ? WHERE pne_id = ?';
  if (ctx.db.prepare(sql).run(on, when, id).changes !== 1)
    throw new StoreError('NOT_FOUND', role === 'gw' ? 'no such gateway' : 'no such PNE', 'id');
}

export function listPns(ctx: Ctx): PersonalNetwork[] {
  return readTx(ctx.db, () => {
    const gws = ctx.db.prepare('SELECT * FROM gateways ORDER BY gw_id').all() as GwRow[];
    const pnes = ctx.db
      .prepare('SELECT * FROM pnes WHERE gw_id IS NOT NULL ORDER BY gw_id, pne_id')
      .all() as PneRow[];
    const byGw = new Map<string, Pne[]>();
    for (const r of pnes) {
      const list = byGw.get(r.gw_id!) ?? [];
      list.push(toPne(r));
      byGw.set(r.gw_id!, list);
    }
    return gws.map((g) => ({ ...toGw(g), pnes: byGw.get(g.gw_id) ?? [] }));
  });
}

export function listDetachedPnes(ctx: Ctx): Pne[] {
  return (ctx.db.prepare('SELECT * FROM pnes WHERE gw_id IS NULL ORDER BY pne_id').all() as PneRow[]).map(
    toPne,
  );
}
