/** Every default and limit of the PNE SDK in one place (docs/architecture.md, PNE SDK). */
import type { Medium } from '../core/codec/index.js';

/** Every default and limit of the PNE SDK in one place (docs/architecture.md, PNE SDK; the options document each one). */
export const PNE_DEFAULTS = Object.freeze({
  /** Media the PNE reaches its GW over, when `media` is not given. */
  media: ['wifi'] as readonly Medium[],
  /** Reconnect backoff to the GW (and the server tunnel) when `reconnect` is not given. */
  reconnect: Object.freeze({ initialMs: 100, maxMs: 5000 }),
  /** How long createGroup/joinGroup wait for the Group Key before fetching it over the tunnel (ms). */
  keyWaitMs: 3000,
  /** How long a request over the server tunnel waits for the tunnel to come up (ms). */
  serverWaitMs: 10_000,
  /** Largest message on the end-to-end tunnel to the server (bytes). */
  maxTunnelMessage: 1024 * 1024,
});
/** Messages kept per SG while its current key is fetched (UNKNOWN_EPOCH), not a public option. */
export const MAX_PENDING = 32;
