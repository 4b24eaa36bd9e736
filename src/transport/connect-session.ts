/**
 * The client end of a secure session (docs/transport.md "Secure sessions"): mutual TLS 1.3 to a SecureServer,
 * then the WebSocket upgrade. The server is checked against the pinned CPNS CA, and by its CPNS identity or role
 * when one is expected (that replaces the host-name check); a refused upgrade becomes a typed TransportError.
 */
import type { IncomingMessage } from 'node:http';
import tls, { type PeerCertificate } from 'node:tls';
import { WebSocket } from 'ws';
import { type CertInfo, type CpnsRole, certInfo } from './ca.js';
import { TransportError } from './errors.js';
import { DEFAULT_MAX_FRAME } from './framing.js';
import { CLOSE_TIMEOUT_MS, CONNECT_DEADLINE_SLACK_MS, DEFAULT_CONNECT_TIMEOUT_MS } from './limits.js';
import { DEFAULT_HEARTBEAT, type HeartbeatOptions, Session } from './session.js';
import { TLS_PARAMS } from './tls-params.js';
import { REFUSAL_HEADER, refusalErrorCode } from './upgrade-admission.js';

export interface SecureClientOptions {
  /** The CPNS CA certificate: the server (or GW) certificate must chain to it. */
  caPem: string;
  /** Client certificate and PKCS#8 key. Both absent = anonymous connect (enrollment only). */
  certPem?: string;
  keyPem?: string;
  /**
   * When set, the server certificate must name exactly this identity (this replaces the host-name check).
   * When neither this nor expectedServerRole is set, the URL's host must match the certificate's DNS/IP SANs.
   */
  expectedServerIdentity?: string;
  /** When set, the server certificate's identity must have this role (a PNE expects 'gw'). */
  expectedServerRole?: CpnsRole;
  maxPayload?: number;
  /** Client-side heartbeat, so a dead server is noticed and the ReconnectingClient reconnects. */
  heartbeat?: HeartbeatOptions | false;
  /** Whole connect (TCP + TLS + upgrade) must finish within this time (ms). Default 10 s. */
  handshakeTimeoutMs?: number;
}

/** The server-certificate check of one connect, and what it learnt: the peer, or why the peer is refused. */
interface ServerCheck {
  peer: CertInfo | null;
  identityError: TransportError | undefined;
  check: (host: string, cert: PeerCertificate) => Error | undefined;
}

function serverCheck(opts: SecureClientOptions): ServerCheck {
  const pinned = opts.expectedServerIdentity !== undefined || opts.expectedServerRole !== undefined;
  const state: ServerCheck = {
    peer: null,
    identityError: undefined,
    check: (host, cert) => {
      // With an expected CPNS identity/role, that check replaces the host-name check: the CA certifies the
      // identity, and a GW reached on a local address has no DNS/IP SAN. Without one, the usual host-name check
      // (DNS/IP SANs) applies, and the certificate must still carry a valid CPNS identity.
      if (!pinned) {
        const hostErr = tls.checkServerIdentity(host, cert);
        if (hostErr) return hostErr;
      }
      let peer: CertInfo;
      try {
        peer = certInfo(cert);
        state.peer = peer;
      } catch (e) {
        state.identityError = e as TransportError;
        return state.identityError;
      }
      if (
        (opts.expectedServerIdentity !== undefined && peer.identity !== opts.expectedServerIdentity) ||
        (opts.expectedServerRole !== undefined && peer.role !== opts.expectedServerRole)
      ) {
        state.identityError = new TransportError(
          'PEER_IDENTITY_MISMATCH',
          'server is not the expected identity',
        );
        return state.identityError;
      }
      return undefined;
    },
  };
  return state;
}

function openWebSocket(
  url: string,
  opts: SecureClientOptions,
  check: ServerCheck,
  maxPayload: number,
): WebSocket {
  return new WebSocket(url, {
    ca: opts.caPem,
    ...(opts.certPem !== undefined ? { cert: opts.certPem, key: opts.keyPem } : {}),
    ...TLS_PARAMS,
    rejectUnauthorized: true,
    checkServerIdentity: check.check as unknown as () => boolean, // @types/ws mistypes the return
    perMessageDeflate: false,
    maxPayload,
    followRedirects: false,
    handshakeTimeout: opts.handshakeTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    closeTimeout: CLOSE_TIMEOUT_MS,
  } as ConstructorParameters<typeof WebSocket>[2]);
}

function clientSession(
  ws: WebSocket,
  opts: SecureClientOptions,
  peer: CertInfo | null,
  remoteAddress: string | undefined,
  remotePort: number | undefined,
  maxPayload: number,
): Session {
  return new Session({
    ws,
    side: 'client',
    peer,
    anonymous: opts.certPem === undefined,
    remoteAddress,
    remotePort,
    heartbeat: opts.heartbeat ?? DEFAULT_HEARTBEAT,
    maxPayload,
  });
}

/** Opens a secure session (mutual TLS 1.3) to `url` (wss://...). Resolves once the WebSocket is open. */
export function connectSession(url: string, opts: SecureClientOptions): Promise<Session> {
  if ((opts.certPem === undefined) !== (opts.keyPem === undefined)) {
    return Promise.reject(
      new TransportError('NOT_AUTHENTICATED', 'certPem and keyPem go together', 'certPem'),
    );
  }
  const maxPayload = opts.maxPayload ?? DEFAULT_MAX_FRAME;
  return new Promise<Session>((resolve, reject) => {
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(e);
    };
    const check = serverCheck(opts);
    const ws = openWebSocket(url, opts, check, maxPayload);
    const timer = setTimeout(
      () => fail(new TransportError('TIMEOUT', 'connect timed out')),
      (opts.handshakeTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS) + CONNECT_DEADLINE_SLACK_MS,
    );
    let remoteAddress: string | undefined;
    let remotePort: number | undefined;
    ws.once('upgrade', (res: IncomingMessage) => {
      remoteAddress = res.socket.remoteAddress;
      remotePort = res.socket.remotePort;
    });
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      const code = refusalErrorCode(String(res.headers[REFUSAL_HEADER] ?? ''));
      res.resume();
      fail(new TransportError(code, `server refused the session (${res.statusCode ?? 0})`));
    });
    ws.once('error', (err: Error & { code?: string }) => {
      if (check.identityError) return fail(check.identityError);
      fail(connectError(err));
    });
    // Before 'open' the peer may still refuse our certificate (TLS 1.3 sends the client certificate last):
    // 'close' then arrives without 'open'.
    ws.once('close', () => fail(new TransportError('TLS_REFUSED', 'connection closed during setup')));
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.removeAllListeners('close');
      ws.removeAllListeners('error');
      resolve(clientSession(ws, opts, check.peer, remoteAddress, remotePort, maxPayload));
    });
  });
}

/** Socket errors where nothing answered (no TLS was ever spoken). */
const UNREACHABLE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);

/** OpenSSL's verdicts on a peer certificate that does not chain to the pinned CA (node:tls error codes). */
const UNTRUSTED_CERT_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

/**
 * A failed connect, typed where the cause is known: UNREACHABLE when nothing answered; TLS_REFUSED with
 * `field: 'caPem'` when the peer's certificate is not from the pinned CA; TLS_REFUSED otherwise (the peer
 * refused our certificate, no TLS 1.3...). The socket error stays the `cause` (never in the message).
 */
function connectError(err: Error & { code?: string }): TransportError {
  const code = err.code ?? '';
  if (UNREACHABLE_CODES.has(code))
    return new TransportError('UNREACHABLE', 'nothing answered at that address', undefined, { cause: err });
  if (UNTRUSTED_CERT_CODES.has(code))
    return new TransportError('TLS_REFUSED', 'peer certificate not issued by the pinned CA', 'caPem', {
      cause: err,
    });
  return new TransportError('TLS_REFUSED', 'secure session could not be established', undefined, {
    cause: err,
  });
}

/** Anonymous connect for enrollment: the server is authenticated against the pinned CA; the client is not. */
export function connectAnonymousSession(
  url: string,
  opts: Omit<SecureClientOptions, 'certPem' | 'keyPem'>,
): Promise<Session> {
  return connectSession(url, { ...opts, certPem: undefined, keyPem: undefined });
}

export const SecureClient = { connect: connectSession, connectAnonymous: connectAnonymousSession } as const;
