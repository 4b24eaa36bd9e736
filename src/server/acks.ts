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
