/**
 * The end-to-end CPNS Server ↔ PNE secure session (CPNS TS §5.3.2) carried through the PN GW (docs/transport.md
 * "The tunnel"). The PNE runs a TLS 1.3 client, the server a TLS 1.3 server, both with their own CPNS
 * certificates (mutual authentication), over a TunnelStream: the GW between them only relays the records, so it
 * can neither read them (no keys) nor alter them undetected (the record's AEAD fails and the connection dies).
 * The PNE identity therefore comes from the certificate inside the tunnel, never from the GW.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import tls, { type PeerCertificate, type SecureContext } from 'node:tls';
import { type CertInfo, type CpnsRole, certInfo, issuedByCa } from './ca.js';
import { TransportError } from './errors.js';
import { DEFAULT_TUNNEL_TLS_TIMEOUT_MS } from './limits.js';
import type { Session } from './session.js';
import { TLS_PARAMS } from './tls-params.js';
import { tunnelMuxFor } from './tunnel-mux.js';
import type { TunnelStream } from './tunnel-stream.js';

/**
 * The same TLS parameters as the sessions (tls-params.ts): TLS 1.3 only, X25519 / P-256 only. Without the group
 * list, node would also offer finite-field groups, which cost the server far more than the PNE.
 */
const TUNNEL_TLS_VERSIONS = TLS_PARAMS;

export interface TunnelTlsCredentials {
  certPem: string;
  keyPem: string;
  caPem: string;
}

export interface OpenTunnelTlsOptions extends TunnelTlsCredentials {
  /** The server identity the PNE expects; default: any `urn:cpns:server:*` certified by the CA. */
  expectedServerIdentity?: string;
  /** Opaque open metadata (for the GW relay); default empty. */
  meta?: Uint8Array;
  timeoutMs?: number;
}

export interface TunnelTlsSocket {
  socket: TLSSocket;
  /** The peer's verified certificate information. */
  peer: CertInfo;
  stream: TunnelStream;
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => {
      onTimeout();
      reject(new TransportError('TIMEOUT', 'tunnel TLS handshake timed out'));
    }, ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/**
 * Tunnel acceptance byte: the first application byte the server sends on a tunnel TLS connection. TLS 1.3
 * finishes the client's handshake before the server has checked the client certificate, and TLS cannot carry
 * "revoked" or "wrong role" anyway; this byte tells the PNE that it was accepted, or why not, before any message.
 */
export const TunnelAccept = {
  ACCEPTED: 0x01,
  REVOKED: 0x02,
  ROLE_REFUSED: 0x03,
  NOT_AUTHENTICATED: 0x04,
} as const;

const ACCEPT_ERRORS: Record<number, TransportError> = {
  [TunnelAccept.REVOKED]: new TransportError('REVOKED', 'server refused the tunnel: identity revoked'),
  [TunnelAccept.ROLE_REFUSED]: new TransportError('ROLE_REFUSED', 'server refused the tunnel: role'),
  [TunnelAccept.NOT_AUTHENTICATED]: new TransportError('NOT_AUTHENTICATED', 'server refused the tunnel'),
};

/**
 * The PNE's check of the server certificate inside a tunnel: there is no host name there, so the server is
 * checked by its CPNS identity (or, by default, its role). Keeps the verified peer, or why it was refused.
 */
interface ExpectedServerCheck {
  peer: CertInfo | undefined;
  idError: Error | undefined;
  check: (host: string, cert: PeerCertificate) => Error | undefined;
}

function expectedServerCheck(opts: OpenTunnelTlsOptions): ExpectedServerCheck {
  const state: ExpectedServerCheck = {
    peer: undefined,
    idError: undefined,
    check: (_host, cert) => {
      try {
        const info = certInfo(cert);
        const ok =
          opts.expectedServerIdentity !== undefined
            ? info.identity === opts.expectedServerIdentity
            : info.role === 'server';
        if (!ok) throw new TransportError('PEER_IDENTITY_MISMATCH', 'tunnel peer is not the expected server');
        state.peer = info;
        return undefined;
      } catch (e) {
        state.idError = e as Error;
        return state.idError;
      }
    },
  };
  return state;
}

/** Resolves once the server's acceptance byte says ACCEPTED; any other byte, error or close rejects. */
function awaitAcceptance(
  socket: TLSSocket,
  stream: TunnelStream,
  server: ExpectedServerCheck,
): Promise<TunnelTlsSocket> {
  return new Promise<TunnelTlsSocket>((resolve, reject) => {
    const cleanup = (): void => {
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('readable', onReadable);
    };
    const onError = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(
        server.idError ?? new TransportError('TLS_REFUSED', 'tunnel TLS failed', undefined, { cause: err }),
      );
    };
    const onClose = (): void =>
      onError(stream.resetReason ?? new TransportError('TLS_REFUSED', 'tunnel closed during setup'));
    const onReadable = (): void => {
      const b: Buffer | null = socket.read(1);
      if (b === null) return;
      cleanup();
      const peer = server.peer;
      if (b[0] === TunnelAccept.ACCEPTED && peer) {
        resolve({ socket, peer, stream });
      } else {
        socket.destroy();
        reject(ACCEPT_ERRORS[b[0]!] ?? new TransportError('TLS_REFUSED', 'server refused the tunnel'));
      }
    };
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.on('readable', onReadable);
  });
}

/**
 * PNE side: opens a tunnel on its GW session and runs a TLS 1.3 client over it, authenticating with the PNE's own
 * certificate. The server is checked by its CPNS identity (there is no host name inside a tunnel). Resolves once
 * the server has accepted the PNE (acceptance byte), so a refused certificate is an error here, not later.
 */
export function openTunnelTls(session: Session, opts: OpenTunnelTlsOptions): Promise<TunnelTlsSocket> {
  const stream = tunnelMuxFor(session).open(opts.meta);
  const server = expectedServerCheck(opts);
  const socket = tls.connect({
    socket: stream,
    cert: opts.certPem,
    key: opts.keyPem,
    ca: opts.caPem,
    ...TUNNEL_TLS_VERSIONS,
    rejectUnauthorized: true,
    checkServerIdentity: server.check,
  });
  const done = awaitAcceptance(socket, stream, server);
  return withTimeout(done, opts.timeoutMs ?? DEFAULT_TUNNEL_TLS_TIMEOUT_MS, () => socket.destroy());
}

/**
 * The server end's TLS state, shared by all its tunnels: one SecureContext (certificate, key, CA) and the CA
 * certificate, parsed once. A context per tunnel cost about 38 KiB of native memory per connected PNE at the
 * server (docs/benchmarks.md "Memory per connection"). Make a new one when the credentials change.
 */
export interface TunnelTlsContext {
  readonly secureContext: SecureContext;
  readonly ca: X509Certificate;
}

export function tunnelTlsContext(c: TunnelTlsCredentials): TunnelTlsContext {
  return {
    secureContext: tls.createSecureContext({
      cert: c.certPem,
      key: c.keyPem,
      ca: c.caPem,
      ...TUNNEL_TLS_VERSIONS,
    }),
    ca: new X509Certificate(c.caPem),
  };
}

export interface AcceptTunnelTlsOptions extends TunnelTlsCredentials {
  /** Roles accepted at the far end of the tunnel. Default ['pne']. */
  allowedRoles?: readonly CpnsRole[];
  isRevoked?: (identity: string, serialHex: string) => boolean;
  timeoutMs?: number;
  /** The shared TLS state (`tunnelTlsContext` of these credentials); made for this tunnel alone if absent. */
  context?: TunnelTlsContext;
}

/**
 * The server's verdict on the tunnel client's certificate: its identity, or the refusal to send. The certificate
 * is checked here (`issuedByCa`), not by node: a server TLSSocket made without a tls.Server does not verify its
 * peer (`authorized` stays false), and one tls.Server per tunnel is what cost the memory.
 */
function vetTunnelClient(
  socket: TLSSocket,
  ctx: TunnelTlsContext,
  opts: AcceptTunnelTlsOptions,
): { peer: CertInfo } | { code: number; err: TransportError } {
  let peer: CertInfo;
  try {
    const cert = socket.getPeerX509Certificate();
    if (!cert || !issuedByCa(cert, ctx.ca)) throw new Error('unauthorized');
    peer = certInfo(cert);
  } catch {
    return {
      code: TunnelAccept.NOT_AUTHENTICATED,
      err: new TransportError('NOT_AUTHENTICATED', 'tunnel client'),
    };
  }
  if (!(opts.allowedRoles ?? ['pne']).includes(peer.role)) {
    return {
      code: TunnelAccept.ROLE_REFUSED,
      err: new TransportError('ROLE_REFUSED', 'role not accepted here'),
    };
  }
  let revoked = true; // a failing revocation hook refuses: fail closed
  try {
    revoked = opts.isRevoked?.(peer.identity, peer.serialHex) ?? false;
  } catch {}
  if (revoked) return { code: TunnelAccept.REVOKED, err: new TransportError('REVOKED', 'identity revoked') };
  return { peer };
}

/**
 * Server side: runs a TLS 1.3 server over an incoming tunnel, requiring a client certificate (a handshake
 * without one fails), and accepts only a certificate of the CPNS CA (`vetTunnelClient`). The PNE identity comes
 * from that certificate — not from the GW, which only relayed the bytes.
 */
export function acceptTunnelTls(
  stream: TunnelStream,
  opts: AcceptTunnelTlsOptions,
): Promise<TunnelTlsSocket> {
  const ctx = opts.context ?? tunnelTlsContext(opts);
  const socket = new tls.TLSSocket(stream, {
    isServer: true,
    secureContext: ctx.secureContext,
    requestCert: true,
    rejectUnauthorized: true,
  });
  const done = new Promise<TunnelTlsSocket>((resolve, reject) => {
    const onError = (err: Error): void => {
      stream.destroy();
      reject(new TransportError('TLS_REFUSED', 'tunnel TLS failed', undefined, { cause: err }));
    };
    socket.once('error', onError);
    socket.once('secure', () => {
      socket.off('error', onError);
      // Errors after acceptance belong to the socket's user; before that, to us.
      socket.on('error', () => {});
      const verdict = vetTunnelClient(socket, ctx, opts);
      if ('code' in verdict) {
        socket.end(Buffer.from([verdict.code]));
        reject(verdict.err);
        return;
      }
      socket.write(Buffer.from([TunnelAccept.ACCEPTED]));
      resolve({ socket, peer: verdict.peer, stream });
    });
    stream.once('close', () => reject(new TransportError('CLOSED', 'tunnel closed during handshake')));
  });
  // The whole accept (handshake, check, acceptance byte) within the deadline; a silent tunnel is destroyed.
  return withTimeout(done, opts.timeoutMs ?? DEFAULT_TUNNEL_TLS_TIMEOUT_MS, () => stream.destroy());
}
