/**
 * Which WebSocket upgrades become sessions, and how a refusal reaches the client (docs/transport.md "Secure
 * sessions"). The peer identity is read from the certificate TLS verified, never from the request. A refusal is
 * a plain HTTP answer whose `x-cpns-refusal` header names the reason, which the client maps to a typed error.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { type CertInfo, type CpnsRole, certInfo } from './ca.js';
import type { TransportErrorCode } from './errors.js';

export const REFUSAL_HEADER = 'x-cpns-refusal';

/** HTTP status, status text, and the reason carried in REFUSAL_HEADER (also the listener's 'refused' reason). */
export type UpgradeRefusal = [number, string, string];

export type Admission = { peer: CertInfo | null } | { refusal: UpgradeRefusal };

/** What the listener decides by; `isRevoked` is called on this object, as the caller's options object. */
export interface AdmissionPolicy {
  allowedRoles?: readonly CpnsRole[];
  isRevoked?: (identity: string, serialHex: string) => boolean;
}

export function refuseUpgrade(socket: Duplex, status: number, text: string, reason: string): void {
  // Plain HTTP answer to the upgrade, then close: the client maps the reason header to a typed error.
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\n${REFUSAL_HEADER}: ${reason}\r\nContent-Length: 0\r\n\r\n`,
  );
}

const REFUSAL_CODES: Record<string, TransportErrorCode> = {
  'not-authenticated': 'NOT_AUTHENTICATED',
  'bad-identity': 'NOT_AUTHENTICATED',
  revoked: 'REVOKED',
  role: 'ROLE_REFUSED',
};

/** Client side: the typed error code for the reason header of a refused upgrade. */
export function refusalErrorCode(reason: string): TransportErrorCode {
  // Own keys only: a hostile server's header `constructor` or `toString` must not reach Object.prototype.
  return Object.hasOwn(REFUSAL_CODES, reason)
    ? (REFUSAL_CODES[reason] ?? 'UPGRADE_REFUSED')
    : 'UPGRADE_REFUSED';
}

/**
 * Decides whether an upgrade on `path` becomes a session. On an enrollment listener every upgrade on the path is
 * an anonymous session (peer null); otherwise the verified certificate must carry a CPNS identity of an allowed
 * role that is not revoked.
 */
export function admitUpgrade(
  req: IncomingMessage,
  tlsSock: TLSSocket,
  listener: { path: string; enrollment: boolean },
  policy: AdmissionPolicy,
): Admission {
  let path: string;
  try {
    path = new URL(req.url ?? '/', 'https://cpns.invalid').pathname;
  } catch {
    path = '';
  }
  if (path !== listener.path) return { refusal: [404, 'Not Found', 'path'] };
  if (listener.enrollment) return { peer: null };
  if (!tlsSock.authorized) return { refusal: [401, 'Unauthorized', 'not-authenticated'] };
  let peer: CertInfo;
  try {
    peer = certInfo(tlsSock.getPeerCertificate());
  } catch {
    return { refusal: [401, 'Unauthorized', 'bad-identity'] };
  }
  const allowed = policy.allowedRoles;
  if (allowed && !allowed.includes(peer.role)) return { refusal: [403, 'Forbidden', 'role'] };
  let revoked = true; // a failing revocation hook refuses: fail closed
  try {
    revoked = policy.isRevoked?.(peer.identity, peer.serialHex) ?? false;
  } catch {}
  if (revoked) return { refusal: [403, 'Forbidden', 'revoked'] };
  return { peer };
}
