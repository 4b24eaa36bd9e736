/**
 * Every limit and timeout of the transport, with its default, in one place (docs/transport.md "Limits on
 * connections that have proved nothing"). First the limits on connections that have not (yet) proved an
 * identity: each is an option with a safe default here, and each has its own refusal reason / close code.
 * Then the defaults of the sessions, the reconnecting client and the tunnel.
 */
export interface ConnectionLimits {
  /** The TLS handshake must finish within this time (ms); reason `tls`. */
  handshakeTimeoutMs: number;
  /** A connection must complete its WebSocket upgrade within this time of being accepted (ms); reason `upgrade-timeout`. */
  upgradeTimeoutMs: number;
  /** Once upgraded, the peer must send its first frame within this time (ms); close code 4003 (FIRST_FRAME_TIMEOUT). */
  firstFrameTimeoutMs: number;
  /**
   * Most connections at once that have not become authenticated sessions (TCP accepted, TLS or upgrade pending;
   * on an enrollment listener: every connection). Past it, a new connection is dropped before any TLS work;
   * reason `limit-total`.
   */
  maxUnauthenticated: number;
  /** The same, per remote address; reason `limit-address`. */
  maxUnauthenticatedPerAddress: number;
}

/** Defaults: generous for a fleet reconnecting at once, small enough that idle junk connections cannot pile up. */
export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  handshakeTimeoutMs: 10_000,
  upgradeTimeoutMs: 10_000,
  firstFrameTimeoutMs: 10_000,
  maxUnauthenticated: 512,
  maxUnauthenticatedPerAddress: 64,
});

export type LimitRefusal = 'limit-total' | 'limit-address';

/**
 * Counts unauthenticated connections, in total and per remote address. A connection is named by its TCP
 * endpoint (`address|port`), which the raw socket and the TLS socket over it share.
 */
export class ConnectionGate {
  readonly #limits: ConnectionLimits;
  readonly #byAddress = new Map<string, number>();
  /** connection key -> its remote address */
  readonly #counted = new Map<string, string>();

  constructor(limits: ConnectionLimits) {
    this.#limits = limits;
  }

  get total(): number {
    return this.#counted.size;
  }

  /** Admits a new connection (counted until `release`), or says which limit it hits. */
  admit(address: string | undefined, port: number | undefined): LimitRefusal | undefined {
    const addr = address ?? '?';
    if (this.#counted.size >= this.#limits.maxUnauthenticated) return 'limit-total';
    const n = this.#byAddress.get(addr) ?? 0;
    if (n >= this.#limits.maxUnauthenticatedPerAddress) return 'limit-address';
    this.#byAddress.set(addr, n + 1);
    this.#counted.set(`${addr}|${port}`, addr);
    return undefined;
  }

  /** The connection closed or became an authenticated session: it no longer counts. Idempotent. */
  release(address: string | undefined, port: number | undefined): void {
    const key = `${address ?? '?'}|${port}`;
    const addr = this.#counted.get(key);
    if (addr === undefined) return;
    this.#counted.delete(key);
    const n = (this.#byAddress.get(addr) ?? 1) - 1;
    if (n <= 0) this.#byAddress.delete(addr);
    else this.#byAddress.set(addr, n);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Sessions (docs/transport.md "Secure sessions")
// ---------------------------------------------------------------------------------------------------------------

/** Default heartbeat ping interval (ms): frequent enough to notice a dead peer, rare enough to cost nothing idle. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 30_000;
/** Default wait for a heartbeat's pong (ms) before the session is terminated (close 1006). */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 10_000;
/** Time to wait for the peer's close frame before dropping the socket (ws default is 30 s; too long for us). */
export const CLOSE_TIMEOUT_MS = 5_000;
/**
 * Longest close reason sent (characters). A WebSocket close frame is a control frame of at most 125 bytes, two of
 * them the code (RFC 6455 §5.5), and ws throws on a longer reason; ours are short ASCII texts.
 */
export const CLOSE_REASON_MAX_CHARS = 120;
/** Default grace (ms) `SecureServer.close` gives sessions to answer the 1001 close before they are dropped. */
export const DEFAULT_SERVER_CLOSE_GRACE_MS = 1_000;
/** Default bound (ms) on a whole client connect: TCP + TLS + WebSocket upgrade (`handshakeTimeoutMs`). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/**
 * Our own connect deadline fires this long (ms) after ws's `handshakeTimeout`: ws reports its own timeout first
 * when it can, and ours still ends a connect that ws leaves hanging.
 */
export const CONNECT_DEADLINE_SLACK_MS = 1_000;

// ---------------------------------------------------------------------------------------------------------------
// Reconnecting client backoff (docs/transport.md "Secure sessions")
// ---------------------------------------------------------------------------------------------------------------

/** Default first retry delay (ms): a quick retry after a blip. */
export const DEFAULT_BACKOFF_INITIAL_MS = 250;
/** Default ceiling of the retry delay (ms): a server that is down for long is not hammered. */
export const DEFAULT_BACKOFF_MAX_MS = 30_000;
/** Default growth of the delay per failed attempt. */
export const DEFAULT_BACKOFF_FACTOR = 2;
/** Default randomised fraction of the delay (0..1), so a fleet reconnecting at once does not stampede. */
export const DEFAULT_BACKOFF_JITTER = 0.5;
/** Attempts past this count no longer grow the exponent (the delay is long capped by then anyway). */
export const BACKOFF_MAX_EXPONENT = 64;
/**
 * Most URLs one reconnecting client fails over between (docs/transport.md "Failover over a list of URLs"): the
 * nodes of a cluster, or the GWs a PNE may use. A longer list is refused at construction (TypeError): it would
 * only make one failed round, and so the wait before the next, longer.
 */
export const MAX_RECONNECT_URLS = 32;

// ---------------------------------------------------------------------------------------------------------------
// Tunnel (docs/transport.md "The tunnel")
// ---------------------------------------------------------------------------------------------------------------

/** Frames of at most this much tunnel data: a few TLS records, small enough not to starve other traffic. */
export const DEFAULT_TUNNEL_CHUNK_BYTES = 64 * 1024;
/** Unread bytes a tunnel end tolerates before it resets the tunnel (OVERFLOW) instead of growing memory. */
export const DEFAULT_TUNNEL_MAX_BUFFERED_BYTES = 256 * 1024;
/** Default open tunnels on one session, both directions together. */
export const DEFAULT_MAX_TUNNELS_PER_SESSION = 64;
/** Default tunnels one PNE session may have open through a GW relay. */
export const DEFAULT_MAX_TUNNELS_PER_PNE = 8;
/** Default bound (ms) on the end-to-end TLS handshake inside a tunnel, acceptance byte included. */
export const DEFAULT_TUNNEL_TLS_TIMEOUT_MS = 10_000;
/** Default largest length-prefixed message on a tunnel TLS socket (`MessageSocket`), sent or accepted. */
export const DEFAULT_MAX_TUNNEL_MESSAGE_BYTES = 1024 * 1024;
