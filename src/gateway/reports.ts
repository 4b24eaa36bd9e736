/**
 * Per-PNE delivery reports (key.delivery.report, rule K2 at the server) are batched per (SG, epoch) for a few
 * milliseconds, so a rekey acked by many PNEs costs the server one store transaction per batch instead of one
 * per PNE. A batch goes at once when the last attached target of its epoch has acked: waiting longer would
 * gather nothing more, and only delay the server's count of the update as delivered (issue #11 §1).
 *
 * Reports are per upstream session: a report queued or in flight when the session drops may never have been
 * written by the server (the node died with it, or the report was lost with the session). So a new session
 * forgets what was reported (`newUpstreamSession`), and when the server delivers an epoch the GW already holds
 * (its catch-up after pne.attach, docs/protocol.md "Reconnect"), the acks of that epoch are reported again at
 * once (`reReport`). The server records the first ack of (SG, PNE, epoch) only (docs/store.md "Deliveries").
 */
import { codeOf } from '../protocol/control.js';
import { GATEWAY_DEFAULTS } from './defaults.js';
import type { DeliveryEntry, GatewayState, PneConn } from './state.js';

/** Queues one PNE's ack of `epoch` (the caller has marked it reported) for the next key.delivery.report. */
export function report(st: GatewayState, sgId: string, epoch: number, entry: DeliveryEntry): void {
  const k = `${sgId}|${epoch}`;
  let r = st.reports.get(k);
  if (r === undefined) {
    // Counted once per report, not per ack: O(targets) per batch of at least reportBatchMs.
    r = { sgId, epoch, entries: [], outstanding: unreported(st, sgId, epoch) };
    st.reports.set(k, r);
  } else if (r.outstanding > 0) r.outstanding--;
  r.entries.push(entry);
  const max = Math.max(
    1,
    Math.min(st.opts.reportBatchMax ?? GATEWAY_DEFAULTS.reportBatchMax, GATEWAY_DEFAULTS.reportBatchMax),
  );
  // At 0 nothing more is expected; a target that attaches later, or one that never acks, only means the
  // count is off by one either way: the report then goes early with the rest following, or after the delay.
  if (r.entries.length >= max || r.outstanding === 0) flushReports(st);
  else
    st.reportTimer ??= setTimeout(
      () => flushReports(st),
      st.opts.reportBatchMs ?? GATEWAY_DEFAULTS.reportBatchMs,
    ).unref();
}

/** Attached targets of the key held for `sgId`, if it is `epoch`'s, whose ack of it is not reported yet; else -1. */
function unreported(st: GatewayState, sgId: string, epoch: number): number {
  const e = st.keys.get(sgId);
  if (e === undefined || e.epoch !== epoch) return -1;
  let n = 0;
  for (const id of e.targets) {
    const c = st.pnes.get(id);
    if (c?.phase === 'attached' && (c.sgs.get(sgId)?.reported ?? -1) < epoch) n++;
  }
  return n;
}

/** A new session up to the server: nothing is reported on it yet; what was queued for the old one is dropped. */
export function newUpstreamSession(st: GatewayState): void {
  if (st.reportTimer) clearTimeout(st.reportTimer);
  st.reportTimer = undefined;
  st.reports.clear();
  st.upGeneration++;
  for (const c of st.pnes.values()) for (const d of c.sgs.values()) d.reported = undefined;
}

/**
 * The server (re)delivered `epoch` of `sgId`, which the GW already held: the targets that acked it and were not
 * reported on this session are reported now (rule K2 at the server: this delivery named them).
 */
export function reReport(st: GatewayState, sgId: string, epoch: number, conns: readonly PneConn[]): void {
  let n = 0;
  for (const c of conns) {
    const d = c.sgs.get(sgId);
    if (!d || d.acked !== epoch || (d.reported ?? -1) >= epoch || d.ackedHow === undefined) continue;
    d.reported = epoch;
    report(st, sgId, epoch, { pneId: c.id, method: d.ackedHow.method, ackedAt: d.ackedHow.at });
    n++;
  }
  if (n === 0) return;
  flushReports(st);
  st.log.info({ sgId, epoch, pnes: n }, 'acks reported again to the server');
}

export function flushReports(st: GatewayState): void {
  if (st.reportTimer) clearTimeout(st.reportTimer);
  st.reportTimer = undefined;
  for (const r of st.reports.values()) {
    try {
      st.upControl?.send({ t: 'key.delivery.report', sgId: r.sgId, epoch: r.epoch, entries: r.entries });
    } catch (err) {
      st.log.debug({ code: codeOf(err) }, 'delivery report not sent');
    }
  }
  st.reports.clear();
}
