/** PN inventory: gateways and the PNEs attached to them (one PN = one GW + its PNEs). */
import { StoreError } from '../errors.js';
import type { Gateway, OutboxWrite, PersonalNetwork, Pne } from '../store.js';
import * as v from '../validate.js';
import { all, type Ctx, one, type Queryable, readTx, run, tx } from './db.js';
import { insertOutboxRows } from './outbox.js';

interface GwRow {
  gw_id: string;
  registered_at: number;
  last_seen: number;
  online: boolean;
}
interface PneRow {
  pne_id: string;
  gw_id: string | null;
  media: string[];
  online: boolean;
  last_seen: number;
}

const toGw = (r: GwRow): Gateway => ({
  gwId: r.gw_id,
  registeredAt: r.registered_at,
  lastSeen: r.last_seen,
  online: r.online,
});

const toPne = (r: PneRow): Pne => ({
  pneId: r.pne_id,
  gwId: r.gw_id,
  media: r.media,
  online: r.online,
  lastSeen: r.last_seen,
});

const at_ = (ctx: Ctx, at: number | undefined) => (at === undefined ? ctx.now() : v.time(at, 'at'));

async function readGateway(q: Queryable, id: string): Promise<Gateway | undefined> {
  const r = await one<GwRow>(q, 'SELECT * FROM gateways WHERE gw_id = $1', [id]);
  return r === undefined ? undefined : toGw(r);
}

export async function registerGateway(ctx: Ctx, gwId: string, at?: number): Promise<Gateway> {
  const id = v.gwId(gwId);
  const when = at_(ctx, at);
  return tx(ctx, async (c) => {
    await run(
      c,
      'INSERT INTO gateways (gw_id, registered_at, last_seen, online) VALUES ($1, $2, $2, FALSE) ON CONFLICT DO NOTHING',
      [id, when],
    );
    return (await readGateway(c, id))!;
  });
}

export async function getGateway(ctx: Ctx, gwId: string): Promise<Gateway | undefined> {
  return readGateway(ctx.pool, v.gwId(gwId));
}

export async function deregisterGateway(ctx: Ctx, gwId: string): Promise<string[]> {
  const id = v.gwId(gwId);
  return tx(ctx, async (c) => {
    if ((await one(c, 'SELECT 1 FROM gateways WHERE gw_id = $1 FOR UPDATE', [id])) === undefined)
      throw new StoreError('NOT_FOUND', 'no such gateway', 'gwId');
    const pnes = (
      await all<{ pne_id: string }>(c, 'SELECT pne_id FROM pnes WHERE gw_id = $1 ORDER BY pne_id', [id])
    ).map((r) => r.pne_id);
    await run(c, 'UPDATE pnes SET gw_id = NULL, online = FALSE WHERE gw_id = $1', [id]);
    await run(c, 'DELETE FROM gateways WHERE gw_id = $1', [id]);
    return pnes;
  });
}

export async function attachPne(
  ctx: Ctx,
  pneId: string,
  gwId: string,
  media: readonly string[],
  at?: number,
  opts: { readonly outbox?: readonly OutboxWrite[] } = {},
): Promise<{ previousGwId: string | null }> {
  const p = v.pneId(pneId);
  const g = v.gwId(gwId);
  const m = JSON.stringify(v.media(media));
  const when = at_(ctx, at);
  const out = v.outboxWrites(opts.outbox);
  return tx(ctx, async (c) => {
    // FOR SHARE: the GW cannot be deregistered under us
    if ((await one(c, 'SELECT 1 FROM gateways WHERE gw_id = $1 FOR SHARE', [g])) === undefined)
      throw new StoreError('NOT_FOUND', 'no such gateway', 'gwId');
    const prev = await one<{ gw_id: string | null }>(
      c,
      'SELECT gw_id FROM pnes WHERE pne_id = $1 FOR UPDATE',
      [p],
    );
    await run(
      c,
      `INSERT INTO pnes (pne_id, gw_id, media, online, last_seen) VALUES ($1, $2, $3::jsonb, TRUE, $4)
       ON CONFLICT (pne_id) DO UPDATE SET gw_id = excluded.gw_id, media = excluded.media, online = TRUE,
         last_seen = excluded.last_seen`,
      [p, g, m, when],
    );
    if ((prev?.gw_id ?? null) !== g) await insertOutboxRows(c, when, out);
    return { previousGwId: prev?.gw_id ?? null };
  });
}

export async function detachPne(ctx: Ctx, pneId: string, at?: number): Promise<boolean> {
  const p = v.pneId(pneId);
  const when = at_(ctx, at);
  return (
    (await run(
      ctx.pool,
      'UPDATE pnes SET gw_id = NULL, online = FALSE, last_seen = $1 WHERE pne_id = $2 AND gw_id IS NOT NULL',
      [when, p],
    )) === 1
  );
}

export async function getPne(ctx: Ctx, pneId: string): Promise<Pne | undefined> {
  const r = await one<PneRow>(ctx.pool, 'SELECT * FROM pnes WHERE pne_id = $1', [v.pneId(pneId)]);
  return r === undefined ? undefined : toPne(r);
}

export async function setOnline(ctx: Ctx, id: string, online: boolean, at?: number): Promise<void> {
  const role = v.nodeId(id);
  const on = v.bool(online, 'online');
  const when = at_(ctx, at);
  const sql =
    role === 'gw'
      ? 'UPDATE gateways SET online = $1, last_seen = $2 WHERE gw_id = $3'
      : 'UPDATE pnes SET online = $1, last_seen = $2 WHERE pne_id = $3';
  if ((await run(ctx.pool, sql, [on, when, id])) !== 1)
    throw new StoreError('NOT_FOUND', role === 'gw' ? 'no such gateway' : 'no such PNE', 'id');
}

export async function listPns(ctx: Ctx): Promise<PersonalNetwork[]> {
  return readTx(ctx, async (c) => {
    const gws = await all<GwRow>(c, 'SELECT * FROM gateways ORDER BY gw_id');
    const pnes = await all<PneRow>(c, 'SELECT * FROM pnes WHERE gw_id IS NOT NULL ORDER BY gw_id, pne_id');
    const byGw = new Map<string, Pne[]>();
    for (const r of pnes) {
      const list = byGw.get(r.gw_id!) ?? [];
      list.push(toPne(r));
      byGw.set(r.gw_id!, list);
    }
    return gws.map((g) => ({ ...toGw(g), pnes: byGw.get(g.gw_id) ?? [] }));
  });
}

export async function listDetachedPnes(ctx: Ctx): Promise<Pne[]> {
  return (await all<PneRow>(ctx.pool, 'SELECT * FROM pnes WHERE gw_id IS NULL ORDER BY pne_id')).map(toPne);
}
