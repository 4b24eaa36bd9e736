/**
 * A composition root for embedding code: the CPNS Server on the embedded default backend, SQLite in a data
 * directory, as `CpnsServer.start({ dataDir })` did before the server stopped choosing its store (the server role
 * takes any `Store`: src/server/types.ts `ServerOptions.store`). `cpns server` and `cpns demo` use it too.
 *
 * Layout of `dataDir` (mode 0700): `master.key` (unless CPNS_MASTER_KEY is set, src/core/crypto/masterkey.ts) and
 * `cpns.db` (src/store/sqlite). With a `storeUrl` (`postgres://…`) the state lives in PostgreSQL instead
 * (src/store/postgres, docs/store.md), sealed under the same master key: every node of a deployment needs the
 * same key (CPNS_MASTER_KEY, or the same master.key file).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadOrCreateMasterKey } from '../core/crypto/masterkey.js';
import { CpnsError, ErrorCode } from '../core/errors.js';
import { CpnsServer, type ServerOptions } from '../server/index.js';
import { openPostgresStore } from '../store/postgres/index.js';
import { openSqliteStore } from '../store/sqlite/index.js';
import type { Store } from '../store/store.js';

export interface SqliteServerOptions extends Omit<ServerOptions, 'store'> {
  /** Data directory of the server: master key and (without `storeUrl`) the SQLite database. */
  dataDir: string;
  /** `postgres://…` / `postgresql://…`: the state in PostgreSQL instead of SQLite in `dataDir`. */
  storeUrl?: string;
  /** PostgreSQL schema holding the tables (default: the connection's, normally `public`). */
  storeSchema?: string;
}

export interface OpenServerStoreOptions {
  /** Where the master key comes from (CPNS_MASTER_KEY first). Defaults to process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** `postgres://…` / `postgresql://…`: open that PostgreSQL database instead of SQLite in the data directory. */
  readonly storeUrl?: string;
  /** PostgreSQL schema (tests, or several deployments in one database). */
  readonly storeSchema?: string;
}

/** True for the URLs that select the PostgreSQL backend. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/**
 * Opens (creating on first use) the server's store, sealed under its master key: SQLite in `dataDir`, or the
 * PostgreSQL database of `storeUrl`. Anything else as `storeUrl` is a usage error (INVALID_ARGUMENT).
 */
export async function openServerStore(dataDir: string, opts: OpenServerStoreOptions = {}): Promise<Store> {
  if (opts.storeUrl !== undefined && !isPostgresUrl(opts.storeUrl)) {
    throw new CpnsError(
      ErrorCode.INVALID_ARGUMENT,
      'store must be a postgres:// URL (or omitted for SQLite)',
      'store',
    );
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const mk = loadOrCreateMasterKey({ dataDir, ...(opts.env ? { env: opts.env } : {}) });
  try {
    if (opts.storeUrl !== undefined) {
      return await openPostgresStore({
        url: opts.storeUrl,
        masterKey: mk.key,
        ...(opts.storeSchema ? { schema: opts.storeSchema } : {}),
      });
    }
    return await openSqliteStore({ path: join(dataDir, 'cpns.db'), masterKey: mk.key });
  } finally {
    mk.key.fill(0);
  }
}

/** Starts a CPNS Server on the store of `opts` (which it then owns and closes on close()). */
export async function startServer(opts: SqliteServerOptions): Promise<CpnsServer> {
  const { dataDir, storeUrl, storeSchema, ...rest } = opts;
  const store = await openServerStore(dataDir, {
    ...(storeUrl !== undefined ? { storeUrl } : {}),
    ...(storeSchema !== undefined ? { storeSchema } : {}),
  });
  return CpnsServer.start({ ...rest, store });
}
