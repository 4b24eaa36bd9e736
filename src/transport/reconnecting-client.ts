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
