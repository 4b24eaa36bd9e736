export * from '../core/crypto/masterkey.js';
export * from './at-rest.js';
export * from './errors.js';
export {
  openPostgresStore,
  POSTGRES_DEFAULTS,
  type PostgresLimits,
  PostgresStore,
  type PostgresStoreOptions,
} from './postgres/index.js';
export { openSqliteStore, SQLITE_DEFAULTS, SqliteStore, type SqliteStoreOptions } from './sqlite/index.js';
export * from './store.js';
export { hashToken } from './token.js';
