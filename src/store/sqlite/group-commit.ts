/**
 * Group commit of durable writes (docs/store.md "Group commit of key rotations"). A Group Key rotation must be
 * on disk before its key is delivered, so its commit waits for an fsync of the WAL; at 100 SGs rotating at once
 * that fsync was 38 % of the server's busy time (docs/benchmarks.md). Rotations asked for in the same turn of
 * the event loop are committed together: one BEGIN IMMEDIATE, each rotation in its own savepoint, one COMMIT,
 * one fsync. What each caller sees is what a commit of its own would give:
 * - its promise settles only after the shared COMMIT returned, so no key is handed out before it is durable;
 * - a rotation that fails rolls back to its savepoint, taking back only its own rows, and rejects only its caller;
 * - a COMMIT that fails rejects every caller of the batch (none of their rows is committed).
 * better-sqlite3 is synchronous, so a batch can only gather calls made before the loop turns; the wait is one
 * setImmediate, and at most `maxBatch` run in one transaction (the rest go in the next one).
 */
import { type Ctx, mapError, tx } from './db.js';

interface Job {
  readonly fn: (ctx: Ctx) => unknown;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
}

type Outcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: unknown };

export class GroupCommit {
  readonly #use: () => Ctx;
  readonly #maxBatch: number;
  #queue: Job[] = [];
  #scheduled = false;

  /** `use` returns the context or throws (closed store): checked when the batch runs, not when it is asked. */
  constructor(use: () => Ctx, maxBatch: number) {
    this.#use = use;
    this.#maxBatch = maxBatch;
  }

  run<T>(fn: (ctx: Ctx) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Commits every job still waiting, now (the store's close: a call made before close is not lost). */
  drain(): void {
    while (this.#queue.length > 0) this.#flush();
  }

  #flush(): void {
    if (this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, this.#maxBatch);
    if (this.#queue.length > 0) setImmediate(() => this.#flush());
    else this.#scheduled = false;
    let outcomes: Outcome[];
    try {
      outcomes = commitBatch(this.#use(), batch);
    } catch (e) {
      const error = mapError(e);
      for (const j of batch) j.reject(error);
      return;
    }
    batch.forEach((j, i) => {
      const o = outcomes[i]!;
      if (o.ok) j.resolve(o.value);
      else j.reject(o.error);
    });
  }
}

/** One transaction, one savepoint per job; throws (failing every job) if the transaction itself is lost. */
function commitBatch(ctx: Ctx, batch: readonly Job[]): Outcome[] {
  return tx(ctx.db, () =>
    batch.map((j): Outcome => {
      try {
        // better-sqlite3 runs a transaction function called inside a transaction as a SAVEPOINT.
        return { ok: true, value: ctx.db.transaction(() => j.fn(ctx))() };
      } catch (e) {
        // Some errors (disk full, I/O) make SQLite roll back the whole transaction: the jobs before this one
        // are gone too, so the batch fails as a whole rather than report them committed.
        if (!ctx.db.inTransaction) throw e;
        return { ok: false, error: mapError(e) };
      }
    }),
  );
}
