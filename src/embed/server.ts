/**
 * A composition root for embedding code: the CPNS Server on the embedded default backend, SQLite in a data
 * directory, as `CpnsServer.start({ dataDir })` did before the server stopped choosing its store (the server role
 * takes any `Store`: src/server/types.ts `ServerOptions.store`). `cpns server` and `cpns demo` use it too.
 *
 * Layout of `dataDir` (mode 0700): `master.key` (unless CPNS_MASTER_KEY is set, src/core/crypto/masterkey.ts) and
 * `cpns.db` (src/store/sqlite).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadOrCreateMasterKey } from '../core/crypto/masterkey.js';
import { CpnsServer, type ServerOptions } from '../server/index.js';
import { openSqliteStore } from '../store/sqlite/index.js';
import type { Store } from '../store/store.js';

export interface SqliteServerOptions extends Omit<ServerOptions, 'store'> {
  /** Data directory of the server: master key and database. */
  dataDir: string;
}

export interface OpenServerStoreOptions {
  /** Where the master key comes from (CPNS_MASTER_KEY first). Defaults to process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Opens (creating on first use) the server's SQLite store in `dataDir`, sealed under its master key. */
export async function openServerStore(dataDir: string, opts: OpenServerStoreOptions = {}): Promise<Store> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const mk = loadOrCreateMasterKey({ dataDir, ...(opts.env ? { env: opts.env } : {}) });
  try {
    return await openSqliteStore({ path: join(dataDir, 'cpns.db'), masterKey: mk.key });
  } finally {
    mk.key.fill(0);
  }
}

/** Starts a CPNS Server on the SQLite store of `opts.dataDir` (which it then owns and closes on close()). */
export async function startServer(opts: SqliteServerOptions): Promise<CpnsServer> {
  const { dataDir, ...rest } = opts;
  const store = await openServerStore(dataDir);
  return CpnsServer.start({ ...rest, store });
}
