/**
 * Composition roots for embedding code (above the roles and the store): they choose the store backend and hand it
 * to a role. See docs/architecture.md "Layers".
 */
export {
  isPostgresUrl,
  type OpenServerStoreOptions,
  openServerStore,
  type SqliteServerOptions,
  startServer,
} from './server.js';
