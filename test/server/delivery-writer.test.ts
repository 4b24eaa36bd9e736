/** Batched delivery records (src/server/delivery-writer.ts): size limit, delay, flush, failures. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type AckRow, DeliveryWriter, writeAcks } from '../../src/server/delivery-writer.js';
import type { DeliveryAck, GatewayAck, Store } from '../../src/store/store.js';

const row = (i: number, sgId = 'sg-1'): DeliveryAck => ({
  sgId,
  epoch: 1,
  pneId: `p${i}`,
  gwId: 'gw',
  method: 'unicast',
});
const rows = (n: number, sgId?: string) => Array.from({ length: n }, (_, i) => row(i, sgId));

function writer(opts: { maxBatch: number; delayMs: number }, fail?: (b: readonly AckRow[]) => boolean) {
  const batches: AckRow[][] = [];
  const failures: { code: unknown; sgId: string | undefined; rows: number }[] = [];
  const w = new DeliveryWriter(
    async (b) => {
      if (fail?.(b)) throw Object.assign(new Error('no'), { code: 'NOT_FOUND' });
      batches.push([...b]);
    },
    (e, sgId, n) => failures.push({ code: (e as { code?: unknown }).code, sgId, rows: n }),
    opts,
  );
  return { w, batches, failures };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('DeliveryWriter', () => {
  it('exactly the size limit: one batch, written at once (no wait for the delay)', async () => {
    vi.useFakeTimers();
    const { w, batches } = writer({ maxBatch: 512, delayMs: 10_000 });
    w.add(rows(500));
    w.add(rows(12));
    expect(w.queued).toBe(0);
    await vi.advanceTimersByTimeAsync(0);
    expect(batches.map((b) => b.length)).toEqual([512]);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(batches.length).toBe(1); // nothing left for the timer
  });

  it('one past the limit: two batches, the second after the delay', async () => {
    vi.useFakeTimers();
    const { w, batches } = writer({ maxBatch: 512, delayMs: 10 });
    w.add(rows(513));
    expect(w.queued).toBe(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(batches.map((b) => b.length)).toEqual([512]);
    await vi.advanceTimersByTimeAsync(9);
    expect(batches.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(batches.map((b) => b.length)).toEqual([512, 1]);
    expect(batches.flat().map((r) => (r as DeliveryAck).pneId)).toEqual(rows(513).map((r) => r.pneId)); // in order
  });

  it('below the limit: one batch after the delay, counted from the first row', async () => {
    vi.useFakeTimers();
    const { w, batches } = writer({ maxBatch: 512, delayMs: 10 });
    w.add(rows(3));
    await vi.advanceTimersByTimeAsync(6);
    w.add([row(9)]);
    await vi.advanceTimersByTimeAsync(3);
    expect(batches.length).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(batches.map((b) => b.length)).toEqual([4]);
  });

  it('flush (close, status read) writes what is queued and waits for it', async () => {
    const { w, batches } = writer({ maxBatch: 512, delayMs: 60_000 });
    w.add(rows(5));
    await w.flush();
    expect(batches.map((b) => b.length)).toEqual([5]);
    await w.flush(); // nothing queued: nothing written
    expect(batches.length).toBe(1);
  });

  it('a failed batch is reported with its code, never thrown; other SGs of a mixed batch are still written', async () => {
    const { w, batches, failures } = writer({ maxBatch: 512, delayMs: 60_000 }, (b) =>
      b.some((r) => r.sgId === 'gone'),
    );
    w.add([...rows(2, 'sg-1'), ...rows(3, 'gone'), ...rows(1, 'sg-2')]);
    await expect(w.flush()).resolves.toBeUndefined();
    expect(batches.map((b) => [b[0]?.sgId, b.length])).toEqual([
      ['sg-1', 2],
      ['sg-2', 1],
    ]);
    expect(failures).toEqual([{ code: 'NOT_FOUND', sgId: 'gone', rows: 3 }]);
    // The writer goes on.
    w.add(rows(1, 'sg-1'));
    await w.flush();
    expect(batches.length).toBe(3);
  });

  it('a reporter that throws does not break the chain', async () => {
    let n = 0;
    const w = new DeliveryWriter(
      async () => {
        if (n++ === 0) throw new Error('first');
      },
      () => {
        throw new Error('logger broke');
      },
      { maxBatch: 1, delayMs: 0 },
    );
    w.add(rows(2));
    await expect(w.flush()).resolves.toBeUndefined();
    expect(n).toBe(2);
  });

  it('a batch goes to the store as one recordDeliveries (PNE acks) and one recordGatewayAcks (GW acks)', async () => {
    const calls: [string, number][] = [];
    const store = {
      recordDeliveries: async (b: readonly DeliveryAck[]) => void calls.push(['pne', b.length]),
      recordGatewayAcks: async (b: readonly GatewayAck[]) => void calls.push(['gw', b.length]),
    } as unknown as Store;
    const gw = (i: number): GatewayAck => ({ sgId: 'sg-1', epoch: 1, gwId: `gw${i}` });
    await writeAcks(store, [gw(1), ...rows(3), gw(2)]);
    await writeAcks(store, rows(2));
    await writeAcks(store, [gw(3)]);
    expect(calls).toEqual([
      ['pne', 3],
      ['gw', 2],
      ['pne', 2],
      ['gw', 1],
    ]);
  });

  it('refuses nonsense limits', () => {
    expect(() => writer({ maxBatch: 0, delayMs: 10 })).toThrow(RangeError);
    expect(() => writer({ maxBatch: 1.5, delayMs: 10 })).toThrow(RangeError);
    expect(() => writer({ maxBatch: 1, delayMs: -1 })).toThrow(RangeError);
  });
});
