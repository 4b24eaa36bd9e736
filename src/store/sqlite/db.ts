/** Shared context of the SQLite backend: connection, clock, row sealer, transactions and error mapping. */
import type Database from 'better-sqlite3';
import type { RowSealer } from '../at-rest.js';
import { StoreError } from '../errors.js';

export type Db = Database.Database;

export interface Ctx {
  readonly db: Db;
  readonly sealer: RowSealer;
  readonly now: () => number;
}

/** Statements kept per connection (`cacheStatements`); past this many, the cache starts over. */
export const STATEMENT_CACHE_MAX = 512;

/**
 * Makes `db.prepare` return one Statement per SQL text for the life of the connection, instead of compiling
 * the SQL on every call (every store call prepares its statements inline; compiling was about 6% of the server's
 * CPU in `bench rekey` across 100 SGs, docs/benchmarks.md). Safe here because no caller changes a statement's
 * mode (pluck, raw, expand, safeIntegers) or keeps one busy (iterate): a cached statement behaves as a fresh one.
 * SQLite recompiles a statement by itself after a schema change (migrations).
 */
export function cacheStatements(db: Db): void {
  const prepare = db.prepare.bind(db);
  const cache = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let st = cache.get(sql);
    if (!st) {
      st = prepare(sql);
      if (cache.size >= STATEMENT_CACHE_MAX) cache.clear();
      cache.set(sql, st);
    }
    return st;
  }) as Db['prepare'];
}

/** SQLite stores booleans as 0/1. */
export const b2i = (b: boolean): number => (b ? 1 : 0);
export const i2b = (i: unknown): boolean => i === 1 || i === 1n;

/**
 * Runs `fn` in a BEGIN IMMEDIATE transaction: the write lock is taken up front, so two connections (two
 * processes on one file) serialize instead of failing on lock upgrade. Nested calls join the outer one.
 */
export function tx<T>(db: Db, fn: () => T): T {
  if (db.inTransaction) return fn();
  return db.transaction(fn).immediate();
}

/**
 * A write transaction whose commit need not survive an OS crash or power loss, for bookkeeping only: delivery
 * records and the pruning of superseded epochs (docs/store.md "What a crash can lose"). In WAL mode,
 * `synchronous = NORMAL` commits without an fsync: the commit still reaches the OS, so a process crash loses
 * nothing, and the next FULL commit's fsync of the WAL makes it durable too, in order. Never for a key rotation,
 * a membership change or anything else a delivery or a refusal depends on.
 */
export function relaxedTx<T>(db: Db, fn: () => T): T {
  if (db.inTransaction) return fn();
  db.exec('PRAGMA synchronous = NORMAL');
  try {
    return tx(db, fn);
  } finally {
    db.exec('PRAGMA synchronous = FULL');
  }
}

/** A consistent snapshot for multi-statement reads (deferred transaction: no write lock). */
export function readTx<T>(db: Db, fn: () => T): T {
  if (db.inTransaction) return fn();
  return db.transaction(fn).deferred();
}

interface SqliteLikeError {
  code?: unknown;
}

/** Maps driver errors to StoreError; StoreError / CpnsError pass through. */
export function mapError(e: unknown): unknown {
  if (!(e instanceof Error) || e.name !== 'SqliteError') return e;
  const code = String((e as SqliteLikeError).code ?? '');
  if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE')
    return new StoreError('CONFLICT', 'row already exists');
  if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY')
    return new StoreError('NOT_FOUND', 'referenced row does not exist');
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
    return new StoreError('BUSY', 'database is locked by another writer');
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB')
    return new StoreError('STORE_CORRUPT', 'database file is corrupt');
  return e;
}
