/** What every `/api/v1` route module gets: the read side, the write side, and the change feed. */
import type { FastifyRequest } from 'fastify';
import type { Store } from '../../store/store.js';
import type { Mutate } from '../events.js';
import type { ServerAdmin } from '../types.js';

export const API = '/api/v1';

export interface RouteContext {
  /** Reads: inventory, groups, key metadata (never key bytes), delivery status, audit. */
  store: Store;
  /** Every mutation goes through the server's operator API, wrapped in `mutate`. */
  admin: ServerAdmin;
  /** The operator API acting as the request's admin token (`operator:<name>` in the audit log). */
  adminFor(req: FastifyRequest): ServerAdmin;
  mutate: Mutate;
}
