/**
 * The transport family of `CodedError` (docs/errors.md): failure causes the core `ErrorCode` table does not
 * cover. Decoding errors (truncated, unknown kind, too large) reuse `CpnsError` with MALFORMED / TOO_LARGE;
 * these codes are about sessions, certificates and sockets. Messages are fixed texts: never key material, never
 * peer bytes.
 */
import { CodedError } from '../core/errors.js';

export const TransportErrorCode = {
  /**
   * TLS handshake failed or the peer closed during it (bad CA, no certificate, TLS < 1.3...). `field` is `caPem`
   * when the peer's certificate does not chain to the pinned CA (the CA file is another CA's).
   */
  TLS_REFUSED: 'TLS_REFUSED',
  /** Nothing answered: connection refused, timed out, host or network unreachable, name not resolved. */
  UNREACHABLE: 'UNREACHABLE',
  /** The peer presented no valid CPNS client certificate on an authenticated path. */
  NOT_AUTHENTICATED: 'NOT_AUTHENTICATED',
  /** The identity is revoked: refused at connect, or its open session was closed. */
  REVOKED: 'REVOKED',
  /** The peer's role is not accepted on this endpoint (e.g. a PNE on the server's GW endpoint). */
  ROLE_REFUSED: 'ROLE_REFUSED',
  /** The peer's certificate names another identity than the one expected (CPNS TS §5.3.2 server authentication). */
  PEER_IDENTITY_MISMATCH: 'PEER_IDENTITY_MISMATCH',
  /** A certificate carries no CPNS identity, several, or a malformed one. */
  BAD_IDENTITY: 'BAD_IDENTITY',
  /** A CSR is malformed, too large, not ECDSA P-256, or its self-signature does not verify. */
  BAD_CSR: 'BAD_CSR',
  /** CA material is malformed or the key does not match the certificate. */
  BAD_CA: 'BAD_CA',
  /** A frame/message exceeds the configured maximum and was refused. */
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  /** Operation on a session or tunnel that is closed. */
  CLOSED: 'CLOSED',
  /** The peer sent more tunnel data than the bounded buffer allows. */
  TUNNEL_OVERFLOW: 'TUNNEL_OVERFLOW',
  /** Too many tunnels open on one session. */
  TUNNEL_LIMIT: 'TUNNEL_LIMIT',
  /** A connection or handshake did not complete in time. */
  TIMEOUT: 'TIMEOUT',
  /** The server answered the upgrade with an unexpected HTTP status (wrong path, not a CPNS endpoint). */
  UPGRADE_REFUSED: 'UPGRADE_REFUSED',
  /** A datagram exceeds the broadcast medium's maximum payload (1200 bytes). */
  DATAGRAM_TOO_LARGE: 'DATAGRAM_TOO_LARGE',
} as const;

export type TransportErrorCode = (typeof TransportErrorCode)[keyof typeof TransportErrorCode];

export class TransportError extends CodedError<TransportErrorCode> {
  readonly family = 'transport';

  constructor(code: TransportErrorCode, message: string, field?: string, options?: { cause?: unknown }) {
    super(code, message, field, options);
    this.name = 'TransportError';
  }
}

export function isTransportError(e: unknown, code?: TransportErrorCode): e is TransportError {
  return e instanceof TransportError && (code === undefined || e.code === code);
}
