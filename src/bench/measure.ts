import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A full garbage collection between measurements, so one side's GC debt is not paid inside the other side's
 * time window (the subject and the baseline allocate differently).
 */
setFlagsFromString('--expose_gc');
const collect = runInNewContext('gc') as () => void;

/**
 * Time-boxed throughput measurement. Runs `op` in batches until `ms` elapsed and returns ops/s.
 * Benchmarks compare against a baseline measured in the same run, interleaved (A B A B ...), and report
 * the median ratio, because these machines are shared and noisy.
 */
export function opsPerSecond(op: () => void, ms: number): number {
  // warm-up so JIT and OpenSSL contexts are settled
  for (let i = 0; i < 200; i++) op();
  collect();
  let n = 0;
  let batch = 64;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < batch; i++) op();
    n += batch;
    elapsed = performance.now() - start;
    if (elapsed < ms / 10) batch *= 2;
  }
  return (n * 1000) / elapsed;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The p-quantile of `xs` (nearest rank: the smallest value with at least p of the values at or below it); NaN if empty. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(s.length * p) - 1))] ?? Number.NaN;
}

export interface Comparison {
  readonly subject: number;
  readonly baseline: number;
  readonly ratio: number;
}

/** Interleaved rounds of baseline and subject; median of per-round ratios. */
export function compare(
  subject: () => void,
  baseline: () => void,
  rounds: number,
  msPerSide: number,
): Comparison {
  const s: number[] = [];
  const b: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const bi = opsPerSecond(baseline, msPerSide);
    const si = opsPerSecond(subject, msPerSide);
    b.push(bi);
    s.push(si);
    r.push(si / bi);
  }
  return { subject: median(s), baseline: median(b), ratio: median(r) };
}

/** Minimal progress bar on stderr (no dependency); silent when stderr is not a TTY unless forced. */
export class Progress {
  private done = 0;
  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {}

  tick(label: string): void {
    this.done++;
    const width = 30;
    const filled = Math.round((this.done / this.total) * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.done}/${this.total} ${label}`;
    if (this.out.isTTY) this.out.write(`\r${bar.padEnd(90)}`);
    else this.out.write(`${bar}\n`);
    if (this.done === this.total && this.out.isTTY) this.out.write('\n');
  }
}

/** Runs `f` over `items` with at most `width` calls in flight (setting up many GWs and PNEs without a stampede). */
export async function pool<T>(
  items: T[],
  width: number,
  f: (t: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await f(items[i]!, i);
      }
    }),
  );
}
