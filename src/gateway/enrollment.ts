/**
 * Enrollment through a PN GW: the device side (`enrollAt`, on an anonymous session to an enrollment listener of
 * the server or of a GW) and the GW's enrollment relay (its anonymous listener forwards a PNE's enroll.request to
 * the server, which alone issues certificates).
 */
import { CpnsError, ErrorCode } from '../core/errors.js';
import { Control, codeOf, decodeControl, fail, readEnrollRequest } from '../roles/control.js';
import { generateKeyAndCsr, identityFromCert } from '../transport/ca.js';
import { decodeFrame } from '../transport/framing.js';
import { CloseCode, connectAnonymousSession, type Session } from '../transport/session.js';
import { GATEWAY_DEFAULTS } from './defaults.js';
import type { GatewayState } from './state.js';
import type { Credentials } from './types.js';

/**
 * Device side of enrollment on an anonymous session to an endpoint's enrollment listener (`enrollUrl` of the
 * server or the GW: its own port, docs/transport.md); `expectedRole` is the role of the endpoint's certificate.
 */
export async function enrollAt(
  enrollUrl: string,
  caPem: string,
  token: string,
  role: 'gw' | 'pne',
  expectedRole: 'server' | 'gw',
): Promise<Credentials> {
  const { keyPem, csrPem } = await generateKeyAndCsr(`cpns-${role}`);
  const s = await connectAnonymousSession(enrollUrl, {
    caPem,
    expectedServerRole: expectedRole,
    heartbeat: false,
  });
  const control = Control.forSession(s);
  s.on('frame', (buf: Buffer) => {
    try {
      const f = decodeFrame(buf, { maxFrame: s.maxPayload });
      if (f.kind === 'control') control.accept(decodeControl(f.payload));
    } catch {}
  });
  s.once('close', () => control.failAll(new CpnsError(ErrorCode.ENROLL_REFUSED, 'enrollment refused')));
  try {
    const r = await control.request(
      { t: 'enroll.request', token, role, csr: csrPem },
      GATEWAY_DEFAULTS.enrollRelayTimeoutMs,
    );
    if (r.t !== 'enroll.response') fail(ErrorCode.UNEXPECTED_MESSAGE);
    const identity = identityFromCert(r.cert);
    if (!identity.startsWith(`urn:cpns:${role}:`)) fail(ErrorCode.ENROLL_REFUSED);
    return { identity, certPem: r.cert, keyPem, caPem };
  } finally {
    s.close();
  }
}

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
  s.once('close', () => clearTimeout(t));
  s.on('frame', (buf: Buffer) => {
    const msg = readEnrollRequest(buf, s, control);
    if (!msg) return;
    if (msg.role !== 'pne' || !st.upControl || !st.registered) {
      control.sendError(ErrorCode.ENROLL_REFUSED, msg.id);
      return;
    }
    const { id: _id, v: _v, t: _t, ...request } = msg;
    st.upControl.request({ t: 'enroll.relay', request }, GATEWAY_DEFAULTS.enrollRelayTimeoutMs).then(
      (r) => {
        if (r.t !== 'enroll.response') return control.sendError(ErrorCode.ENROLL_REFUSED, msg.id);
        // Passed through unchanged: the GW cannot forge it (it never holds the PNE's key).
        control.send({ t: 'enroll.response', id: msg.id, cert: r.cert, caCert: r.caCert });
      },
      (e) => control.sendError(codeOf(e), msg.id),
    );
  });
}
