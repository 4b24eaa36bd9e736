/**
 * Keeps one client session up across failures (docs/transport.md "Secure sessions", "Failover over a list of
 * URLs"): connects to one URL of its list, moves round robin to the next on a failed connect or a lost session,
 * backs off per full round, reports every new session (and its URL) so the role layer resumes its state, and stops
 * for good when the peer refuses the identity itself (revoked, wrong role), since no node of the cluster will
 * accept it then.
 */
import { EventEmitter } from 'node:events';
import type { BackoffOptions } from './backoff.js';
import { connectSession, type SecureClientOptions } from './connect-session.js';
import { TransportError } from './errors.js';
import {
  establishedRotation,
  firstRotation,
  nextRotation,
  type Rotation,
  type RotationOutcome,
  urlList,
} from './failover.js';
import { CloseCode, type Session } from './session.js';

/**
 * Errors after which retrying cannot help at any URL: the peer said no to this identity, and every node of a
 * cluster (every GW of a PN) shares the CA, the revocation list and the role rules.
 */
const FATAL: ReadonlySet<string> = new Set(['REVOKED', 'ROLE_REFUSED']);
/**
 * Errors that say the peer at this URL is not the one expected (its certificate names another identity or role, or
 * no valid CPNS identity): a wrong entry in the list, an operator error. That URL is dropped from the list for the
 * client's lifetime ('excluded') and the next one is tried; only when it was the last URL is it fatal (so a client
 * with a single URL stops at once, as before lists).
 */
const WRONG_PEER: ReadonlySet<string> = new Set(['PEER_IDENTITY_MISMATCH', 'BAD_IDENTITY']);

export type EstablishSession = (s: Session) => Promise<void>;

/** Backoff (applied per full round over the URLs) and the random source of the rotation. */
export interface ReconnectOptions extends BackoffOptions {
  /**
   * Random numbers in [0, 1): the start index in the URL list (so a fleet spreads over the nodes) and the backoff
   * jitter. Default Math.random; tests inject a fixed sequence.
   */
  random?: () => number;
}

/**
 * Keeps one secure session up: the one reconnect of the product (the GW's session to the server, the PNE's to its
 * GW). Takes one URL or a list (at most MAX_RECONNECT_URLS, src/transport/limits.ts) and fails over between them.
 * Events: 'session' (Session, url) on every connect, before `establish`, so the role layer wires its handlers;
 * 'established' (Session, reconnected: boolean, url) once `establish` resolved; 'disconnected' (code, reason, url);
 * 'retry' (attempt, delayMs, nextUrl) before each new try; 'connect-error' (err, nextDelayMs, url);
 * 'excluded' (err, url) when a URL is dropped from the list (its peer is not the expected one); 'fatal' (err)
 * after which it stops (revoked, a role the peer never accepts, or no URL left).
 */
export class ReconnectingClient extends EventEmitter {
  #opts: SecureClientOptions;
  readonly #urls: string[];
  readonly #backoff: BackoffOptions;
  readonly #rand: () => number;
  readonly #establish: EstablishSession | undefined;
  #rotation: Rotation;
  #session: Session | null = null;
  #sessionUrl: string | null = null;
  #timer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #running = false;
  #connecting = false;
  #everUp = false;

  constructor(
    urls: string | readonly string[],
    opts: SecureClientOptions,
    backoff: ReconnectOptions = {},
    establish?: EstablishSession,
  ) {
    super();
    this.#urls = urlList(urls);
    this.#opts = opts;
    const { random, ...delays } = backoff;
    this.#backoff = delays;
    this.#rand = random ?? Math.random;
    this.#rotation = firstRotation(this.#urls.length, this.#rand);
    this.#establish = establish;
  }

  get session(): Session | null {
    return this.#session;
  }

  /** URL of the current session, or null when there is none. */
  get url(): string | null {
    return this.#session ? this.#sessionUrl : null;
  }

  /** The URLs still in rotation (a URL whose peer was the wrong one has been dropped). */
  get urls(): readonly string[] {
    return [...this.#urls];
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
   * The first round in the foreground: tries each URL once, resolves with the first established session, or
   * rejects with the last error and stays stopped (a device start-up should fail loudly); a fatal refusal rejects
   * at once. After success, losses are retried as with start().
   */
  async open(): Promise<Session> {
    if (this.#running) throw new TransportError('CLOSED', 'client already started');
    this.#running = true;
    this.#connecting = true;
    try {
      // One round: every URL once (a URL dropped as a wrong peer also leaves the round).
      for (let left = this.#urls.length; ; ) {
        const url = this.#current();
        try {
          return await this.#up(url);
        } catch (e) {
          const outcome = this.#running ? this.#failure(e, url, false) : undefined;
          left--;
          if (!outcome || left <= 0) throw e;
          const n = this.#urls.length;
          this.#rotation = nextRotation(this.#rotation, n, outcome, this.#backoff, this.#rand).rotation;
          this.emit('connect-error', e, 0, url);
        }
      }
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

  #current(): string {
    const url = this.#urls[this.#rotation.index];
    if (url === undefined) throw new TransportError('CLOSED', 'no URL left');
    return url;
  }

  /** One connect + establish. On an establish failure the session is closed (and its close does not retry). */
  async #up(url: string): Promise<Session> {
    const s = await connectSession(url, this.#opts);
    if (!this.#running) {
      s.close(CloseCode.NORMAL, 'client stopping');
      throw new TransportError('CLOSED', 'client stopped');
    }
    this.#session = s;
    this.#sessionUrl = url;
    let established = false;
    let closedWith: number | undefined;
    s.once('close', (code: number, reason: string) => {
      if (this.#session === s) this.#session = null;
      closedWith = code;
      if (!established) return;
      this.emit('disconnected', code, reason, url);
      if (code === CloseCode.REVOKED) {
        this.#running = false;
        this.emit('fatal', new TransportError('REVOKED', 'identity revoked by the server'));
        return;
      }
      this.#schedule('lost');
    });
    this.emit('session', s, url);
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
    const i = this.#urls.indexOf(url);
    this.#rotation = establishedRotation(Math.max(i, 0));
    const reconnected = this.#everUp;
    this.#everUp = true;
    this.emit('established', s, reconnected, url);
    return s;
  }

  /**
   * Sorts a failed attempt at `url`: fatal (stops; 'fatal' emitted when `report`), a wrong peer (the URL leaves
   * the list, 'excluded'; fatal when it was the last), or an ordinary failure (the next URL).
   */
  #failure(err: unknown, url: string, report: boolean): RotationOutcome | undefined {
    const code = (err as { code?: unknown }).code;
    const wrongPeer = typeof code === 'string' && WRONG_PEER.has(code);
    if ((typeof code === 'string' && FATAL.has(code)) || (wrongPeer && this.#urls.length === 1)) {
      this.#running = false;
      if (report) this.emit('fatal', err);
      return undefined;
    }
    if (!wrongPeer) return 'failed';
    const i = this.#urls.indexOf(url);
    if (i >= 0) this.#urls.splice(i, 1);
    this.emit('excluded', err, url);
    return 'removed';
  }

  #connect(): void {
    if (!this.#running || this.#connecting) return;
    this.#connecting = true;
    const url = this.#current();
    this.#up(url).then(
      () => {
        this.#connecting = false;
      },
      (err: unknown) => {
        this.#connecting = false;
        if (!this.#running) return;
        const outcome = this.#failure(err, url, true);
        if (!outcome) return;
        const delay = this.#schedule(outcome);
        this.emit('connect-error', err, delay, url);
      },
    );
  }

  #schedule(outcome: RotationOutcome): number {
    if (!this.#running) return 0;
    const { rotation, delayMs } = nextRotation(
      this.#rotation,
      this.#urls.length,
      outcome,
      this.#backoff,
      this.#rand,
    );
    this.#rotation = rotation;
    this.#attempt++;
    this.emit('retry', this.#attempt, delayMs, this.#current());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#connect();
    }, delayMs);
    this.#timer.unref?.();
    return delayMs;
  }
}
