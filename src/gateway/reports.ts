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
  const r = st.reports.get(k) ?? { sgId, epoch, entries: [] };
  st.reports.set(k, r);
  r.entries.push(entry);
  const max = Math.max(
    1,
    Math.min(st.opts.reportBatchMax ?? GATEWAY_DEFAULTS.reportBatchMax, GATEWAY_DEFAULTS.reportBatchMax),
  );
  // Counted for every report, also one that fills the batch.
  const last = lastOutstanding(st, sgId, epoch);
  if (r.entries.length >= max || last) flushReports(st);
  else
    st.reportTimer ??= setTimeout(
      () => flushReports(st),
      st.opts.reportBatchMs ?? GATEWAY_DEFAULTS.reportBatchMs,
    ).unref();
}

/**
 * One more ack of `epoch` reported: true when no attached target of the key held (if it is that epoch's) is left
 * unreported. Counted once per epoch and session (O(targets)), then one decrement per report. A target that
 * attaches after the count, or one that never acks, only puts the count off by one: the report then goes a little
 * early with the rest following, or after `reportBatchMs` as before.
 */
function lastOutstanding(st: GatewayState, sgId: string, epoch: number): boolean {
  const e = st.keys.get(sgId);
  if (e === undefined || e.epoch !== epoch) return false;
  if (e.unreported === undefined) {
    let n = 0;
    for (const id of e.targets) {
      const c = st.pnes.get(id);
      if (c?.phase === 'attached' && (c.sgs.get(sgId)?.reported ?? -1) < epoch) n++;
    }
    e.unreported = n;
  } else if (e.unreported > 0) e.unreported--;
  return e.unreported === 0;
}

/** A new session up to the server: nothing is reported on it yet; what was queued for the old one is dropped. */
export function newUpstreamSession(st: GatewayState): void {
  if (st.reportTimer) clearTimeout(st.reportTimer);
  st.reportTimer = undefined;
  st.reports.clear();
  st.upGeneration++;
  for (const c of st.pnes.values()) for (const d of c.sgs.values()) d.reported = undefined;
  for (const e of st.keys.values()) e.unreported = undefined;
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
