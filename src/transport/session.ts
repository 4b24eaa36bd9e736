/**
 * Secure sessions (CPNS TS §5.3.2): a WebSocket carried over TLS 1.3 with mutual certificate authentication
 * against the CPNS CA. They give authenticity, confidentiality and integrity to every CPNS message between
 * CPNS Server and PN GW, and PN GW and PNE (server–PNE runs inside a tunnel, see tunnel-tls.ts). Messages
 * destined to a Service Group ride the same sessions but are protected by the Group Key, not by the session
 * (§5.3.4).
 *
 * The peer identity of a session comes only from the certificate that TLS verified; nothing the peer says in a
 * message can change it. Frames are opaque binary WebSocket messages here (see framing.ts for their kinds).
 *
 * This file is the open session itself, whichever end created it: secure-server.ts accepts sessions,
 * connect-session.ts opens them, reconnecting-client.ts keeps one up (docs/transport.md "Secure sessions").
 */
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import type { CertInfo, CpnsRole } from './ca.js';
import { TransportError } from './errors.js';
import {
  CLOSE_REASON_MAX_CHARS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
} from './limits.js';

const BINARY = { binary: true } as const;

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
    // Without `cb`, no callback per frame (a fan-out sends the same frame to many sessions).
    if (cb) this.#ws.send(frame, BINARY, (err) => cb(err ?? undefined));
    else this.#ws.send(frame, BINARY);
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
