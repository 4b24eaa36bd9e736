export * from './at-rest.js';
export * from './errors.js';
export * from './masterkey.js';
export { openSqliteStore, SqliteStore, type SqliteStoreOptions } from './sqlite/index.js';
export * from './store.js';
export { hashToken } from './token.js';
