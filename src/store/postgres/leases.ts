/** GW session leases (docs/cluster.md "GW session lease"): one writer per lease row, the generation +1 each time. */
import type { GwLease } from '../store.js';
import * as v from '../validate.js';
import { all, type Ctx, one, tx } from './db.js';
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
  generation: Number(r.generation),
  acquiredAt: Number(r.acquired_at),
});

export async function acquireGwLease(
  ctx: Ctx,
  gwId: string,
  nodeId: string,
  opts: { readonly at?: number; readonly outbox?: boolean } = {},
): Promise<GwLease> {
  const gw = v.gwId(gwId);
  const node = v.clusterNodeId(nodeId);
  const at = opts.at === undefined ? ctx.now() : v.time(opts.at, 'at');
  return tx(ctx, async (c) => {
    // INSERT ... ON CONFLICT DO UPDATE takes the row lock: concurrent acquisitions are serialized, each +1.
    const r = (await one<LeaseRow>(
      c,
      `INSERT INTO gw_leases (gw_id, node_id, generation, acquired_at) VALUES ($1, $2, 1, $3)
       ON CONFLICT (gw_id) DO UPDATE SET node_id = excluded.node_id, generation = gw_leases.generation + 1,
         acquired_at = excluded.acquired_at
       RETURNING *`,
      [gw, node, at],
    ))!;
    const lease = toLease(r);
    if (opts.outbox === true)
      await insertOutbox(c, at, 'gw.lease', { gwId: gw, nodeId: node, generation: lease.generation, node });
    return lease;
  });
}

export async function getGwLease(ctx: Ctx, gwId: string): Promise<GwLease | undefined> {
  const r = await one<LeaseRow>(ctx.pool, 'SELECT * FROM gw_leases WHERE gw_id = $1', [v.gwId(gwId)]);
  return r === undefined ? undefined : toLease(r);
}

export async function listGwLeases(ctx: Ctx): Promise<GwLease[]> {
  return (await all<LeaseRow>(ctx.pool, 'SELECT * FROM gw_leases ORDER BY gw_id')).map(toLease);
}
