/**
 * Group Key acks from the GWs (rules K1, K2, docs/protocol.md "Authorization"): a GW acks only an (SG, epoch) it
 * was sent, and reports a PNE's ack only for a PNE it was sent that epoch for. Accepted acks feed the delivery
 * status, the 'key.ack' events and the ack latency metric.
 */
import type { MessageOf } from '../core/codec/index.js';
import { ErrorCode } from '../core/errors.js';
import { fail } from '../protocol/control.js';
import { servingGwOf } from './decisions.js';
import { SERVER_DEFAULTS } from './defaults.js';
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

/**
 * After an accepted ack: event, and, for members' acks, the ack tracker (ack-tracker.ts): the ack latency is
 * observed, and 'key.delivered' emitted, once, at the ack that leaves no member of the SG that is online here
 * without this epoch. O(1) per ack:
 * no status query. "Online here": served by a GW of this node and not waiting for its join update (it is not sent
 * this epoch). In a cluster each node so times the members its own GWs serve (docs/operator.md "Metrics").
 */
export function onKeyAcked(
  srv: ServerState,
  sgId: string,
  epoch: number,
  gwId: string,
  pneIds: readonly string[],
): void {
  emit(srv, {
    kind: 'key.ack',
    sgId,
    epoch,
    gwId,
    ...(pneIds.length === 1 ? { pneId: pneIds[0] } : {}),
  });
  const st = srv.groups.get(sgId);
  if (!st || pneIds.length === 0) return;
  const holds = holdsUp(srv, st);
  for (const p of pneIds) {
    // A staged periodic epoch (activation ahead) is acked before it becomes current: it counts (it is tracked).
    const t0 = srv.acks.ack(sgId, epoch, p, holds);
    if (t0 === undefined) continue;
    const ms = Date.now() - t0;
    srv.metrics.ackLatency(ms / 1000);
    srv.log.info({ sgId, epoch, updateId: st.updateId, ms }, 'all members online here acked the key update');
    // The same moment as an event: a client waiting for an update to reach every member (an operator's script,
    // `cpns bench rekey`) is told once, instead of polling the O(M) delivery status (docs/operator.md).
    emit(srv, {
      kind: 'key.delivered',
      sgId,
      epoch,
      ...(st.updateId !== undefined ? { updateId: st.updateId } : {}),
    });
  }
}

/** Who holds the ack latency up: a member served by a GW of this node, not waiting for its join update. */
export function holdsUp(srv: ServerState, st: SgState): (pneId: string) => boolean {
  return (p) => !st.pendingJoiners.has(p) && servingGwOf(srv, p) !== undefined;
}

/**
 * `ackReportMs` after a key update: the members online here that still have not acked it are logged, with the
 * update's id (docs/operator.md "Following a key update").
 */
export function reportLaggards(srv: ServerState, st: SgState, epoch: number): void {
  const ms = srv.opts.ackReportMs ?? SERVER_DEFAULTS.ackReportMs;
  if (ms <= 0) return;
  const updateId = st.updateId;
  const t = setTimeout(() => {
    if (srv.groups.get(st.sgId) !== st || st.epoch !== epoch) return; // superseded or deleted
    const lag = srv.acks.lagging(st.sgId, epoch, holdsUp(srv, st), 10);
    if (lag === undefined || lag.count === 0) return;
    srv.log.warn(
      { sgId: st.sgId, epoch, updateId, afterMs: ms, lagging: lag.count, pnes: lag.some },
      'members online here have not acked the key update',
    );
  }, ms);
  t.unref();
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

/**
 * Why the `ok` goes out once the ack is queued, not written: the rules (K1, K2) are checked here, synchronously, and
 * they are what the reply confirms; the row is bookkeeping, written within `deliveryBatchMs` (delivery-writer.ts).
 * Waiting for the write would only hold the GW's session queue up — the GW sends acks without waiting for
 * replies, and does not resend one either way. Key rotation stays durable before delivery (keys.ts).
 */

/** key.ack: the GW's own (rule K1) or, with pneId, one PNE's (rule K2). */
export async function keyAck(srv: ServerState, conn: GwConn, msg: MessageOf<'key.ack'>): Promise<void> {
  // Rule K1: a GW acks only an (SG, epoch) it was sent; rule K2: for a PNE it was sent that epoch for.
  const { st, targets } = sentTargets(srv, conn, msg.sgId, msg.epoch);
  if (msg.pneId !== undefined) {
    if (!mayAckFor(srv, conn, st, targets, msg.pneId)) fail(ErrorCode.FORBIDDEN, 'pneId');
    srv.deliveries.add([
      {
        sgId: msg.sgId,
        epoch: msg.epoch,
        pneId: msg.pneId,
        gwId: conn.id,
        method: msg.method ?? 'unicast',
      },
    ]);
  } else {
    srv.deliveries.add([{ sgId: msg.sgId, epoch: msg.epoch, gwId: conn.id }]);
  }
  conn.control.sendOk(msg.id);
  onKeyAcked(srv, msg.sgId, msg.epoch, conn.id, msg.pneId !== undefined ? [msg.pneId] : []);
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
  srv.deliveries.add(acks);
  conn.control.sendOk(msg.id);
  onKeyAcked(
    srv,
    msg.sgId,
    msg.epoch,
    conn.id,
    acks.map((a) => a.pneId),
  );
}
