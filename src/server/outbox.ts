/**
 * The outbox publisher (docs/cluster.md, docs/store.md "Outbox"): committed changes that the other server nodes
 * must hear of wait in the store's outbox; this drains them to the cluster event bus in order, each published
 * with its outbox seq as the idempotency id, and deletes a row only once the bus has stored it. A crash between
 * publish and delete re-publishes the row, and the bus delivers it once (its duplicate window). Several nodes
 * draining one outbox at once only cause such duplicates. One drain at a time per publisher.
 */
import type { EventBus } from '../cluster/bus.js';
import { type ClusterEvent, validateEvent } from '../cluster/events.js';
import { isCodedError } from '../core/errors.js';
import type { Logger } from '../protocol/control.js';
import { codeOf } from '../protocol/control.js';
import type { OutboxEntry, Store } from '../store/store.js';

export interface OutboxPublisherOptions {
  /** How often the outbox is drained even without a kick (ms): rows left by a crash go out. Default 1000. */
  readonly intervalMs?: number;
  /** Rows per store read. Default 100 (1..1000). */
  readonly batch?: number;
  /**
   * Names this database's outbox in the idempotency ids (`outbox-<storeId>-<seq>`): seqs repeat across databases
   * (or a database recreated) on one NATS stream, and a repeated id within the duplicate window would be dropped
   * as a duplicate. Default: none (`outbox-<seq>`).
   */
  readonly storeId?: string;
}

export const OUTBOX_DEFAULTS = Object.freeze({ intervalMs: 1000, batch: 100 });

/**
 * The cluster event of an outbox row, validated as any received event would be; undefined if it is not one. Its
 * `node` is the node that committed the change (the row's `node`), not the one publishing it: every node drains
 * the shared outbox, and a row left by a node killed between commit and publish goes out from another node.
 * Rows without one (written before this was recorded) name the publisher.
 */
export function eventOf(row: OutboxEntry, publisher: string): ClusterEvent | undefined {
  const committer = typeof row.body.node === 'string' ? row.body.node : publisher;
  try {
    return validateEvent({ v: 1, ...row.body, type: row.kind, at: row.at, node: committer });
  } catch {
    return undefined;
  }
}

export class OutboxPublisher {
  readonly #store: Store;
  readonly #bus: EventBus;
  readonly #node: string;
  readonly #log: Logger;
  readonly #batch: number;
  readonly #idPrefix: string;
  readonly #timer: NodeJS.Timeout;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(store: Store, bus: EventBus, node: string, log: Logger, opts: OutboxPublisherOptions = {}) {
    this.#store = store;
    this.#bus = bus;
    this.#node = node;
    this.#log = log;
    this.#batch = opts.batch ?? OUTBOX_DEFAULTS.batch;
    this.#idPrefix = opts.storeId === undefined ? 'outbox-' : `outbox-${opts.storeId}-`;
    this.#timer = setInterval(() => this.kick(), opts.intervalMs ?? OUTBOX_DEFAULTS.intervalMs);
    this.#timer.unref();
  }

  /** Drain now (after a commit); a kick during a drain runs one more drain after it. Resolves when idle. */
  kick(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        while ((await this.#drainOnce()) === this.#batch && !this.#closed) {}
      } catch (e) {
        // The store or the bus is away: the rows stay, the next kick or tick retries.
        // The error's own code in the log (UNAVAILABLE when the store is away), not its wire mapping.
        this.#log.warn({ code: isCodedError(e) ? e.code : codeOf(e) }, 'outbox not drained; retrying');
        return;
      }
    } while (this.#again && !this.#closed);
  }

  /** Publishes one batch in order and deletes what the bus stored; returns how many rows it read. */
  async #drainOnce(): Promise<number> {
    const rows = await this.#store.listOutbox(this.#batch);
    const done: number[] = [];
    try {
      for (const row of rows) {
        if (this.#closed) break;
        const ev = eventOf(row, this.#node);
        if (ev === undefined) {
          // Not an event this code knows (a newer node's row?): never block the rows behind it.
          this.#log.error({ seq: row.seq, kind: row.kind }, 'outbox row is not a cluster event; dropped');
        } else {
          await this.#bus.publish(ev, `${this.#idPrefix}${row.seq}`);
        }
        done.push(row.seq);
      }
    } finally {
      if (done.length > 0) await this.#store.deleteOutbox(done);
    }
    return rows.length;
  }

  /** Stops the timer and waits for a drain in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#running;
  }
}
