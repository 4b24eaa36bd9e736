/**
 * The end-to-end CPNS Server ↔ PNE secure session (CPNS TS §5.3.2) carried through the PN GW.
 *
 * The PNE runs a TLS 1.3 client, the server a TLS 1.3 server, both with their own CPNS certificates (mutual
 * authentication). The TLS records travel as tunnel-data frames: PNE --(GW session)--> GW --(server session)-->
 * server. node's TLS runs over any Duplex stream, so `TunnelStream` is a Duplex backed by frames of one tunnel id
 * on a Session. The GW only runs a `TunnelRelay`, which renumbers tunnel ids and copies ciphertext: it cannot read
 * the records (no keys) nor alter them undetected (the TLS record MAC fails and the connection dies).
 *
 * Flow control is bounded buffering: a sender is paced by its own socket (write callbacks), and a receiver that
 * lets more than `maxBufferedBytes` pile up unread resets the tunnel (OVERFLOW) instead of growing memory.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import tls, { type PeerCertificate, type TLSSocket } from 'node:tls';
import { CpnsError } from '../core/errors.js';
import { type CertInfo, type CpnsRole, certInfo } from './ca.js';
import { TransportError } from './errors.js';
import { decodeFrame, encodeFrame, type Frame, maxTunnelChunk, TunnelCloseReason } from './framing.js';
import {
  DEFAULT_MAX_TUNNEL_MESSAGE_BYTES,
  DEFAULT_MAX_TUNNELS_PER_PNE,
  DEFAULT_MAX_TUNNELS_PER_SESSION,
  DEFAULT_TUNNEL_CHUNK_BYTES,
  DEFAULT_TUNNEL_MAX_BUFFERED_BYTES,
  DEFAULT_TUNNEL_TLS_TIMEOUT_MS,
  TUNNEL_ACCEPT_DEADLINE_SLACK_MS,
} from './limits.js';
import type { Session } from './session.js';

const TLS13 = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

type TunnelFrame = Extract<Frame, { kind: 'tunnel-data' | 'tunnel-open' | 'tunnel-close' }>;

function isTunnelFrame(f: Frame): f is TunnelFrame {
  return f.kind === 'tunnel-data' || f.kind === 'tunnel-open' || f.kind === 'tunnel-close';
}

/** Decodes a session frame if it is a tunnel frame; anything else (or malformed) is left to the role layer. */
function tunnelFrameOf(buf: Buffer, maxFrame: number): TunnelFrame | undefined {
  try {
    const f = decodeFrame(buf, { maxFrame });
    return isTunnelFrame(f) ? f : undefined;
  } catch (e) {
    if (e instanceof CpnsError) return undefined;
    throw e;
  }
}

function sendClose(session: Session, tunnelId: number, reason: number): void {
  session.send(encodeFrame({ kind: 'tunnel-close', tunnelId, reason }));
}

// ---------------------------------------------------------------------------------------------------------------
// TunnelStream
// ---------------------------------------------------------------------------------------------------------------

export interface TunnelStreamOptions {
  /** Unread bytes tolerated before the tunnel is reset with OVERFLOW. Default 256 KiB. */
  maxBufferedBytes?: number;
  /** Largest data frame sent. Default 64 KiB (capped by the session's maxPayload). */
  chunkSize?: number;
}

/**
 * A Duplex over one tunnel id of a Session. Close is full-duplex: ending either side sends tunnel-close and the
 * peer sees end-of-stream; TLS close_notify on top makes truncation detectable.
 *
 * It never emits 'error': node's TLS-over-Duplex wrapper re-emits errors of the underlying stream on an internal
 * object nobody listens to, which would crash the process. A failed tunnel is destroyed quietly (TLS then sees
 * the close) and the cause is kept in `resetReason`.
 */
export class TunnelStream extends Duplex {
  readonly tunnelId: number;
  readonly meta: Uint8Array;
  readonly session: Session;
  readonly #maxBuffered: number;
  readonly #chunk: number;
  readonly #onGone: () => void;
  #closeSent = false;
  #remoteClosed = false;
  /** Why the tunnel ended abnormally (overflow, reset by peer, session lost); undefined after a clean close. */
  resetReason: Error | undefined;

  constructor(
    session: Session,
    tunnelId: number,
    meta: Uint8Array,
    onGone: () => void,
    o: TunnelStreamOptions,
  ) {
    super({ allowHalfOpen: false });
    this.session = session;
    this.tunnelId = tunnelId;
    this.meta = meta;
    this.#onGone = onGone;
    this.#maxBuffered = o.maxBufferedBytes ?? DEFAULT_TUNNEL_MAX_BUFFERED_BYTES;
    this.#chunk = Math.max(
      1,
      Math.min(o.chunkSize ?? DEFAULT_TUNNEL_CHUNK_BYTES, maxTunnelChunk(session.maxPayload)),
    );
  }

  /** Called by the mux for each data frame of this tunnel. */
  deliver(data: Uint8Array): void {
    if (this.#remoteClosed || this.destroyed) return;
    // Copy: the frame is a view into the WebSocket message buffer, which we must not pin.
    this.push(Buffer.from(data));
    if (this.readableLength > this.#maxBuffered) {
      this.#sendClose(TunnelCloseReason.OVERFLOW);
      this.destroy(new TransportError('TUNNEL_OVERFLOW', 'tunnel receive buffer exceeded'));
    }
  }

  /** Called by the mux when the peer closed the tunnel (or the session ended). */
  remoteClose(reason: number): void {
    if (this.#remoteClosed) return;
    this.#remoteClosed = true;
    this.#closeSent = true; // no need to answer a close with a close
    if (reason === TunnelCloseReason.NORMAL) {
      this.push(null);
    } else {
      this.destroy(new TransportError('CLOSED', `tunnel reset by peer (${reason})`));
    }
  }

  override _read(): void {
    // Push-based: data arrives as frames. Bounded by the overflow check in deliver().
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#remoteClosed) {
      cb(); // the peer is gone; TLS close_notify racing the peer's close is dropped, not an error
      return;
    }
    if (!this.session.isOpen) {
      cb();
      this.destroy(new TransportError('CLOSED', 'session is closed'));
      return;
    }
    let off = 0;
    let frameErr: Error | undefined;
    while (off < chunk.length) {
      const piece = chunk.subarray(off, off + this.#chunk);
      off += piece.length;
      const last = off >= chunk.length;
      const frame = encodeFrame(
        { kind: 'tunnel-data', tunnelId: this.tunnelId, data: piece },
        { maxFrame: this.session.maxPayload },
      );
      // The callback of the last frame paces the writer: the Writable buffers (highWaterMark) meanwhile.
      this.session.send(frame, (err) => {
        if (err) frameErr ??= err;
        if (!last) return;
        cb();
        if (frameErr) this.destroy(frameErr);
      });
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#sendClose(TunnelCloseReason.NORMAL);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (err) this.resetReason ??= err;
    this.#sendClose(err ? TunnelCloseReason.ERROR : TunnelCloseReason.NORMAL);
    this.#onGone();
    cb(null); // swallow: see the class comment
  }

  #sendClose(reason: number): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    if (this.session.isOpen) sendClose(this.session, this.tunnelId, reason);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// TunnelMux: the tunnel endpoints of one Session (PNE side and server side)
// ---------------------------------------------------------------------------------------------------------------

export interface TunnelMuxOptions extends TunnelStreamOptions {
  /** Open tunnels allowed on this session (both directions). Default 64. */
  maxTunnels?: number;
}

/**
 * Terminates tunnels on one session. It listens to the session's frames and handles tunnel kinds only; other
 * kinds are the role layer's. Events: 'tunnel' (stream: TunnelStream) for each tunnel the peer opens; without a
 * listener, incoming opens are refused.
 */
export class TunnelMux extends EventEmitter {
  readonly session: Session;
  readonly #opts: TunnelMuxOptions;
  readonly #streams = new Map<number, TunnelStream>();
  // Ids we allocate have the parity of our side, so both ends can open tunnels without colliding.
  #nextId: number;

  constructor(session: Session, opts: TunnelMuxOptions = {}) {
    super();
    this.session = session;
    this.#opts = opts;
    this.#nextId = session.side === 'client' ? 1 : 2;
    session.on('frame', (buf: Buffer) => {
      const f = tunnelFrameOf(buf, session.maxPayload);
      if (f) this.handleFrame(f);
    });
    session.once('close', () => {
      for (const s of [...this.#streams.values()]) s.remoteClose(TunnelCloseReason.ERROR);
    });
  }

  get size(): number {
    return this.#streams.size;
  }

  /** Opens a tunnel to the peer; `meta` is opaque (the relay may use it to pick a destination). */
  open(meta: Uint8Array = new Uint8Array(0)): TunnelStream {
    if (this.#streams.size >= (this.#opts.maxTunnels ?? DEFAULT_MAX_TUNNELS_PER_SESSION)) {
      throw new TransportError('TUNNEL_LIMIT', 'too many tunnels on this session');
    }
    if (!this.session.isOpen) throw new TransportError('CLOSED', 'session is closed');
    let id = this.#nextId;
    while (this.#streams.has(id)) id = id + 2 > 0xffffffff ? (id % 2) + 2 : id + 2;
    this.#nextId = id + 2 > 0xffffffff ? 2 - (id % 2) : id + 2;
    const s = this.#add(id, meta);
    this.session.send(encodeFrame({ kind: 'tunnel-open', tunnelId: id, meta }));
    return s;
  }

  /** Routes one decoded tunnel frame; returns false for frames that are not tunnel frames. */
  handleFrame(f: Frame): boolean {
    switch (f.kind) {
      case 'tunnel-open': {
        const limit = this.#opts.maxTunnels ?? DEFAULT_MAX_TUNNELS_PER_SESSION;
        if (this.#streams.has(f.tunnelId)) return true; // duplicate open: ignore, never clobber a live tunnel
        if (this.listenerCount('tunnel') === 0 || this.#streams.size >= limit) {
          sendClose(this.session, f.tunnelId, TunnelCloseReason.REFUSED);
          return true;
        }
        this.emit('tunnel', this.#add(f.tunnelId, Buffer.from(f.meta)));
        return true;
      }
      case 'tunnel-data': {
        const s = this.#streams.get(f.tunnelId);
        if (s) s.deliver(f.data);
        else sendClose(this.session, f.tunnelId, TunnelCloseReason.ERROR); // data for no tunnel: tell the peer
        return true;
      }
      case 'tunnel-close':
        this.#streams.get(f.tunnelId)?.remoteClose(f.reason);
        return true;
      default:
        return false;
    }
  }

  #add(id: number, meta: Uint8Array): TunnelStream {
    const s = new TunnelStream(
      this.session,
      id,
      meta,
      () => {
        if (this.#streams.get(id) === s) this.#streams.delete(id);
      },
      this.#opts,
    );
    this.#streams.set(id, s);
    // A stream that ended cleanly in both directions is gone too.
    s.once('close', () => {
      if (this.#streams.get(id) === s) this.#streams.delete(id);
    });
    return s;
  }
}

const muxes = new WeakMap<Session, TunnelMux>();

/** The session's tunnel mux, created (and attached) on first use. */
export function tunnelMuxFor(session: Session, opts?: TunnelMuxOptions): TunnelMux {
  let m = muxes.get(session);
  if (!m) {
    m = new TunnelMux(session, opts);
    muxes.set(session, m);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// TunnelRelay: the GW side. Copies ciphertext between PNE sessions and the server session.
// ---------------------------------------------------------------------------------------------------------------

export type RelayDirection = 'up' | 'down';

export interface RelayTapInfo {
  direction: RelayDirection;
  pne: Session;
  pneTunnelId: number;
  upstreamTunnelId: number;
}

export interface TunnelRelayOptions {
  /** Tunnels one PNE session may have open through this GW. Default 8. */
  maxTunnelsPerPne?: number;
  /**
   * Observes every relayed data chunk. For tests: returning bytes replaces the chunk (a GW that tampers), which
   * the TLS peers must detect. Production code leaves it unset.
   */
  tap?: (data: Uint8Array, info: RelayTapInfo) => Uint8Array | undefined;
}

interface Route {
  pne: Session;
  pneTunnelId: number;
  upstreamTunnelId: number;
}

/**
 * Maps (PNE session, PNE tunnel id) ↔ upstream tunnel id and copies tunnel frames both ways without interpreting
 * the bytes. It attaches to the sessions' 'frame' events and handles tunnel kinds only.
 */
export class TunnelRelay {
  #upstream: Session;
  readonly #opts: TunnelRelayOptions;
  readonly #byUpstream = new Map<number, Route>();
  readonly #byPne = new Map<Session, Map<number, Route>>();
  #nextUp: number;
  readonly #onUpstreamFrame = (buf: Buffer): void => {
    const f = tunnelFrameOf(buf, this.#upstream.maxPayload);
    if (f) this.handleUpstream(f);
  };
  readonly #onUpstreamClose = (): void => this.#dropAll();

  constructor(upstream: Session, opts: TunnelRelayOptions = {}) {
    this.#opts = opts;
    this.#upstream = upstream;
    this.#nextUp = upstream.side === 'client' ? 1 : 2;
    this.#listenUpstream();
  }

  get size(): number {
    return this.#byUpstream.size;
  }

  /** After the GW reconnects to the server: tunnels through the old session are dead (their TLS broke with it). */
  setUpstream(upstream: Session): void {
    this.#upstream.off('frame', this.#onUpstreamFrame);
    this.#upstream.off('close', this.#onUpstreamClose);
    this.#dropAll();
    this.#upstream = upstream;
    this.#nextUp = upstream.side === 'client' ? 1 : 2;
    this.#listenUpstream();
  }

  /** Starts relaying the tunnels this PNE session opens. */
  attach(pne: Session): void {
    if (this.#byPne.has(pne)) return;
    this.#byPne.set(pne, new Map());
    pne.on('frame', (buf: Buffer) => {
      const f = tunnelFrameOf(buf, pne.maxPayload);
      if (f) this.handleDownstream(pne, f);
    });
    pne.once('close', () => this.detach(pne));
  }

  /** Closes the PNE's relayed tunnels towards the server and forgets the PNE session. */
  detach(pne: Session): void {
    const routes = this.#byPne.get(pne);
    if (!routes) return;
    this.#byPne.delete(pne);
    for (const r of routes.values()) {
      this.#byUpstream.delete(r.upstreamTunnelId);
      if (this.#upstream.isOpen) sendClose(this.#upstream, r.upstreamTunnelId, TunnelCloseReason.ERROR);
    }
  }

  /** A tunnel frame from a PNE session. */
  handleDownstream(pne: Session, f: TunnelFrame): void {
    const routes = this.#byPne.get(pne);
    if (!routes) return;
    switch (f.kind) {
      case 'tunnel-open': {
        if (routes.has(f.tunnelId)) return;
        if (
          routes.size >= (this.#opts.maxTunnelsPerPne ?? DEFAULT_MAX_TUNNELS_PER_PNE) ||
          !this.#upstream.isOpen
        ) {
          sendClose(pne, f.tunnelId, TunnelCloseReason.REFUSED);
          return;
        }
        const up = this.#allocUp();
        const r: Route = { pne, pneTunnelId: f.tunnelId, upstreamTunnelId: up };
        routes.set(f.tunnelId, r);
        this.#byUpstream.set(up, r);
        this.#upstream.send(encodeFrame({ kind: 'tunnel-open', tunnelId: up, meta: f.meta }));
        return;
      }
      case 'tunnel-data': {
        const r = routes.get(f.tunnelId);
        if (!r) {
          sendClose(pne, f.tunnelId, TunnelCloseReason.ERROR);
          return;
        }
        const data = this.#tap(f.data, 'up', r);
        this.#upstream.send(
          encodeFrame({ kind: 'tunnel-data', tunnelId: r.upstreamTunnelId, data }, { maxFrame: Infinity }),
        );
        return;
      }
      case 'tunnel-close': {
        const r = routes.get(f.tunnelId);
        if (!r) return;
        routes.delete(f.tunnelId);
        this.#byUpstream.delete(r.upstreamTunnelId);
        sendClose(this.#upstream, r.upstreamTunnelId, f.reason);
        return;
      }
    }
  }

  /** A tunnel frame from the server session. */
  handleUpstream(f: TunnelFrame): void {
    const r = this.#byUpstream.get(f.tunnelId);
    switch (f.kind) {
      case 'tunnel-open':
        // The server does not open tunnels towards PNEs through a GW (yet): refuse.
        sendClose(this.#upstream, f.tunnelId, TunnelCloseReason.REFUSED);
        return;
      case 'tunnel-data':
        if (!r) {
          sendClose(this.#upstream, f.tunnelId, TunnelCloseReason.ERROR);
          return;
        }
        r.pne.send(
          encodeFrame(
            { kind: 'tunnel-data', tunnelId: r.pneTunnelId, data: this.#tap(f.data, 'down', r) },
            { maxFrame: Infinity },
          ),
        );
        return;
      case 'tunnel-close':
        if (!r) return;
        this.#byUpstream.delete(f.tunnelId);
        this.#byPne.get(r.pne)?.delete(r.pneTunnelId);
        sendClose(r.pne, r.pneTunnelId, f.reason);
        return;
    }
  }

  #tap(data: Uint8Array, direction: RelayDirection, r: Route): Uint8Array {
    const tap = this.#opts.tap;
    if (!tap) return data;
    return (
      tap(data, {
        direction,
        pne: r.pne,
        pneTunnelId: r.pneTunnelId,
        upstreamTunnelId: r.upstreamTunnelId,
      }) ?? data
    );
  }

  #allocUp(): number {
    let id = this.#nextUp;
    while (this.#byUpstream.has(id)) id = id + 2 > 0xffffffff ? 2 - (id % 2) : id + 2;
    this.#nextUp = id + 2 > 0xffffffff ? 2 - (id % 2) : id + 2;
    return id;
  }

  #listenUpstream(): void {
    this.#upstream.on('frame', this.#onUpstreamFrame);
    this.#upstream.once('close', this.#onUpstreamClose);
  }

  #dropAll(): void {
    for (const r of this.#byUpstream.values()) {
      if (r.pne.isOpen) sendClose(r.pne, r.pneTunnelId, TunnelCloseReason.ERROR);
    }
    this.#byUpstream.clear();
    for (const m of this.#byPne.values()) m.clear();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// End-to-end TLS over a tunnel
// ---------------------------------------------------------------------------------------------------------------

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
 * PNE side: opens a tunnel on its GW session and runs a TLS 1.3 client over it, authenticating with the PNE's own
 * certificate. The server is checked by its CPNS identity (there is no host name inside a tunnel). Resolves once
 * the server has accepted the PNE (acceptance byte), so a refused certificate is an error here, not later.
 */
export function openTunnelTls(session: Session, opts: OpenTunnelTlsOptions): Promise<TunnelTlsSocket> {
  const stream = tunnelMuxFor(session).open(opts.meta);
  let peer: CertInfo | undefined;
  let idError: Error | undefined;
  const socket = tls.connect({
    socket: stream,
    cert: opts.certPem,
    key: opts.keyPem,
    ca: opts.caPem,
    ...TLS13,
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      try {
        const info = certInfo(cert);
        const ok =
          opts.expectedServerIdentity !== undefined
            ? info.identity === opts.expectedServerIdentity
            : info.role === 'server';
        if (!ok) throw new TransportError('PEER_IDENTITY_MISMATCH', 'tunnel peer is not the expected server');
        peer = info;
        return undefined;
      } catch (e) {
        idError = e as Error;
        return idError;
      }
    },
  });
  const done = new Promise<TunnelTlsSocket>((resolve, reject) => {
    const cleanup = (): void => {
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('readable', onReadable);
    };
    const onError = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(idError ?? new TransportError('TLS_REFUSED', 'tunnel TLS failed', undefined, { cause: err }));
    };
    const onClose = (): void =>
      onError(stream.resetReason ?? new TransportError('TLS_REFUSED', 'tunnel closed during setup'));
    const onReadable = (): void => {
      const b: Buffer | null = socket.read(1);
      if (b === null) return;
      cleanup();
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
  return withTimeout(done, opts.timeoutMs ?? DEFAULT_TUNNEL_TLS_TIMEOUT_MS, () => socket.destroy());
}

export interface AcceptTunnelTlsOptions extends TunnelTlsCredentials {
  /** Roles accepted at the far end of the tunnel. Default ['pne']. */
  allowedRoles?: readonly CpnsRole[];
  isRevoked?: (identity: string, serialHex: string) => boolean;
  timeoutMs?: number;
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
    ...TLS13,
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: opts.timeoutMs ?? DEFAULT_TUNNEL_TLS_TIMEOUT_MS,
  });
  const done = new Promise<TunnelTlsSocket>((resolve, reject) => {
    server.once('secureConnection', (socket: TLSSocket) => {
      // Errors after acceptance belong to the socket's user; before that, to us.
      socket.on('error', () => {});
      const refuse = (code: number, err: TransportError): void => {
        socket.end(Buffer.from([code]));
        reject(err);
      };
      let peer: CertInfo;
      try {
        if (!socket.authorized) throw new Error('unauthorized');
        peer = certInfo(socket.getPeerCertificate());
      } catch {
        return refuse(
          TunnelAccept.NOT_AUTHENTICATED,
          new TransportError('NOT_AUTHENTICATED', 'tunnel client'),
        );
      }
      if (!(opts.allowedRoles ?? ['pne']).includes(peer.role)) {
        return refuse(
          TunnelAccept.ROLE_REFUSED,
          new TransportError('ROLE_REFUSED', 'role not accepted here'),
        );
      }
      let revoked = true; // a failing revocation hook refuses: fail closed
      try {
        revoked = opts.isRevoked?.(peer.identity, peer.serialHex) ?? false;
      } catch {}
      if (revoked) return refuse(TunnelAccept.REVOKED, new TransportError('REVOKED', 'identity revoked'));
      socket.write(Buffer.from([TunnelAccept.ACCEPTED]));
      resolve({ socket, peer, stream });
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

// ---------------------------------------------------------------------------------------------------------------
// MessageSocket: length-prefixed messages over a byte stream (the tunnel TLS socket)
// ---------------------------------------------------------------------------------------------------------------

export interface MessageSocketOptions {
  /** Largest message accepted or sent. Default 1 MiB. */
  maxMessage?: number;
}

/**
 * u32 big-endian length + bytes, over any Duplex. Events: 'message' (Buffer), 'close' (err?: Error).
 * Partial input is kept as a list of chunks and joined once per message (no quadratic copying, no
 * preallocation from an attacker-chosen length: the length is bounded before anything is kept).
 */
export class MessageSocket extends EventEmitter {
  readonly stream: Duplex;
  readonly #max: number;
  #chunks: Buffer[] = [];
  #have = 0;
  #need = -1; // body length of the message being read; -1 while reading the header
  #closed = false;

  constructor(stream: Duplex, opts: MessageSocketOptions = {}) {
    super();
    this.stream = stream;
    this.#max = opts.maxMessage ?? DEFAULT_MAX_TUNNEL_MESSAGE_BYTES;
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.once('close', () => this.#end());
    stream.on('error', (err: Error) => this.#end(err));
  }

  /** Returns false when the stream's buffer is full (wait for 'drain' on `stream`). */
  send(msg: Uint8Array): boolean {
    if (this.#closed) throw new TransportError('CLOSED', 'message socket is closed');
    if (msg.length > this.#max) throw new TransportError('FRAME_TOO_LARGE', 'message too large', 'message');
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(msg.length, 0);
    this.stream.cork();
    this.stream.write(head);
    const ok = this.stream.write(msg);
    this.stream.uncork();
    return ok;
  }

  /** Graceful close (TLS close_notify, then tunnel close). */
  close(): void {
    this.stream.end();
  }

  destroy(err?: Error): void {
    this.stream.destroy(err);
  }

  #onData(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#have += chunk.length;
    while (!this.#closed) {
      if (this.#need < 0) {
        if (this.#have < 4) return;
        const len = this.#take(4).readUInt32BE(0);
        if (len > this.#max) {
          this.destroy(new TransportError('FRAME_TOO_LARGE', 'peer message exceeds the limit', 'length'));
          return;
        }
        this.#need = len;
      }
      if (this.#have < this.#need) return;
      const msg = this.#take(this.#need);
      this.#need = -1;
      this.emit('message', msg);
    }
  }

  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    let out: Buffer;
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.#chunks);
      out = all.subarray(0, n);
      this.#chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.#have -= n;
    return out;
  }

  #end(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    this.emit('close', err);
  }
}
