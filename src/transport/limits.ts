/**
 * Limits on connections that have not (yet) proved an identity (issue #8 §3, docs/transport.md "Limits").
 * Every limit is an option with a safe default here, and each has its own refusal reason / close code.
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
