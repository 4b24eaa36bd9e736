/**
 * Enrollment (docs/protocol.md "Enrollment"): a one-time token, then a certificate of the CPNS CA for the
 * device's own CSR. Directly on the anonymous enrollment listener (one request at a time per session, bounded
 * in time), or relayed by a GW for a PNE behind it (rule E1).
 */

import { randomUUID } from 'node:crypto';
import type { MessageOf } from '../core/codec/index.js';
import { CpnsError, ErrorCode } from '../core/errors.js';
import { Control, codeOf, fail, readEnrollRequest } from '../protocol/control.js';
import type { Role } from '../store/store.js';
import { hashToken } from '../store/token.js';
import { certInfo, formatIdentity, issueFromCsr } from '../transport/ca.js';
import { CloseCode, type Session } from '../transport/session.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { countSession } from './events.js';
import type { GwConn, ServerState } from './state.js';

export function onEnrollSession(srv: ServerState, s: Session): void {
  const control = Control.forSession(s);
  const t = setTimeout(
    () => s.close(CloseCode.POLICY, 'enrollment timeout'),
    SERVER_DEFAULTS.enrollSessionMs,
  );
  t.unref();
  countSession(srv, 'enroll', true);
  s.once('close', () => {
    clearTimeout(t);
    countSession(srv, 'enroll', false);
  });
  let busy = false;
  s.on('frame', (buf: Buffer) => {
    const msg = readEnrollRequest(buf, s, control);
    if (!msg) return;
    if (busy) {
      control.sendError(ErrorCode.UNEXPECTED_MESSAGE, msg.id);
      return;
    }
    busy = true;
    enroll(srv, msg, { peer: s.remoteAddress }).then(
      (r) => {
        control.send({ t: 'enroll.response', id: msg.id, ...r });
        busy = false;
      },
      (e) => {
        control.sendError(codeOf(e), msg.id, (e as CpnsError).field);
        busy = false;
      },
    );
  });
}

/** Where an enrollment request came from, for the log of a refusal: the peer address, or the relaying GW. */
export interface EnrollOrigin {
  readonly peer?: string | undefined;
  readonly gw?: string | undefined;
}

export async function enroll(
  srv: ServerState,
  req: MessageOf<'enroll.relay'>['request'],
  from: EnrollOrigin = {},
): Promise<{ cert: string; caCert: string }> {
  // The one-time token first (docs/protocol.md, rule E1): without a valid token, no CSR parsing and no signing. A token
  // spent on a malformed CSR is gone (the device made its CSR itself; it asks the operator for a new one).
  const r = await srv.store.consumeToken(hashToken(req.token), req.role as Role);
  if (!r.ok) {
    await srv.store.appendAudit({ actor: 'server', action: 'enroll.refused', reason: r.reason });
    // Never the token: its reason and where the request came from (an address, or the GW that relayed it).
    srv.log.warn({ reason: r.reason, role: req.role, ...from }, 'enrollment refused');
    // `field` says why (token.unknown|used|expired|wrong_role): the device's operator can act on it; a 128-bit
    // random token gives a guesser nothing to learn from "unknown".
    fail(ErrorCode.ENROLL_REFUSED, `token.${r.reason}`);
  }
  const identity = formatIdentity(req.role, randomUUID());
  let cert: string;
  try {
    cert = await issueFromCsr(srv.ca, req.csr, identity, SERVER_DEFAULTS.certValidityDays);
  } catch {
    await srv.store.appendAudit({ actor: 'server', action: 'enroll.refused', reason: 'csr' });
    throw new CpnsError(ErrorCode.ENROLL_REFUSED, 'enrollment refused', 'csr');
  }
  const info = certInfo(cert);
  await srv.store.putIdentity({ id: identity, role: req.role, certSerial: info.serialHex, certPem: cert });
  // The token's label (the operator's name for the device) goes with the identity into the audit log.
  await srv.store.appendAudit({
    actor: 'server',
    action: 'identity.enroll',
    subject: identity,
    ...(r.token.label !== null ? { detail: { label: r.token.label } } : {}),
  });
  srv.log.info({ identity }, 'enrolled');
  return { cert, caCert: srv.ca.certPem };
}

/** enroll.relay (rule E1): a GW passes on a PNE's request; the token is the whole check. */
export async function enrollRelay(
  srv: ServerState,
  conn: GwConn,
  msg: MessageOf<'enroll.relay'>,
): Promise<void> {
  const r = await enroll(srv, msg.request, { gw: conn.id, peer: conn.session.remoteAddress });
  conn.control.send({ t: 'enroll.response', id: msg.id, ...r });
}
