/**
 * Group Key acks from the GWs (rules K1, K2, docs/protocol.md "Authorization"): a GW acks only an (SG, epoch) it
 * was sent, and reports a PNE's ack only for a PNE it was sent that epoch for. Accepted acks feed the delivery
 * status, the 'key.ack' events and the ack latency metric.
 */
import type { MessageOf } from '../core/codec/index.js';
import { ErrorCode } from '../core/errors.js';
import { fail } from '../protocol/control.js';
import { emit } from './events.js';
import type { GwConn, ServerState, SgState } from './state.js';

/** Rule K2: `conn` may report `pneId`'s ack of an epoch whose delivery to it named `pneId`. */
export function mayAckFor(
  srv: ServerState,
  conn: GwConn,
  st: SgState,
  targets: ReadonlySet<string>,
  pneId: string,
): boolean {
  return targets.has(pneId) && srv.pneAt.get(pneId) === conn.id && st.members.has(pneId);
}

/** After a PNE ack: event, and the ack latency once every online member of the SG has this epoch. */
export async function onKeyAcked(
  srv: ServerState,
  sgId: string,
  epoch: number,
  gwId: string,
  pneId: string | undefined,
  memberAck: boolean,
): Promise<void> {
  emit(srv, { kind: 'key.ack', sgId, epoch, gwId, ...(pneId !== undefined ? { pneId } : {}) });
  const k = `${sgId}|${epoch}`;
  const t0 = srv.rotatedAt.get(k);
  if (t0 === undefined || !memberAck) return;
  const st = await srv.store.deliveryStatus(sgId);
  // A staged periodic epoch (activation ahead) is acked before it becomes current: still counts.
  if (epoch < st.currentEpoch) return;
  const online = st.members.filter((m) => m.online);
  if (online.length === 0 || online.some((m) => (m.ackedEpoch ?? 0) < epoch)) return;
  srv.rotatedAt.delete(k);
  srv.metrics.ackLatency((Date.now() - t0) / 1000);
}

/** The SG and the targets of this session's delivery of `epoch`: an (SG, epoch) it was not sent is refused. */
function sentTargets(
  srv: ServerState,
  conn: GwConn,
  sgId: string,
  epoch: number,
): { st: SgState; targets: ReadonlySet<string> } {
  const st = srv.groups.get(sgId);
  if (!st) fail(ErrorCode.NOT_FOUND, 'sgId');
  if (epoch > st.epoch) fail(ErrorCode.UNKNOWN_EPOCH, 'epoch');
  const targets = conn.sent.get(sgId)?.get(epoch);
  if (!targets) fail(ErrorCode.FORBIDDEN, 'epoch');
  return { st, targets };
}

/** key.ack: the GW's own (rule K1) or, with pneId, one PNE's (rule K2). */
export async function keyAck(srv: ServerState, conn: GwConn, msg: MessageOf<'key.ack'>): Promise<void> {
  // Rule K1: a GW acks only an (SG, epoch) it was sent; rule K2: for a PNE it was sent that epoch for.
  const { st, targets } = sentTargets(srv, conn, msg.sgId, msg.epoch);
  if (msg.pneId !== undefined) {
    if (!mayAckFor(srv, conn, st, targets, msg.pneId)) fail(ErrorCode.FORBIDDEN, 'pneId');
    await srv.store.recordDelivery({
      sgId: msg.sgId,
      epoch: msg.epoch,
      pneId: msg.pneId,
      gwId: conn.id,
      method: msg.method ?? 'unicast',
    });
  } else {
    await srv.store.recordGatewayAck({ sgId: msg.sgId, epoch: msg.epoch, gwId: conn.id });
  }
  conn.control.sendOk(msg.id);
  await onKeyAcked(srv, msg.sgId, msg.epoch, conn.id, msg.pneId, msg.pneId !== undefined);
}

/** key.delivery.report: many PNEs' acks of one epoch at once (rule K2). */
export async function deliveryReport(
  srv: ServerState,
  conn: GwConn,
  msg: MessageOf<'key.delivery.report'>,
): Promise<void> {
  // Rule K2, all or nothing: one entry the GW may not report refuses the whole report.
  const { st, targets } = sentTargets(srv, conn, msg.sgId, msg.epoch);
  const acks = msg.entries
    .filter((e) => mayAckFor(srv, conn, st, targets, e.pneId))
    .map((e) => ({
      sgId: msg.sgId,
      epoch: msg.epoch,
      pneId: e.pneId,
      gwId: conn.id,
      method: e.method,
    }));
  if (acks.length !== msg.entries.length) fail(ErrorCode.FORBIDDEN, 'entries');
  await srv.store.recordDeliveries(acks);
  conn.control.sendOk(msg.id);
  await onKeyAcked(
    srv,
    msg.sgId,
    msg.epoch,
    conn.id,
    acks.length === 1 ? acks[0]?.pneId : undefined,
    acks.length > 0,
  );
}
