/**
 * Delivery bookkeeping in batches (issue #11 §1): acks accepted under rules K1/K2 — PNEs' (`DeliveryAck`) and
 * GWs' own (`GatewayAck`) — are queued and written with one `store.recordDeliveries(batch)` (and, for the GWs' rows
 * of the batch, one `recordGatewayAcks`) per batch — when `maxBatch` rows are queued, else `delayMs` after the first
 * queued row, and at close — instead of one store transaction (one fsync on SQLite) per report and per GW ack.
 * Batches are written one at a time, in order; rows that arrive while one is written form the next.
 *
 * Durability: unlike a key rotation (durable before any delivery), a queued row is lost if the process dies before
 * its batch commits (docs/store.md "Delivery tracking"). A failed batch is logged (code, SG, row count: the rows
 * hold ids only, never key material) and does not stop the server; a batch that spans several SGs is retried SG by
 * SG first, so one SG deleted in between does not lose the others' rows.
 */
import type { DeliveryAck, GatewayAck, Store } from '../store/store.js';

/** One accepted ack: a PNE's (it names the PNE) or a GW's own. */
export type AckRow = DeliveryAck | GatewayAck;

const isPneAck = (r: AckRow): r is DeliveryAck => 'pneId' in r;

/** Writes a batch: its PNE acks with one recordDeliveries, its GW acks with one recordGatewayAcks. */
export async function writeAcks(store: Store, batch: readonly AckRow[]): Promise<void> {
  const pne = batch.filter(isPneAck);
  const gw = batch.filter((r): r is GatewayAck => !isPneAck(r));
  if (pne.length > 0) await store.recordDeliveries(pne);
  if (gw.length > 0) await store.recordGatewayAcks(gw);
}

export interface DeliveryWriterOptions {
  /** A batch is written as soon as this many rows are queued. */
  readonly maxBatch: number;
  /** Otherwise, this long (ms) after the first row of a batch was queued. */
  readonly delayMs: number;
}

export class DeliveryWriter {
  readonly #write: (batch: readonly AckRow[]) => Promise<void>;
  readonly #failed: (err: unknown, sgId: string | undefined, rows: number) => void;
  readonly #opts: DeliveryWriterOptions;
  #queue: AckRow[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** The batches cut so far, written one after the other: resolves when the last of them is settled. */
  #tail: Promise<void> = Promise.resolve();

  constructor(
    write: (batch: readonly AckRow[]) => Promise<void>,
    failed: (err: unknown, sgId: string | undefined, rows: number) => void,
    opts: DeliveryWriterOptions,
  ) {
    if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1) throw new RangeError('maxBatch');
    if (!Number.isFinite(opts.delayMs) || opts.delayMs < 0) throw new RangeError('delayMs');
    this.#write = write;
    this.#failed = failed;
    this.#opts = opts;
  }

  /** Rows queued and not yet handed to the store. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Queues rows; a full batch goes to the store at once, the rest within `delayMs`. */
  add(rows: readonly AckRow[]): void {
    for (const r of rows) {
      this.#queue.push(r);
      if (this.#queue.length >= this.#opts.maxBatch) this.#cut();
    }
    if (this.#queue.length > 0 && this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#cut();
      }, this.#opts.delayMs);
      this.#timer.unref();
    }
  }

  /** Writes everything queued now; resolves when it (and every earlier batch) is settled. Never rejects. */
  flush(): Promise<void> {
    this.#cut();
    return this.#tail;
  }

  /** The queue so far becomes one batch (at most `maxBatch` rows each), chained after the batches before it. */
  #cut(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#opts.maxBatch);
      // (A failure is reported by #writeBatch; the catch only keeps a throwing reporter from breaking the chain.)
      this.#tail = this.#tail.then(() => this.#writeBatch(batch)).catch(() => {});
    }
  }

  async #writeBatch(batch: readonly AckRow[]): Promise<void> {
    try {
      await this.#write(batch);
      return;
    } catch (e) {
      const bySg = new Map<string, AckRow[]>();
      for (const r of batch) {
        const l = bySg.get(r.sgId);
        if (l) l.push(r);
        else bySg.set(r.sgId, [r]);
      }
      if (bySg.size === 1) {
        this.#failed(e, batch[0]?.sgId, batch.length);
        return;
      }
      for (const [sgId, rows] of bySg) {
        try {
          await this.#write(rows);
        } catch (e2) {
          this.#failed(e2, sgId, rows.length);
        }
      }
    }
  }
}
