/**
 * Every default and limit of a PN GW in one place (docs/architecture.md, PN GW; the options in types.ts document each one). Limits on
 * unauthenticated connections are the transport's (DEFAULT_CONNECTION_LIMITS, docs/transport.md "Limits").
 */
export const GATEWAY_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  /** Ephemeral by default; `cpns gateway --port` fixes it. */
  port: 0,
  enrollPort: 0,
  /** How long start() waits for the first registration with the server (ms). */
  startTimeoutMs: 15_000,
  /** Leaves of a new broadcast tree. */
  broadcastCapacity: 1024,
  /** An anonymous enrollment session lives at most this long (ms). */
  enrollSessionMs: 30_000,
  /** How long a relayed enrollment (and the device side of enrollment) waits for the server (ms). */
  enrollRelayTimeoutMs: 15_000,
  /** End-to-end tunnels one PNE session may have open through this GW at once. */
  maxTunnelsPerPne: 4,
  /**
   * Per-PNE delivery reports wait at most this long (ms), or until this many entries, or until every attached
   * target of the epoch has acked, before going upstream (reports.ts).
   */
  reportBatchMs: 10,
  reportBatchMax: 1024,
});
