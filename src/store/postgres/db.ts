/**
 * Shared context of the PostgreSQL backend: pool, clock, row sealer, limits, transactions and error mapping.
 * Every store method is one transaction (or one statement, which PostgreSQL runs as one).
 */
import type pg from 'pg';
import type { RowSealer } from '../at-rest.js';
import { StoreError } from '../errors.js';

export type Pool = pg.Pool;
export type Client = pg.PoolClient;
/** Anything that runs a query: the pool (one statement, autocommit) or a client inside a transaction. */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

/**
 * Every limit and timeout of the PostgreSQL backend, with its default. Each is an option of
 * openPostgresStore (docs/store.md).
 */
export const POSTGRES_DEFAULTS = {
  /** Connections in this node's pool (`Pool.max`). */
  poolMax: 10,
  /** Give up opening a connection (or waiting for a free one in the pool) after this long: UNAVAILABLE. */
  connectTimeoutMs: 5_000,
  /** Close a pooled connection idle for this long (`Pool.idleTimeoutMillis`). */
  idleTimeoutMs: 30_000,
  /** Server-side `statement_timeout`: a statement running longer is cancelled (BUSY). */
  statementTimeoutMs: 30_000,
  /** Server-side `lock_timeout`: waiting longer for a row lock (another node rotating the group) is BUSY. */
  lockTimeoutMs: 5_000,
  /** Server-side `idle_in_transaction_session_timeout`: a stuck transaction releases its locks. */
  idleInTransactionTimeoutMs: 60_000,
  /** Retries of a transaction after a serialization failure, deadlock or lock timeout, before BUSY. */
  txRetries: 3,
} as const;

export type PostgresLimits = { readonly [K in keyof typeof POSTGRES_DEFAULTS]: number };

export interface Ctx {
  readonly pool: Pool;
  readonly sealer: RowSealer;
  readonly now: () => number;
  readonly limits: PostgresLimits;
}

/** One row or undefined. */
export async function one<T>(
  q: Queryable,
  sql: string,
  args: readonly unknown[] = [],
): Promise<T | undefined> {
  const r = await q.query(sql, args as unknown[]);
  return r.rows[0] as T | undefined;
}

export async function all<T>(q: Queryable, sql: string, args: readonly unknown[] = []): Promise<T[]> {
  const r = await q.query(sql, args as unknown[]);
  return r.rows as T[];
}

/**
 * This transaction's commit need not survive a database crash, for bookkeeping only: delivery records and the
 * pruning of superseded epochs (docs/store.md "What a crash can lose"). `synchronous_commit = off` returns before
 * the WAL is flushed; a later synchronous commit flushes it, in order. Never for a key rotation, a membership
 * change or anything else a delivery or a refusal depends on.
 */
export async function relaxCommit(c: Queryable): Promise<void> {
  await c.query('SET LOCAL synchronous_commit TO OFF');
}

/** Number of rows an INSERT / UPDATE / DELETE touched. */
export async function run(q: Queryable, sql: string, args: readonly unknown[] = []): Promise<number> {
  const r = await q.query(sql, args as unknown[]);
  return r.rowCount ?? 0;
}

/** SQLSTATEs after which the whole transaction may simply be run again (serialization failure, deadlock). */
const RETRYABLE = new Set(['40001', '40P01']);

function sqlState(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * Runs `fn` in one transaction on one pooled connection (READ COMMITTED; the writers that must be single take
 * row locks with SELECT ... FOR UPDATE). Rolled back on any error; retried on serialization failure and
 * deadlock up to `txRetries` times, then BUSY. A lock timeout (lockTimeoutMs) is BUSY at once: it already waited.
 * A connection found dead at BEGIN is replaced (same budget); one lost later is UNAVAILABLE (never re-run: the
 * COMMIT may have happened).
 */
export async function tx<T>(
  ctx: Pick<Ctx, 'pool' | 'limits'>,
  fn: (c: Client) => Promise<T>,
  mode = 'BEGIN',
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const c = await ctx.pool.connect();
    // node-postgres emits 'error' on a checked-out client whose connection ends (the pool listens only while
    // it is idle): unheard, a database gone mid-transaction would be an uncaught exception. The query in flight
    // fails as well, and that is what is reported.
    c.on('error', ignoreError);
    let broken = false;
    let begun = false;
    try {
      await c.query(mode);
      begun = true;
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      broken = isConnectionError(e);
      if (!broken) {
        try {
          await c.query('ROLLBACK');
        } catch {
          broken = true;
        }
      }
      if (RETRYABLE.has(sqlState(e) ?? '') && attempt < ctx.limits.txRetries) continue;
      // a pooled connection the server closed while idle (restart, failover) fails at BEGIN, before anything
      // ran: take another one
      if (broken && !begun && attempt < ctx.limits.txRetries) continue;
      throw e;
    } finally {
      // a broken connection is destroyed, not returned to the pool
      c.off('error', ignoreError);
      c.release(broken ? true : undefined);
    }
  }
}

const ignoreError = (): void => {};

/** A consistent snapshot for multi-statement reads. */
export function readTx<T>(ctx: Pick<Ctx, 'pool' | 'limits'>, fn: (c: Client) => Promise<T>): Promise<T> {
  return tx(ctx, fn, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
}

const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/** Connection-level failures: the server cannot be reached, or went away. */
export function isConnectionError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_ERRNOS.has(code)) return true;
  const state = sqlState(e);
  if (state !== undefined) {
    // 08: connection exception; 57P01..03: admin/crash shutdown, cannot connect now; 53300: too many connections
    return state.startsWith('08') || ['57P01', '57P02', '57P03', '53300'].includes(state);
  }
  // node-postgres' own messages (no code): a broken socket, the connect timeout, a released client
  return /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed|Cannot use a pool after calling end)/.test(
    e.message,
  );
}

/**
 * Maps driver errors to StoreError with fixed messages (never SQL text or values); StoreError / CpnsError pass
 * through. An unknown database error becomes a plain Error naming only its SQLSTATE.
 */
export function mapError(e: unknown): unknown {
  if (!(e instanceof Error) || e.name === 'StoreError' || e.name === 'CpnsError') return e;
  if (isConnectionError(e)) return new StoreError('UNAVAILABLE', 'database is unavailable');
  const state = sqlState(e);
  if (state === undefined) return e;
  if (state === '23505') return new StoreError('CONFLICT', 'row already exists');
  if (state === '23503') return new StoreError('NOT_FOUND', 'referenced row does not exist');
  if (RETRYABLE.has(state) || state === '55P03')
    return new StoreError('BUSY', 'database is locked by another writer');
  if (state === '57014') return new StoreError('BUSY', 'statement timed out');
  if (state === 'XX001' || state === 'XX002') return new StoreError('STORE_CORRUPT', 'database is corrupt');
  if (state.startsWith('28') || state === '3D000')
    return new StoreError('UNAVAILABLE', 'database is unavailable');
  return new Error(`database error (SQLSTATE ${state})`);
}
