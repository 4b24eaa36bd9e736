import { performance } from 'node:perf_hooks';
import type { startServer } from '../embed/index.js';

type Server = Awaited<ReturnType<typeof startServer>>;

interface StatusView {
  members: { lag: number | null }[];
}

/**
 * When the server's delivery tracking shows an update delivered (docs/benchmarks.md "tracked"): the server says
 * so itself with one 'key.delivered' event per (SG, epoch), at the ack that leaves no member online here without
 * the epoch; one `admin.groupStatus` then confirms it from the store (it writes the batched acks first). No status
 * polling while the acks come in: an O(M) query per poll competed with the acks it waited for, so the bench
 * slowed down what it measured (tracked was 1.6-1.8x all acked at 1,000-5,000 unicast members).
 *
 * Without the event (one could be missed only by a member the server does not count as online here), it asks
 * again at most every `fallbackMs`.
 */
export class DeliveredWatch {
  readonly #server: Server;
  /**
   * Per SG: the highest epoch reported delivered, and when its event came, on the bench's cross-process clock
   * (performance.timeOrigin + performance.now(), as the workers' ack times).
   */
  readonly #delivered = new Map<string, { epoch: number; at: number }>();
  /** Per SG: who waits for its next 'key.delivered' or 'key.ack' event. */
  readonly #wakers = new Map<string, Set<() => void>>();
  readonly #fallbackMs: number;
  readonly #onChange = (e: { kind: string; sgId?: string; epoch?: number }) => {
    if (e.sgId === undefined) return;
    if (e.kind === 'key.delivered' && e.epoch !== undefined) {
      if (e.epoch > (this.#delivered.get(e.sgId)?.epoch ?? 0))
        this.#delivered.set(e.sgId, { epoch: e.epoch, at: performance.timeOrigin + performance.now() });
    } else if (e.kind !== 'key.ack') return;
    for (const w of this.#wakers.get(e.sgId) ?? []) w();
  };

  constructor(server: Server, fallbackMs = 1000) {
    this.#server = server;
    this.#fallbackMs = fallbackMs;
    server.events.on('change', this.#onChange);
  }

  /**
   * When the server's 'key.delivered' event for (sgId, epoch) came: the moment its in-memory tracking counted the
   * last ack, before the confirming status query; undefined if that epoch's event has not come (yet).
   */
  deliveredAt(sgId: string, epoch: number): number | undefined {
    const d = this.#delivered.get(sgId);
    return d?.epoch === epoch ? d.at : undefined;
  }

  close(): void {
    this.#server.events.off('change', this.#onChange);
  }

  /** Resolves once `admin.groupStatus` shows every member of `sgId` acked `epoch` (its current one). */
  async tracked(sgId: string, epoch: number): Promise<void> {
    const wakers = this.#wakers.get(sgId) ?? new Set<() => void>();
    this.#wakers.set(sgId, wakers);
    let wake: (() => void) | undefined;
    const onEvent = () => wake?.();
    wakers.add(onEvent);
    try {
      let ask = false;
      for (;;) {
        if (ask || (this.#delivered.get(sgId)?.epoch ?? 0) >= epoch) {
          const q0 = performance.now();
          const st = (await this.#server.admin.groupStatus(sgId)) as unknown as StatusView;
          if (st.members.every((m) => m.lag === 0)) return;
          // not yet in the store's view: the next question no sooner than this one took
          await new Promise((res) => setTimeout(res, Math.max(5, performance.now() - q0)));
        }
        // ask on the event, or after fallbackMs without any event of this SG
        ask = await new Promise<boolean>((res) => {
          const t = setTimeout(() => res(true), this.#fallbackMs);
          wake = () => {
            clearTimeout(t);
            res(false);
          };
        });
        wake = undefined;
      }
    } finally {
      wakers.delete(onEvent);
      if (wakers.size === 0) this.#wakers.delete(sgId);
    }
  }
}
