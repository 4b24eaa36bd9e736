/**
 * Keeps one client session up across failures (docs/transport.md "Secure sessions"): reconnects with backoff,
 * reports every new session so the role layer resumes its state, and stops for good when the server refuses the
 * identity itself (revoked, wrong role or identity), since retrying cannot help then.
 */
import { EventEmitter } from 'node:events';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { connectSession, type SecureClientOptions } from './connect-session.js';
import { TransportError } from './errors.js';
import { CloseCode, type Session } from './session.js';

/** Errors after which retrying cannot help: the server said no to this identity. */
const FATAL: ReadonlySet<string> = new Set([
  'REVOKED',
  'ROLE_REFUSED',
  'PEER_IDENTITY_MISMATCH',
  'BAD_IDENTITY',
]);

export type EstablishSession = (s: Session) => Promise<void>;

/**
 * Keeps one secure session up: the one reconnect of the product (the GW's session to the server, the PNE's to its
 * GW). Events: 'session' (Session) on every connect, before `establish`, so the role layer wires its handlers;
 * 'established' (Session, reconnected: boolean) once `establish` resolved; 'disconnected' (code, reason);
 * 'retry' (attempt, delayMs) before each new try; 'connect-error' (err, nextDelayMs); 'fatal' (err) after which
 * it stops (revoked, or an identity the peer will never accept).
 */
export class ReconnectingClient extends EventEmitter {
  #opts: SecureClientOptions;
  readonly #url: string;
  readonly #backoff: BackoffOptions;
  readonly #establish: EstablishSession | undefined;
  #session: Session | null = null;
  #timer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #running = false;
  #connecting = false;
  #everUp = false;

  constructor(
    url: string,
    opts: SecureClientOptions,
    backoff: BackoffOptions = {},
    establish?: EstablishSession,
  ) {
    super();
    this.#url = url;
    this.#opts = opts;
    this.#backoff = backoff;
    this.#establish = establish;
  }

  get session(): Session | null {
    return this.#session;
  }

  /** New credentials (e.g. after certificate renewal) take effect at the next connect. */
  updateOptions(patch: Partial<SecureClientOptions>): void {
    this.#opts = { ...this.#opts, ...patch };
  }

  /** Connects in the background, retrying with backoff from the first attempt on. */
  start(): this {
    if (this.#running) return this;
    this.#running = true;
    this.#connect();
    return this;
  }

  /**
   * The first attempt in the foreground: resolves with the established session, or rejects with its error and
   * stays stopped (a device start-up should fail loudly). After success, losses are retried as with start().
   */
  async open(): Promise<Session> {
    if (this.#running) throw new TransportError('CLOSED', 'client already started');
    this.#running = true;
    this.#connecting = true;
    try {
      const s = await this.#up();
      return s;
    } catch (e) {
      this.#running = false;
      throw e;
    } finally {
      this.#connecting = false;
    }
  }

  stop(code: number = CloseCode.NORMAL, reason = 'client stopping'): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#session?.close(code, reason);
  }

  /** One connect + establish. On an establish failure the session is closed (and its close does not retry). */
  async #up(): Promise<Session> {
    const s = await connectSession(this.#url, this.#opts);
    if (!this.#running) {
      s.close(CloseCode.NORMAL, 'client stopping');
      throw new TransportError('CLOSED', 'client stopped');
    }
    this.#session = s;
    let established = false;
    let closedWith: number | undefined;
    s.once('close', (code: number, reason: string) => {
      if (this.#session === s) this.#session = null;
      closedWith = code;
      if (!established) return;
      this.emit('disconnected', code, reason);
      if (code === CloseCode.REVOKED) {
        this.#running = false;
        this.emit('fatal', new TransportError('REVOKED', 'identity revoked by the server'));
        return;
      }
      this.#schedule();
    });
    this.emit('session', s);
    try {
      if (this.#establish) await this.#establish(s);
    } catch (e) {
      s.close(CloseCode.NORMAL, 'establish failed');
      // A peer that closes with REVOKED while we establish has said no for good, whatever the request saw.
      if (closedWith === CloseCode.REVOKED)
        throw new TransportError('REVOKED', 'identity revoked by the server');
      throw e;
    }
    if (!s.isOpen) throw new TransportError('CLOSED', 'session closed while being established');
    established = true;
    this.#attempt = 0;
    const reconnected = this.#everUp;
    this.#everUp = true;
    this.emit('established', s, reconnected);
    return s;
  }

  #connect(): void {
    if (!this.#running || this.#connecting) return;
    this.#connecting = true;
    this.#up().then(
      () => {
        this.#connecting = false;
      },
      (err: unknown) => {
        this.#connecting = false;
        if (!this.#running) return;
        const code = (err as { code?: unknown }).code;
        if (typeof code === 'string' && FATAL.has(code)) {
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
    this.emit('retry', this.#attempt, delay);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#connect();
    }, delay);
    this.#timer.unref?.();
    return delay;
  }
}
