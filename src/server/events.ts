/** The CPNS Server's change events (the public `events` emitter) and the metrics of sessions and key updates. */
import type { SessionRole } from '../metrics/index.js';
import { codeOf } from '../protocol/control.js';
import type { ServerState } from './state.js';

/**
 * What the CPNS Server reports on its `events` emitter ('change'): ids, epochs, reasons and flags only — never key
 * material. The operator surface (src/admin) streams these to the console.
 */
export interface ChangeEvent {
  /**
   * e.g. 'sg.create', 'sg.delete', 'member.add', 'member.remove', 'key.update', 'key.ack', 'key.delivered',
   * 'pn.change'.
   */
  kind: string;
  sgId?: string;
  epoch?: number;
  reason?: string;
  pneId?: string;
  gwId?: string;
  identity?: string;
  online?: boolean;
  /** 'key.update', 'key.delivered': the id of the update's cause (docs/operator.md "Following a key update"). */
  updateId?: string;
}

/** Emits a 'change' event (ids, epochs, reasons, flags only; never key material). A listener cannot break us. */
export function emit(srv: ServerState, ev: ChangeEvent): void {
  try {
    srv.events.emit('change', ev);
  } catch (e) {
    srv.log.warn({ code: codeOf(e), kind: ev.kind }, 'change listener failed');
  }
}

export function countSession(srv: ServerState, role: SessionRole, open: boolean): void {
  if (open) srv.metrics.sessionOpened(role);
  else srv.metrics.sessionClosed(role);
}

/**
 * After a new epoch: metrics, event, and the ack tracking of that epoch (with its start, for the ack latency). `remote`: an epoch
 * another cluster node committed (its update is counted there; this node delivers it, and times its acks here).
 */
export function onKeyUpdated(
  srv: ServerState,
  sgId: string,
  epoch: number,
  reason: string,
  remote = false,
  updateId?: string,
): void {
  if (!remote) srv.metrics.keyUpdated(reason);
  // Every member owes this epoch now (the previous epoch's tracking goes): ack-tracker.ts, acks.ts.
  srv.acks.start(sgId, epoch, srv.groups.get(sgId)?.members ?? [], Date.now());
  emit(srv, { kind: 'key.update', sgId, epoch, reason, ...(updateId !== undefined ? { updateId } : {}) });
}
