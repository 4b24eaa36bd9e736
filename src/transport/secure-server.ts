/**
 * The listener of secure sessions (docs/transport.md "Secure sessions"): an HTTPS server whose WebSocket
 * upgrades become Sessions. Mode 'authenticated' (session ports) lets OpenSSL refuse, in the handshake, any client
 * without a certificate of the CPNS CA; mode 'enrollment' (the anonymous surface) asks for none. Connections that
 * have proved nothing are bounded before any TLS work (limits.ts, docs/transport.md "Limits on connections that
 * have proved nothing").
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import type { CpnsRole } from './ca.js';
import { DEFAULT_MAX_FRAME } from './framing.js';
import {
  ConnectionGate,
  type ConnectionLimits,
  DEFAULT_CONNECTION_LIMITS,
  DEFAULT_SERVER_CLOSE_GRACE_MS,
} from './limits.js';
import { CloseCode, DEFAULT_HEARTBEAT, type HeartbeatOptions, Session } from './session.js';
import { TLS_PARAMS } from './tls-params.js';
import { admitUpgrade, refuseUpgrade } from './upgrade-admission.js';

export { type ConnectionLimits, DEFAULT_CONNECTION_LIMITS } from './limits.js';

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
      ...TLS_PARAMS,
      // Session ports: OpenSSL itself refuses, in the handshake, a client without a valid certificate of our CA.
      // The enrollment port asks for none (its clients have none yet).
      requestCert: !this.#enrollment,
      rejectUnauthorized: !this.#enrollment,
      handshakeTimeout: this.#limits.handshakeTimeoutMs,
    });
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.#maxPayload,
      // No compression: it would cost a zlib context per session and mixes secrets with attacker data (CRIME).
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.#handleHttpsEvents();
  }

  #handleHttpsEvents(): void {
    this.#https.on('connection', (sock: Socket) => this.#gateConnection(sock));
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

  /**
   * Before any TLS work: bound the connections that have proved nothing, in total and per address, and give
   * each a deadline for its upgrade.
   */
  #gateConnection(sock: Socket): void {
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
    const admitted = admitUpgrade(
      req,
      tlsSock,
      { path: this.#path, enrollment: this.#enrollment },
      this.#opts,
    );
    if ('refusal' in admitted) {
      const [status, text, reason] = admitted.refusal;
      this.emit('refused', reason, tlsSock.remoteAddress);
      refuseUpgrade(socket, status, text, reason);
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
