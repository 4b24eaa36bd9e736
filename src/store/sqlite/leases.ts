/** GW session leases (docs/cluster.md "GW session lease"): one writer per lease row, the generation +1 each time. */
import type { GwLease } from '../store.js';
import * as v from '../validate.js';
import { type Ctx, tx } from './db.js';
import { insertOutbox } from './outbox.js';

interface LeaseRow {
  gw_id: string;
  node_id: string;
  generation: number;
  acquired_at: number;
}

const toLease = (r: LeaseRow): GwLease => ({
  gwId: r.gw_id,
  nodeId: r.node_id,
  generation: r.generation,
  acquiredAt: r.acquired_at,
});

export function acquireGwLease(
  ctx: Ctx,
  gwId: string,
  nodeId: string,
  opts: { readonly at?: number; readonly outbox?: boolean } = {},
): GwLease {
  const gw = v.gwId(gwId);
  const node = v.clusterNodeId(nodeId);
  const at = opts.at === undefined ? ctx.now() : v.time(opts.at, 'at');
  return tx(ctx.db, () => {
    const r = ctx.db
      .prepare(
        `INSERT INTO gw_leases (gw_id, node_id, generation, acquired_at) VALUES (?, ?, 1, ?)
         ON CONFLICT (gw_id) DO UPDATE SET node_id = excluded.node_id, generation = gw_leases.generation + 1,
           acquired_at = excluded.acquired_at
         RETURNING *`,
      )
      .get(gw, node, at) as LeaseRow;
    if (opts.outbox === true)
      insertOutbox(ctx, at, 'gw.lease', { gwId: gw, nodeId: node, generation: r.generation, node });
    return toLease(r);
  });
}

export function getGwLease(ctx: Ctx, gwId: string): GwLease | undefined {
  const r = ctx.db.prepare('SELECT * FROM gw_leases WHERE gw_id = ?').get(v.gwId(gwId)) as
    | LeaseRow
    | undefined;
  return r === undefined ? undefined : toLease(r);
}

export function listGwLeases(ctx: Ctx): GwLease[] {
  return (ctx.db.prepare('SELECT * FROM gw_leases ORDER BY gw_id').all() as LeaseRow[]).map(toLease);
}
