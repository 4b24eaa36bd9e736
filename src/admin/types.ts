import type { EventEmitter } from 'node:events';
import type { FastifyBaseLogger } from 'fastify';
import type { CpnsMetrics } from '../metrics/index.js';
import type { ServerAdmin } from '../server/index.js';
import type { Store } from '../store/store.js';

/**
 * A server event the console reacts to (the server emits `'change'` on its EventEmitter). Only these fields are
 * forwarded to SSE clients, and only primitive values: an event can never carry key material to a browser.
 */
export type { ChangeEvent } from '../server/events.js';
export type { ServerAdmin };

export interface AdminAppOptions {
  /** The server's in-process operator API: every mutation goes through it (no second path to the state). */
  admin: ServerAdmin;
  /** Read side: inventory, groups, key metadata, delivery status, audit. */
  store: Store;
  /** Server events: `'change'` with a ChangeEvent. Optional: API mutations are streamed anyway. */
  events?: EventEmitter;
  metrics: CpnsMetrics;
  /** Bearer token for /api (and /metrics unless `publicMetrics`). */
  auth: { token: string };
  /** pino logger (request ids are added per request); default: no logging. */
  logger?: FastifyBaseLogger;
  /** TLS (cert, key PEM); without it the app speaks plain HTTP (tests, behind a TLS proxy). */
  https?: { cert: string; key: string; ca?: string; minVersion?: 'TLSv1.3' | 'TLSv1.2' } | null;
  /** Serve /metrics without the token (for a Prometheus on a trusted network). Default false. */
  publicMetrics?: boolean;
  /** Most concurrent SSE streams. Default 32. */
  maxEventStreams?: number;
  /** SSE keep-alive comment interval (ms). Default 15 000. */
  keepAliveMs?: number;
  /**
   * In a cluster: the event bus, which `/readyz` checks too (one round trip, `EventBus.ping`). Without it the
   * probe checks the store only.
   */
  bus?: { ping(): Promise<void> };
  /** How long `/readyz` waits for each dependency (the store, the bus) before it says not ready. Default 2000. */
  readyTimeoutMs?: number;
  /** Directory of the console's static files. Default: `console/` next to this module. */
  consoleDir?: string;
}
