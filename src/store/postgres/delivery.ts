/** Delivery tracking: which PNE (through which GW, by which method) and which GW confirmed which epoch. */
import { CpnsError, ErrorCode } from '../../core/errors.js';
import { StoreError } from '../errors.js';
import type {
  DeliveryAck,
  DeliveryMethod,
  DeliveryStatus,
  GatewayAck,
  GatewayDeliveryStatus,
  MemberDeliveryStatus,
} from '../store.js';
import * as v from '../validate.js';
import { all, type Ctx, one, type Queryable, readTx, relaxCommit, run, tx } from './db.js';
import { currentEpoch } from './keys.js';

/**
 * Each row's group exists and its epoch was allocated, in row order (the first failing row names the error), with
 * one query for the batch's groups, not one per row (a batch is up to `deliveryBatchMax` acks of a few SGs). The
 * FK check of the insert that follows then holds each group row.
 */
async function checkEpochs(q: Queryable, rows: readonly { sgId: string; epoch: number }[]): Promise<void> {
  const ids = [...new Set(rows.map((r) => r.sgId))];
  const got = await all<{ sg_id: string; epoch_hwm: number | string }>(
    q,
    'SELECT sg_id, epoch_hwm FROM service_groups WHERE sg_id = ANY($1::text[])',
    [ids],
  );
  const hwm = new Map(got.map((g) => [g.sg_id, Number(g.epoch_hwm)]));
  for (const r of rows) {
    const h = hwm.get(r.sgId);
    if (h === undefined) throw new StoreError('NOT_FOUND', 'no such service group', 'sgId');
    if (r.epoch > h) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'epoch was never allocated', 'epoch');
  }
}

interface CheckedAck {
  sgId: string;
  epoch: number;
  pneId: string;
  gwId: string;
  method: DeliveryMethod;
  ackedAt: number;
}

function checkAck(ctx: Ctx, a: DeliveryAck): CheckedAck {
  return {
    sgId: v.sgId(a.sgId),
    epoch: v.epoch(a.epoch),
    pneId: v.pneId(a.pneId),
    gwId: v.gwId(a.gwId),
    method: v.method(a.method),
    ackedAt: a.ackedAt === undefined ? ctx.now() : v.time(a.ackedAt, 'ackedAt'),
  };
}

/** The first ack of (sg, pne, epoch) wins: retransmitted acks do not move ackedAt. */
export async function recordDeliveries(ctx: Ctx, acks: readonly DeliveryAck[]): Promise<void> {
  const checked = acks.map((a) => checkAck(ctx, a));
  if (checked.length === 0) return;
  await tx(ctx, async (c) => {
    await relaxCommit(c);
    await checkEpochs(c, checked);
    // One statement for the batch; rows keep their order, so of two acks of one (sg, pne, epoch) the first wins.
    await run(
      c,
      `INSERT INTO deliveries (sg_id, pne_id, epoch, gw_id, method, acked_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])
       ON CONFLICT DO NOTHING`,
      [
        checked.map((a) => a.sgId),
        checked.map((a) => a.pneId),
        checked.map((a) => a.epoch),
        checked.map((a) => a.gwId),
        checked.map((a) => a.method),
        checked.map((a) => a.ackedAt),
      ],
    );
  });
}

/** The first ack of (sg, GW, epoch) wins, as for deliveries; many in one transaction. */
export async function recordGatewayAcks(ctx: Ctx, acks: readonly GatewayAck[]): Promise<void> {
  const checked = acks.map((a) => ({
    sgId: v.sgId(a.sgId),
    epoch: v.epoch(a.epoch),
    gwId: v.gwId(a.gwId),
    at: a.ackedAt === undefined ? ctx.now() : v.time(a.ackedAt, 'ackedAt'),
  }));
  if (checked.length === 0) return;
  await tx(ctx, async (c) => {
    await relaxCommit(c);
    await checkEpochs(c, checked);
    await run(
      c,
      `INSERT INTO gw_deliveries (sg_id, gw_id, epoch, acked_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
       ON CONFLICT DO NOTHING`,
      [
        checked.map((a) => a.sgId),
        checked.map((a) => a.gwId),
        checked.map((a) => a.epoch),
        checked.map((a) => a.at),
      ],
    );
  });
}

interface MemberRow {
  pne_id: string;
  cur_gw: string | null;
  online: boolean | null;
  epoch: number | null;
  acked_at: number | null;
  method: DeliveryMethod | null;
  d_gw: string | null;
}

interface GwRow {
  gw_id: string;
  online: boolean | null;
  epoch: number | null;
  acked_at: number | null;
}

export async function deliveryStatus(ctx: Ctx, sgId: string, now?: number): Promise<DeliveryStatus> {
  const id = v.sgId(sgId);
  const when = now === undefined ? ctx.now() : v.time(now, 'now');
  return readTx(ctx, async (c) => {
    if ((await one(c, 'SELECT 1 FROM service_groups WHERE sg_id = $1', [id])) === undefined)
      throw new StoreError('NOT_FOUND', 'no such service group', 'sgId');
    const cur = await currentEpoch(c, id, when);
    const lag = (e: number | null) => Math.max(0, cur - (e ?? 0));
    const rows = await all<MemberRow>(
      c,
      `SELECT m.pne_id, p.gw_id AS cur_gw, p.online, d.epoch, d.acked_at, d.method, d.gw_id AS d_gw
       FROM members m
       LEFT JOIN pnes p ON p.pne_id = m.pne_id
       LEFT JOIN deliveries d ON d.sg_id = m.sg_id AND d.pne_id = m.pne_id AND d.epoch = (
         SELECT MAX(d2.epoch) FROM deliveries d2 WHERE d2.sg_id = m.sg_id AND d2.pne_id = m.pne_id)
       WHERE m.sg_id = $1
       ORDER BY m.pne_id`,
      [id],
    );
    const members: MemberDeliveryStatus[] = rows.map((r) => ({
      pneId: r.pne_id,
      gwId: r.cur_gw ?? r.d_gw,
      online: r.online === true,
      ackedEpoch: r.epoch,
      ackedAt: r.acked_at,
      method: r.method,
      lag: lag(r.epoch),
    }));
    const gwRows = await all<GwRow>(
      c,
      `WITH gws (gw_id) AS (
         SELECT p.gw_id FROM members m JOIN pnes p ON p.pne_id = m.pne_id
         WHERE m.sg_id = $1 AND p.gw_id IS NOT NULL
         UNION
         SELECT gw_id FROM gw_deliveries WHERE sg_id = $1)
       SELECT gws.gw_id, g.online, d.epoch, d.acked_at
       FROM gws
       LEFT JOIN gateways g ON g.gw_id = gws.gw_id
       LEFT JOIN gw_deliveries d ON d.sg_id = $1 AND d.gw_id = gws.gw_id AND d.epoch = (
         SELECT MAX(d2.epoch) FROM gw_deliveries d2 WHERE d2.sg_id = $1 AND d2.gw_id = gws.gw_id)
       ORDER BY gws.gw_id`,
      [id],
    );
    const gateways: GatewayDeliveryStatus[] = gwRows.map((r) => ({
      gwId: r.gw_id,
      online: r.online === true,
      ackedEpoch: r.epoch,
      ackedAt: r.acked_at,
      lag: lag(r.epoch),
    }));
    return { sgId: id, currentEpoch: cur, members, gateways };
  });
}
