/**
 * Per-PNE delivery reports (key.delivery.report, rule K2 at the server) are batched per (SG, epoch) for a few
 * milliseconds, so a rekey acked by many PNEs costs the server one store transaction per batch instead of one
 * per PNE.
 */
import { codeOf } from '../protocol/control.js';
import { GATEWAY_DEFAULTS } from './defaults.js';
import type { DeliveryEntry, GatewayState } from './state.js';

export function report(st: GatewayState, sgId: string, epoch: number, entry: DeliveryEntry): void {
  const k = `${sgId}|${epoch}`;
  const r = st.reports.get(k) ?? { sgId, epoch, entries: [] };
  st.reports.set(k, r);
  r.entries.push(entry);
  if (r.entries.length >= GATEWAY_DEFAULTS.reportBatchMax) flushReports(st);
  else st.reportTimer ??= setTimeout(() => flushReports(st), GATEWAY_DEFAULTS.reportBatchMs).unref();
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
