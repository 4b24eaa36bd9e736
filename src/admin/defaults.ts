/**
 * The admin app's limits, in one place so that the numbers docs/operator.md states ("Validation and errors",
 * "Live events") have a single source. `maxEventStreams`, `keepAliveMs` and `readyTimeoutMs` are the defaults of the
 * `AdminAppOptions` of the same name; the others are fixed.
 */
export const ADMIN_DEFAULTS = {
  /** Largest request body (413 TOO_LARGE above it). Admin bodies are a few hundred bytes. */
  bodyLimitBytes: 64 * 1024,
  /**
   * Longest path parameter (414 URI_TOO_LONG above it). The longest id is a PNE urn (49 characters); the router
   * refuses anything much longer before a handler or a schema sees it.
   */
  maxParamLength: 120,
  /** Shortest admin bearer token accepted (the generated one is 43 characters). */
  minTokenLength: 16,
  /** Longest bearer token looked up (a longer Authorization header is refused before it is hashed). */
  maxTokenLength: 256,
  /** Most concurrent SSE streams (503 TOO_MANY_STREAMS beyond): each holds a socket and two listeners. */
  maxEventStreams: 32,
  /** Interval of the SSE keep-alive comment, short enough for proxies that drop idle connections. */
  keepAliveMs: 15_000,
  /** The SSE `retry:` field: how long a client waits before it reconnects a dropped stream. */
  sseRetryMs: 2000,
  /** `/readyz` waits this long for the store (and, in a cluster, the bus) before it answers 503 NOT_READY. */
  readyTimeoutMs: 2000,
  /** Lifetime of an enrollment token when `POST /enrollment-tokens` gives no `ttlSec`. */
  enrollmentTokenTtlSec: 3600,
} as const;
