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
import { type Ctx, i2b, readTx, relaxedTx } from './db.js';
import { currentEpoch } from './keys.js';

/**
 * The SG exists and `epoch` was allocated. `hwms` caches each SG's high-water mark for one transaction: a batch of
 * acks names a few SGs many times, and the mark cannot change inside the transaction that reads it.
 */
function checkEpoch(ctx: Ctx, sgId: string, epoch: number, hwms: Map<string, number>): void {
  let hwm = hwms.get(sgId);
  if (hwm === undefined) {
    const g = ctx.db.prepare('SELECT epoch_hwm FROM service_groups WHERE sg_id = ?').get(sgId) as
      | { epoch_hwm: number }
      | undefined;
    if (g === undefined) throw new StoreError('NOT_FOUND', 'no such service group', 'sgId');
    hwm = g.epoch_hwm;
    hwms.set(sgId, hwm);
  }
  if (epoch > hwm) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'epoch was never allocated', 'epoch');
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
export function recordDeliveries(ctx: Ctx, acks: readonly DeliveryAck[]): void {
  const checked = acks.map((a) => checkAck(ctx, a));
  // Bookkeeping: a batch lost to a power cut is re-reported by the GWs (docs/store.md).
  relaxedTx(ctx.db, () => {
    const ins = ctx.db.prepare(
      `INSERT INTO deliveries (sg_id, pne_id, epoch, gw_id, method, acked_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    );
    const hwms = new Map<string, number>();
    for (const a of checked) {
      checkEpoch(ctx, a.sgId, a.epoch, hwms);
      ins.run(a.sgId, a.pneId, a.epoch, a.gwId, a.method, a.ackedAt);
    }
  });
}

/** The first ack of (sg, GW, epoch) wins, as for deliveries; many in one transaction. */
export function recordGatewayAcks(ctx: Ctx, acks: readonly GatewayAck[]): void {
  const checked = acks.map((a) => ({
    sgId: v.sgId(a.sgId),
    epoch: v.epoch(a.epoch),
    gwId: v.gwId(a.gwId),
    at: a.ackedAt === undefined ? ctx.now() : v.time(a.ackedAt, 'ackedAt'),
  }));
  relaxedTx(ctx.db, () => {
    const ins = ctx.db.prepare(
      'INSERT INTO gw_deliveries (sg_id, gw_id, epoch, acked_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
    );
    const hwms = new Map<string, number>();
    for (const a of checked) {
      checkEpoch(ctx, a.sgId, a.epoch, hwms);
      ins.run(a.sgId, a.gwId, a.epoch, a.at);
    }
  });
}

interface MemberRow {
  pne_id: string;
  cur_gw: string | null;
  online: number | null;
  epoch: number | null;
  acked_at: number | null;
  method: DeliveryMethod | null;
  d_gw: string | null;
}

interface GwRow {
  gw_id: string;
  online: number | null;
  epoch: number | null;
  acked_at: number | null;
}

export function deliveryStatus(ctx: Ctx, sgId: string, now?: number): DeliveryStatus {
  const id = v.sgId(sgId);
  const when = now === undefined ? ctx.now() : v.time(now, 'now');
  return readTx(ctx.db, () => {
    if (ctx.db.prepare('SELECT 1 FROM service_groups WHERE sg_id = ?').get(id) === undefined)
      throw new StoreError('NOT_FOUND', 'no such service group', 'sgId');
    const cur = currentEpoch(ctx, id, when);
    const lag = (e: number | null) => Math.max(0, cur - (e ?? 0));
    const rows = ctx.db
      .prepare(
        `SELECT m.pne_id, p.gw_id AS cur_gw, p.online, d.epoch, d.acked_at, d.method, d.gw_id AS d_gw
         FROM members m
         LEFT JOIN pnes p ON p.pne_id = m.pne_id
         LEFT JOIN deliveries d ON d.sg_id = m.sg_id AND d.pne_id = m.pne_id AND d.epoch = (
           SELECT MAX(d2.epoch) FROM deliveries d2 WHERE d2.sg_id = m.sg_id AND d2.pne_id = m.pne_id)
         WHERE m.sg_id = ?
         ORDER BY m.pne_id`,
      )
      .all(id) as MemberRow[];
    const members: MemberDeliveryStatus[] = rows.map((r) => ({
      pneId: r.pne_id,
      gwId: r.cur_gw ?? r.d_gw,
      online: i2b(r.online),
      ackedEpoch: r.epoch,
      ackedAt: r.acked_at,
      method: r.method,
      lag: lag(r.epoch),
    }));
    const gwRows = ctx.db
      .prepare(
        `WITH gws (gw_id) AS (
           SELECT p.gw_id FROM members m JOIN pnes p ON p.pne_id = m.pne_id
           WHERE m.sg_id = ? AND p.gw_id IS NOT NULL
           UNION
           SELECT gw_id FROM gw_deliveries WHERE sg_id = ?)
         SELECT gws.gw_id, g.online, d.epoch, d.acked_at
         FROM gws
         LEFT JOIN gateways g ON g.gw_id = gws.gw_id
         LEFT JOIN gw_deliveries d ON d.sg_id = ? AND d.gw_id = gws.gw_id AND d.epoch = (
           SELECT MAX(d2.epoch) FROM gw_deliveries d2 WHERE d2.sg_id = ? AND d2.gw_id = gws.gw_id)
         ORDER BY gws.gw_id`,
      )
      .all(id, id, id, id) as GwRow[];
    const gateways: GatewayDeliveryStatus[] = gwRows.map((r) => ({
      gwId: r.gw_id,
      online: i2b(r.online),
      ackedEpoch: r.epoch,
      ackedAt: r.acked_at,
      lag: lag(r.epoch),
    }));
    return { sgId: id, currentEpoch: cur, members, gateways };
  });
}
