/**
 * A PNE's session to this GW: authenticated sessions of the PNE listener (one per PNE identity; a newer one
 * replaces the older) and anonymous ones of the enrollment listener (enrollment.ts). Its frames: group messages
 * go to relay.ts, control messages to the PNE authorization table (pne-messages.ts), in order, tunnel frames to
 * the tunnel relay.
 */
import { serveFrame } from '../protocol/control.js';
import { CloseCode, type Session } from '../transport/session.js';
import { onEnrollSession } from './enrollment.js';
import { handlePne } from './pne-messages.js';
import { fromPne } from './relay.js';
import { type GatewayState, newPneConn, type PneConn } from './state.js';

export function onPneSession(st: GatewayState, s: Session): void {
  if (st.closed) {
    s.close(CloseCode.GOING_AWAY, 'closing');
    return;
  }
  if (s.anonymous || s.identity === null) {
    onEnrollSession(st, s);
    return;
  }
  const id = s.identity;
  if (st.revoked.has(id)) {
    s.close(CloseCode.REVOKED, 'revoked');
    return;
  }
  const old = st.pnes.get(id);
  if (old) old.session.close(CloseCode.REPLACED, 'replaced by a newer session');
  const c = newPneConn(id, s);
  st.pnes.set(id, c);
  st.relay?.attach(s);
  s.on('frame', (buf: Buffer) => onPneFrame(st, c, buf));
  s.once('close', () => {
    if (st.pnes.get(id) !== c) return;
    st.pnes.delete(id);
    if (c.phase === 'attached' && st.registered && !st.closed) {
      st.upControl?.request({ t: 'pne.status', pneId: id, online: false }).catch(() => {});
    }
  });
}

function onPneFrame(st: GatewayState, c: PneConn, buf: Buffer): void {
  serveFrame(
    c,
    buf,
    (frame, payload) => fromPne(st, c, frame, payload),
    (m) => handlePne(st, c, m),
    st.log,
    'PNE',
  );
}
