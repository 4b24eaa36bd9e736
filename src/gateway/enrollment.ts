/**
 * The GW's enrollment relay: its anonymous listener forwards a PNE's enroll.request to the server, which alone
 * issues certificates. (The device side of enrollment is src/protocol/enroll-client.ts.)
 */
import { ErrorCode } from '../core/errors.js';
import { Control, codeOf, readEnrollRequest } from '../protocol/control.js';
import { CloseCode, type Session } from '../transport/session.js';
import { GATEWAY_DEFAULTS } from './defaults.js';
import type { GatewayState } from './state.js';

/**
 * An anonymous session on the enrollment listener: one enroll.request (role pne), relayed to the server as
 * enroll.relay while the GW is registered; the reply is passed through unchanged.
 */
export function onEnrollSession(st: GatewayState, s: Session): void {
  const control = Control.forSession(s);
  const t = setTimeout(
    () => s.close(CloseCode.POLICY, 'enrollment timeout'),
    GATEWAY_DEFAULTS.enrollSessionMs,
  );
  t.unref();
  st.counters.enrollSessions++;
  s.once('close', () => {
    clearTimeout(t);
    st.counters.enrollSessions--;
  });
  s.on('frame', (buf: Buffer) => {
    const msg = readEnrollRequest(buf, s, control);
    if (!msg) return;
    // Refusals are logged with the device's address and the reason, never the token.
    const refused = (reason: string | undefined) =>
      st.log.warn({ reason: reason ?? 'refused', peer: s.remoteAddress }, 'PNE enrollment refused');
    if (msg.role !== 'pne') {
      refused('role');
      control.sendError(ErrorCode.ENROLL_REFUSED, msg.id, 'role');
      return;
    }
    // `server`: this GW has no session with the CPNS Server right now (the device may retry later).
    if (!st.upControl || !st.registered) {
      refused('server');
      control.sendError(ErrorCode.ENROLL_REFUSED, msg.id, 'server');
      return;
    }
    const { id: _id, v: _v, t: _t, ...request } = msg;
    st.upControl.request({ t: 'enroll.relay', request }, GATEWAY_DEFAULTS.enrollRelayTimeoutMs).then(
      (r) => {
        if (r.t !== 'enroll.response') return control.sendError(ErrorCode.ENROLL_REFUSED, msg.id);
        // Passed through unchanged: the GW cannot forge it (it never holds the PNE's key).
        control.send({ t: 'enroll.response', id: msg.id, cert: r.cert, caCert: r.caCert });
      },
      // the server's reason (`field`, e.g. token.used) is passed on too
      (e) => {
        const field = (e as { field?: string }).field;
        refused(field);
        control.sendError(codeOf(e), msg.id, field);
      },
    );
  });
}
