/**
 * The end-to-end CPNS Server ↔ PNE secure session (CPNS TS §5.3.2) carried through the PN GW (docs/transport.md
 * "The tunnel"). The PNE runs a TLS 1.3 client, the server a TLS 1.3 server, both with their own CPNS
 * certificates (mutual authentication), over a TunnelStream: the GW between them only relays the records, so it
 * can neither read them (no keys) nor alter them undetected (the record's AEAD fails and the connection dies).
 * The PNE identity therefore comes from the certificate inside the tunnel, never from the GW.
 */
import type { TLSSocket } from 'node:tls';
import tls, { type PeerCertificate } from 'node:tls';
import { type CertInfo, type CpnsRole, certInfo } from './ca.js';
import { TransportError } from './errors.js';
import { DEFAULT_TUNNEL_TLS_TIMEOUT_MS, TUNNEL_ACCEPT_DEADLINE_SLACK_MS } from './limits.js';
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

export interface AcceptTunnelTlsOptions extends TunnelTlsCredentials {
  /** Roles accepted at the far end of the tunnel. Default ['pne']. */
  allowedRoles?: readonly CpnsRole[];
  isRevoked?: (identity: string, serialHex: string) => boolean;
  timeoutMs?: number;
}

/** The server's verdict on the tunnel client's verified certificate: its identity, or the refusal to send. */
function vetTunnelClient(
  socket: TLSSocket,
  opts: AcceptTunnelTlsOptions,
): { peer: CertInfo } | { code: number; err: TransportError } {
  let peer: CertInfo;
  try {
    if (!socket.authorized) throw new Error('unauthorized');
    peer = certInfo(socket.getPeerCertificate());
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
 * Server side: runs a TLS 1.3 server over an incoming tunnel, requiring a client certificate from the CPNS CA.
 * The PNE identity comes from that certificate — not from the GW, which only relayed the bytes.
 * A tls.Server (never listening) is used because injecting the stream as a 'connection' is node's documented
 * way to get full server-side certificate verification over an arbitrary Duplex.
 */
export function acceptTunnelTls(
  stream: TunnelStream,
  opts: AcceptTunnelTlsOptions,
): Promise<TunnelTlsSocket> {
  const server = tls.createServer({
    cert: opts.certPem,
    key: opts.keyPem,
    ca: opts.caPem,
    ...TUNNEL_TLS_VERSIONS,
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: opts.timeoutMs ?? DEFAULT_TUNNEL_TLS_TIMEOUT_MS,
  });
  const done = new Promise<TunnelTlsSocket>((resolve, reject) => {
    server.once('secureConnection', (socket: TLSSocket) => {
      // Errors after acceptance belong to the socket's user; before that, to us.
      socket.on('error', () => {});
      const verdict = vetTunnelClient(socket, opts);
      if ('code' in verdict) {
        socket.end(Buffer.from([verdict.code]));
        reject(verdict.err);
        return;
      }
      socket.write(Buffer.from([TunnelAccept.ACCEPTED]));
      resolve({ socket, peer: verdict.peer, stream });
    });
    server.once('tlsClientError', (err: Error) => {
      stream.destroy();
      reject(new TransportError('TLS_REFUSED', 'tunnel TLS failed', undefined, { cause: err }));
    });
    stream.once('close', () => reject(new TransportError('CLOSED', 'tunnel closed during handshake')));
  });
  server.emit('connection', stream);
  return withTimeout(
    done,
    (opts.timeoutMs ?? DEFAULT_TUNNEL_TLS_TIMEOUT_MS) + TUNNEL_ACCEPT_DEADLINE_SLACK_MS,
    () => stream.destroy(),
  );
}
