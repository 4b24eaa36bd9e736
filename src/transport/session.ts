/**
 * Secure sessions (CPNS TS §5.3.2): a WebSocket carried over TLS 1.3 with mutual certificate authentication
 * against the CPNS CA. They give authenticity, confidentiality and integrity to every CPNS message between
 * CPNS Server and PN GW, and PN GW and PNE (server–PNE runs inside a tunnel, see tunnel.ts). Messages destined
 * to a Service Group ride the same sessions but are protected by the Group Key, not by the session (§5.3.4).
 *
 * The peer identity of a session comes only from the certificate that TLS verified; nothing the peer says in a
 * message can change it. Frames are opaque binary WebSocket messages here (see framing.ts for their kinds).
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type PeerCertificate, type TLSSocket } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import { type CertInfo, type CpnsRole, certInfo } from './ca.js';
import { TransportError, type TransportErrorCode } from './errors.js';
import { DEFAULT_MAX_FRAME } from './framing.js';
import {
  BACKOFF_MAX_EXPONENT,
  CLOSE_REASON_MAX_CHARS,
  CLOSE_TIMEOUT_MS,
  CONNECT_DEADLINE_SLACK_MS,
  ConnectionGate,
  type ConnectionLimits,
  DEFAULT_BACKOFF_FACTOR,
  DEFAULT_BACKOFF_INITIAL_MS,
  DEFAULT_BACKOFF_JITTER,
  DEFAULT_BACKOFF_MAX_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_CONNECTION_LIMITS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  DEFAULT_SERVER_CLOSE_GRACE_MS,
} from './limits.js';
import { TLS_PARAMS } from './tls-params.js';

export { type ConnectionLimits, DEFAULT_CONNECTION_LIMITS } from './limits.js';

/** WebSocket close codes used by CPNS sessions (4000-4999 are private-use per RFC 6455 §7.4.2). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  ABNORMAL: 1006,
  POLICY: 1008,
  TOO_LARGE: 1009,
  /** The peer's identity was revoked by the operator: do not reconnect. */
  REVOKED: 4001,
  /** Replaced by a newer session of the same identity (role layer's choice). */
  REPLACED: 4002,
  /** The peer sent no frame within `firstFrameTimeoutMs` of the upgrade (docs/transport.md "Limits"). */
  FIRST_FRAME_TIMEOUT: 4003,
} as const;

export interface HeartbeatOptions {
  /** Send a ping this often (ms). */
  intervalMs: number;
  /** Terminate the session if the pong has not arrived this long after the ping (ms). */
  timeoutMs: number;
}

export const DEFAULT_HEARTBEAT: HeartbeatOptions = {
  intervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
  timeoutMs: DEFAULT_HEARTBEAT_TIMEOUT_MS,
};
const TLS13 = TLS_PARAMS;

interface SessionInit {
  ws: WebSocket;
  side: 'client' | 'server';
  peer: CertInfo | null;
  anonymous: boolean;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  heartbeat: HeartbeatOptions | false;
  maxPayload: number;
}

/**
 * One open secure session. Events: 'frame' (frame: Buffer), 'close' (code: number, reason: string).
 * Idle cost is the ws/TLS objects plus at most two timers: no per-session buffers are allocated here.
 */
export class Session extends EventEmitter {
  /** The peer's CPNS identity from its verified certificate; null for an anonymous (enrollment) session. */
  readonly identity: string | null;
  readonly role: CpnsRole | null;
  /** Serial of the peer's certificate (lowercase hex), for revocation checks; null when anonymous. */
  readonly serialHex: string | null;
  /** True only for a session accepted on the server's anonymous (enrollment) path. */
  readonly anonymous: boolean;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly maxPayload: number;
  /** Which end of the WebSocket this is; tunnel ids opened by the client side are odd, by the server side even. */
  readonly side: 'client' | 'server';
  readonly #ws: WebSocket;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #pongTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(init: SessionInit) {
    super();
    this.#ws = init.ws;
    this.identity = init.peer?.identity ?? null;
    this.role = init.peer?.role ?? null;
    this.serialHex = init.peer?.serialHex ?? null;
    this.anonymous = init.anonymous;
    this.remoteAddress = init.remoteAddress;
    this.remotePort = init.remotePort;
    this.maxPayload = init.maxPayload;
    this.side = init.side;
    const ws = init.ws;
    ws.on('message', (data, isBinary) => {
      // CPNS frames are binary; a text message is a protocol violation, not something to guess about.
      if (!isBinary) {
        this.close(CloseCode.UNSUPPORTED_DATA, 'binary frames only');
        return;
      }
      this.emit('frame', data as Buffer);
    });
    ws.on('pong', () => {
      if (this.#pongTimer) clearTimeout(this.#pongTimer);
      this.#pongTimer = undefined;
    });
    // ws always follows 'error' with 'close'; the close event is the one place we report the end.
    ws.on('error', () => {});
    ws.on('close', (code, reason) => {
      this.#closed = true;
      this.#stopHeartbeat();
      this.emit('close', code, reason.toString('utf8'));
    });
    if (init.heartbeat) this.#startHeartbeat(init.heartbeat);
  }

  get isOpen(): boolean {
    return !this.#closed && this.#ws.readyState === WebSocket.OPEN;
  }

  /** Bytes queued in the socket but not yet written: callers that fan out may watch this to shed load. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /**
   * Sends one binary frame. `cb` runs once the bytes are handed to the socket (this is the backpressure signal
   * the tunnel uses) or with an error if the session is closed. Without `cb`, errors are dropped: the session's
   * 'close' event reports the end anyway.
   */
  send(frame: Uint8Array, cb?: (err?: Error) => void): void {
    if (!this.isOpen) {
      if (cb) queueMicrotask(() => cb(new TransportError('CLOSED', 'session is closed')));
      return;
    }
    this.#ws.send(frame, { binary: true }, (err) => cb?.(err ?? undefined));
  }

  sendAsync(frame: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.send(frame, (err) => (err ? reject(err) : resolve())));
  }

  /** Starts the closing handshake; the socket is dropped if the peer does not answer within a few seconds. */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    if (this.#closed) return;
    this.#stopHeartbeat();
    // ws accepts only 1000 and 3000-4999 as application close codes; map the others to a policy close.
    const ok =
      code === 1000 || (code >= 3000 && code <= 4999) || code === 1001 || code === 1003 || code === 1008;
    this.#ws.close(ok ? code : CloseCode.POLICY, reason.slice(0, CLOSE_REASON_MAX_CHARS));
  }

  /** Drops the connection at once, without a closing handshake (dead peer, revocation of a hostile peer). */
  terminate(): void {
    this.#stopHeartbeat();
    this.#ws.terminate();
  }

  #startHeartbeat(hb: HeartbeatOptions): void {
    this.#heartbeatTimer = setInterval(() => {
      if (this.#pongTimer || !this.isOpen) return; // still waiting for the previous pong
      this.#pongTimer = setTimeout(() => {
        this.#pongTimer = undefined;
        this.terminate(); // no pong in time: the peer or the path is dead
      }, hb.timeoutMs);
      this.#pongTimer.unref();
      this.#ws.ping();
    }, hb.intervalMs);
    // Heartbeats alone never keep a process alive.
    this.#heartbeatTimer.unref();
  }

  #stopHeartbeat(): void {
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer);
    if (this.#pongTimer) clearTimeout(this.#pongTimer);
    this.#heartbeatTimer = undefined;
    this.#pongTimer = undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------------------------

export interface SecureServerOptions {
  certPem: string;
  keyPem: string;
  /** The CPNS CA certificate: the only trust anchor for client certificates. */
  caPem: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /**
   * 'authenticated' (default): every client must present a certificate of the CPNS CA, refused by TLS itself in
   * the handshake otherwise; sessions on `path` only. 'enrollment': the anonymous surface: no client certificate
   * is asked for, every session is anonymous (the role layer accepts only an enrollment request there), and every
   * connection counts against the unauthenticated limits for its whole life.
   */
  mode?: 'authenticated' | 'enrollment';
  /** Path of the sessions. Default '/cpns' ('authenticated'), '/enroll' ('enrollment'). */
  path?: string;
  /** Roles allowed on the authenticated path (e.g. ['gw'] on the server, ['pne'] on a GW). Default: any. */
  allowedRoles?: readonly CpnsRole[];
  /** Largest frame accepted; a larger one closes the session with 1009. Default 1 MiB. */
  maxPayload?: number;
  heartbeat?: HeartbeatOptions | false;
  /** Checked at every upgrade: a revoked identity (or certificate serial) is refused. */
  isRevoked?: (identity: string, serialHex: string) => boolean;
  /** Limits on connections that have not proved an identity; defaults DEFAULT_CONNECTION_LIMITS. */
  limits?: Partial<ConnectionLimits>;
}

const REFUSAL_HEADER = 'x-cpns-refusal';

function refuse(socket: Duplex, status: number, text: string, reason: string): void {
  // Plain HTTP answer to the upgrade, then close: the client maps the reason header to a typed error.
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\n${REFUSAL_HEADER}: ${reason}\r\nContent-Length: 0\r\n\r\n`,
  );
}

/** Events: 'session' (session: Session), 'refused' (reason: string, remoteAddress?: string). */
export class SecureServer extends EventEmitter {
  readonly #opts: SecureServerOptions;
  readonly #https: https.Server;
  readonly #wss: WebSocketServer;
  readonly #path: string;
  readonly #maxPayload: number;
  readonly #all = new Set<Session>();
  readonly #byIdentity = new Map<string, Set<Session>>();
  readonly #sockets = new Set<TLSSocket>();
  readonly #upgradeTimers = new Map<string, NodeJS.Timeout>();
  readonly #enrollment: boolean;
  readonly #limits: ConnectionLimits;
  readonly #gate: ConnectionGate;
  #port = 0;

  constructor(opts: SecureServerOptions) {
    super();
    this.#opts = opts;
    this.#enrollment = opts.mode === 'enrollment';
    this.#path = opts.path ?? (this.#enrollment ? '/enroll' : '/cpns');
    this.#maxPayload = opts.maxPayload ?? DEFAULT_MAX_FRAME;
    this.#limits = { ...DEFAULT_CONNECTION_LIMITS, ...opts.limits };
    this.#gate = new ConnectionGate(this.#limits);
    this.#https = https.createServer({
      cert: opts.certPem,
      key: opts.keyPem,
      ca: opts.caPem,
      ...TLS13,
      // Session ports: OpenSSL itself refuses, in the handshake, a client without a valid certificate of our CA.
      // The enrollment port asks for none (its clients have none yet).
      requestCert: !this.#enrollment,
      rejectUnauthorized: !this.#enrollment,
      handshakeTimeout: this.#limits.handshakeTimeoutMs,
    });
    // Before any TLS work: bound the connections that have proved nothing, in total and per address, and give
    // each a deadline for its upgrade.
    this.#https.on('connection', (sock: import('node:net').Socket) => {
      const address = sock.remoteAddress;
      const port = sock.remotePort;
      const refusal = this.#gate.admit(address, port);
      if (refusal !== undefined) {
        this.emit('refused', refusal, address);
        sock.destroy();
        return;
      }
      const t = setTimeout(() => {
        this.emit('refused', 'upgrade-timeout', address);
        sock.destroy();
      }, this.#limits.upgradeTimeoutMs);
      t.unref();
      this.#upgradeTimers.set(`${address}|${port}`, t);
      sock.once('close', () => {
        clearTimeout(t);
        this.#upgradeTimers.delete(`${address}|${port}`);
        this.#gate.release(address, port);
      });
    });
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.#maxPayload,
      // No compression: it would cost a zlib context per session and mixes secrets with attacker data (CRIME).
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.#https.on('secureConnection', (s: TLSSocket) => {
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
    });
    this.#https.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(426, { connection: 'close' }).end();
    });
    this.#https.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#onUpgrade(req, socket, head),
    );
    // Per-connection TLS errors (bad cert, TLS 1.2 client) are refusals, not server failures.
    this.#https.on('tlsClientError', (_err: Error, s: TLSSocket) =>
      this.emit('refused', 'tls', s.remoteAddress),
    );
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#https.once('error', reject);
      this.#https.listen(this.#opts.port ?? 0, this.#opts.host ?? '127.0.0.1', () => {
        this.#https.off('error', reject);
        const a = this.#https.address() as AddressInfo;
        this.#port = a.port;
        resolve(a);
      });
    });
  }

  get port(): number {
    return this.#port;
  }

  /** URL of the authenticated path, for tests and local demos. */
  get url(): string {
    const host = this.#opts.host ?? '127.0.0.1';
    return `wss://${host.includes(':') ? `[${host}]` : host}:${this.#port}${this.#path}`;
  }

  /** URL of the enrollment listener (mode 'enrollment'); undefined on a session listener. */
  get anonymousUrl(): string | undefined {
    return this.#enrollment ? this.url : undefined;
  }

  /** Connections counted against the unauthenticated limits right now (tests, metrics). */
  get unauthenticatedCount(): number {
    return this.#gate.total;
  }

  get sessionCount(): number {
    return this.#all.size;
  }

  sessions(): IterableIterator<Session> {
    return this.#all.values();
  }

  sessionsOf(identity: string): Session[] {
    return [...(this.#byIdentity.get(identity) ?? [])];
  }

  /**
   * Closes every open session of `identity` at once with 4001, so a revoked peer loses its sessions now rather
   * than at its next reconnect (docs/transport.md "Secure sessions"). The caller must also make `isRevoked`
   * answer true so reconnects are refused.
   */
  closeSessionsOf(identity: string, code: number = CloseCode.REVOKED, reason = 'revoked'): number {
    const set = this.#byIdentity.get(identity);
    if (!set) return 0;
    for (const s of set) s.close(code, reason);
    return set.size;
  }

  /** Stops listening, closes sessions with 1001 and drops whatever is left after `graceMs`. */
  close(graceMs = DEFAULT_SERVER_CLOSE_GRACE_MS): Promise<void> {
    return new Promise((resolve) => {
      this.#https.close(() => resolve());
      for (const s of this.#all) s.close(CloseCode.GOING_AWAY, 'server shutting down');
      const t = setTimeout(() => {
        for (const s of this.#all) s.terminate();
        for (const sock of this.#sockets) sock.destroy();
      }, graceMs);
      t.unref();
      this.#https.closeIdleConnections();
      if (this.#all.size === 0) for (const sock of this.#sockets) sock.destroy();
    });
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const tlsSock = req.socket as TLSSocket;
    const admitted = this.#admit(req, tlsSock);
    if ('refusal' in admitted) {
      const [status, text, reason] = admitted.refusal;
      this.emit('refused', reason, tlsSock.remoteAddress);
      refuse(socket, status, text, reason);
      return;
    }
    const key = `${tlsSock.remoteAddress}|${tlsSock.remotePort}`;
    const t = this.#upgradeTimers.get(key);
    if (t) clearTimeout(t);
    this.#upgradeTimers.delete(key);
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      // An authenticated session no longer counts as unauthenticated; an enrollment session always does.
      if (admitted.peer !== null) this.#gate.release(tlsSock.remoteAddress, tlsSock.remotePort);
      const session = new Session({
        ws,
        side: 'server',
        peer: admitted.peer,
        anonymous: admitted.peer === null,
        remoteAddress: tlsSock.remoteAddress,
        remotePort: tlsSock.remotePort,
        heartbeat: this.#opts.heartbeat ?? DEFAULT_HEARTBEAT,
        maxPayload: this.#maxPayload,
      });
      this.#register(session);
      this.#firstFrameDeadline(session);
      this.emit('session', session);
    });
  }

  /** The peer must speak first within `firstFrameTimeoutMs` (a connection that never speaks holds memory). */
  #firstFrameDeadline(s: Session): void {
    const t = setTimeout(() => {
      this.emit('refused', 'first-frame-timeout', s.remoteAddress);
      s.close(CloseCode.FIRST_FRAME_TIMEOUT, 'no message in time');
    }, this.#limits.firstFrameTimeoutMs);
    t.unref();
    s.once('frame', () => clearTimeout(t));
    s.once('close', () => clearTimeout(t));
  }

  /** Decides whether an upgrade becomes a session; the peer identity is read from the verified certificate only. */
  #admit(
    req: IncomingMessage,
    tlsSock: TLSSocket,
  ): { peer: CertInfo | null } | { refusal: [number, string, string] } {
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'https://cpns.invalid').pathname;
    } catch {
      path = '';
    }
    if (path !== this.#path) return { refusal: [404, 'Not Found', 'path'] };
    if (this.#enrollment) return { peer: null };
    if (!tlsSock.authorized) return { refusal: [401, 'Unauthorized', 'not-authenticated'] };
    let peer: CertInfo;
    try {
      peer = certInfo(tlsSock.getPeerCertificate());
    } catch {
      return { refusal: [401, 'Unauthorized', 'bad-identity'] };
    }
    const allowed = this.#opts.allowedRoles;
    if (allowed && !allowed.includes(peer.role)) return { refusal: [403, 'Forbidden', 'role'] };
    let revoked = true; // a failing revocation hook refuses: fail closed
    try {
      revoked = this.#opts.isRevoked?.(peer.identity, peer.serialHex) ?? false;
    } catch {}
    if (revoked) return { refusal: [403, 'Forbidden', 'revoked'] };
    return { peer };
  }

  #register(s: Session): void {
    this.#all.add(s);
    const id = s.identity;
    if (id !== null) {
      let set = this.#byIdentity.get(id);
      if (!set) {
        set = new Set();
        this.#byIdentity.set(id, set);
      }
      set.add(s);
    }
    s.once('close', () => {
      this.#all.delete(s);
      if (id === null) return;
      const set = this.#byIdentity.get(id);
      set?.delete(s);
      if (set?.size === 0) this.#byIdentity.delete(id);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------------------------

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

const REFUSAL_CODES: Record<string, TransportErrorCode> = {
  'not-authenticated': 'NOT_AUTHENTICATED',
  'bad-identity': 'NOT_AUTHENTICATED',
  revoked: 'REVOKED',
  role: 'ROLE_REFUSED',
};

/** Opens a secure session (mutual TLS 1.3) to `url` (wss://...). Resolves once the WebSocket is open. */
export function connectSession(url: string, opts: SecureClientOptions): Promise<Session> {
  if ((opts.certPem === undefined) !== (opts.keyPem === undefined)) {
    return Promise.reject(
      new TransportError('NOT_AUTHENTICATED', 'certPem and keyPem go together', 'certPem'),
    );
  }
  const maxPayload = opts.maxPayload ?? DEFAULT_MAX_FRAME;
  return new Promise<Session>((resolve, reject) => {
    let identityError: TransportError | undefined;
    let peer: CertInfo | null = null;
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(e);
    };
    const pinned = opts.expectedServerIdentity !== undefined || opts.expectedServerRole !== undefined;
    const checkServerIdentity = (host: string, cert: PeerCertificate): Error | undefined => {
      // With an expected CPNS identity/role, that check replaces the host-name check: the CA certifies the
      // identity, and a GW reached on a local address has no DNS/IP SAN. Without one, the usual host-name check
      // (DNS/IP SANs) applies, and the certificate must still carry a valid CPNS identity.
      if (!pinned) {
        const hostErr = tls.checkServerIdentity(host, cert);
        if (hostErr) return hostErr;
      }
      try {
        peer = certInfo(cert);
      } catch (e) {
        identityError = e as TransportError;
        return identityError;
      }
      if (
        (opts.expectedServerIdentity !== undefined && peer.identity !== opts.expectedServerIdentity) ||
        (opts.expectedServerRole !== undefined && peer.role !== opts.expectedServerRole)
      ) {
        identityError = new TransportError('PEER_IDENTITY_MISMATCH', 'server is not the expected identity');
        return identityError;
      }
      return undefined;
    };
    const ws = new WebSocket(url, {
      ca: opts.caPem,
      ...(opts.certPem !== undefined ? { cert: opts.certPem, key: opts.keyPem } : {}),
      ...TLS13,
      rejectUnauthorized: true,
      checkServerIdentity: checkServerIdentity as unknown as () => boolean, // @types/ws mistypes the return
      perMessageDeflate: false,
      maxPayload,
      followRedirects: false,
      handshakeTimeout: opts.handshakeTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      closeTimeout: CLOSE_TIMEOUT_MS,
    } as ConstructorParameters<typeof WebSocket>[2]);
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
      const reason = String(res.headers[REFUSAL_HEADER] ?? '');
      const code = REFUSAL_CODES[reason] ?? 'UPGRADE_REFUSED';
      res.resume();
      fail(new TransportError(code, `server refused the session (${res.statusCode ?? 0})`));
    });
    ws.once('error', (err: Error & { code?: string }) => {
      if (identityError) return fail(identityError);
      fail(
        new TransportError('TLS_REFUSED', 'secure session could not be established', undefined, {
          cause: err,
        }),
      );
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
      resolve(
        new Session({
          ws,
          side: 'client',
          peer,
          anonymous: opts.certPem === undefined,
          remoteAddress,
          remotePort,
          heartbeat: opts.heartbeat ?? DEFAULT_HEARTBEAT,
          maxPayload,
        }),
      );
    });
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

// ---------------------------------------------------------------------------------------------------------------
// Reconnecting client
// ---------------------------------------------------------------------------------------------------------------

export interface BackoffOptions {
  /** First retry delay (ms). Default 250. */
  initialMs?: number;
  /** Ceiling (ms). Default 30 000. */
  maxMs?: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
  /** Fraction of the delay that is randomised (0..1). Default 0.5: delay in [d/2, d]. */
  jitter?: number;
}

/** Delay before retry number `attempt` (0-based): exponential, capped, with jitter so a fleet does not stampede. */
export function backoffDelay(
  attempt: number,
  o: BackoffOptions = {},
  rand: () => number = Math.random,
): number {
  const initial = o.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS;
  const max = o.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
  const factor = o.factor ?? DEFAULT_BACKOFF_FACTOR;
  const jitter = Math.min(1, Math.max(0, o.jitter ?? DEFAULT_BACKOFF_JITTER));
  const d = Math.min(max, initial * factor ** Math.min(attempt, BACKOFF_MAX_EXPONENT));
  return Math.round(d * (1 - jitter * rand()));
}

/** Errors after which retrying cannot help: the server said no to this identity. */
const FATAL: ReadonlySet<string> = new Set([
  'REVOKED',
  'ROLE_REFUSED',
  'PEER_IDENTITY_MISMATCH',
  'BAD_IDENTITY',
]);

/**
 * Keeps one secure session up. Events: 'session' (Session) on every (re)connect so the role layer resumes its
 * state; 'disconnected' (code, reason); 'connect-error' (err, nextDelayMs); 'fatal' (err) after which it stops.
 */
export class ReconnectingClient extends EventEmitter {
  #opts: SecureClientOptions;
  readonly #url: string;
  readonly #backoff: BackoffOptions;
  #session: Session | null = null;
  #timer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #running = false;
  #connecting = false;

  constructor(url: string, opts: SecureClientOptions, backoff: BackoffOptions = {}) {
    super();
    this.#url = url;
    this.#opts = opts;
    this.#backoff = backoff;
  }

  get session(): Session | null {
    return this.#session;
  }

  /** New credentials (e.g. after certificate renewal) take effect at the next connect. */
  updateOptions(patch: Partial<SecureClientOptions>): void {
    this.#opts = { ...this.#opts, ...patch };
  }

  start(): this {
    if (this.#running) return this;
    this.#running = true;
    this.#connect();
    return this;
  }

  stop(code: number = CloseCode.NORMAL, reason = 'client stopping'): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#session?.close(code, reason);
  }

  #connect(): void {
    if (!this.#running || this.#connecting) return;
    this.#connecting = true;
    connectSession(this.#url, this.#opts).then(
      (s) => {
        this.#connecting = false;
        if (!this.#running) {
          s.close(CloseCode.NORMAL, 'client stopping');
          return;
        }
        this.#attempt = 0;
        this.#session = s;
        s.once('close', (code: number, reason: string) => {
          this.#session = null;
          this.emit('disconnected', code, reason);
          if (code === CloseCode.REVOKED) {
            this.#running = false;
            this.emit('fatal', new TransportError('REVOKED', 'identity revoked by the server'));
            return;
          }
          this.#schedule();
        });
        this.emit('session', s);
      },
      (err: TransportError) => {
        this.#connecting = false;
        if (FATAL.has(err.code)) {
          this.#running = false;
          this.emit('fatal', err);
          return;
        }
        const delay = this.#schedule();
        this.emit('connect-error', err, delay);
      },
    );
  }

  #schedule(): number {
    if (!this.#running) return 0;
    const delay = backoffDelay(this.#attempt++, this.#backoff);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#connect();
    }, delay);
    return delay;
  }
}
