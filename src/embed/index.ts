/**
 * Composition roots for embedding code (above the roles and the store): they choose the store backend and hand it
 * to a role. See docs/architecture.md "Layers". This is the package's `cpns/server` entry: `startServer` (SQLite
 * in a data directory, or PostgreSQL) and the server role's public surface, so an embedder needs one import.
 */
export {
  CpnsServer,
  type CreateGroupInput,
  type GroupPolicyPatch,
  type GroupSummary,
  type ServerAdmin,
  type ServerOptions,
  type WireSuite,
} from '../server/index.js';
export {
  isPostgresUrl,
  type OpenServerStoreOptions,
  openServerStore,
  type SqliteServerOptions,
  startServer,
} from './server.js';
