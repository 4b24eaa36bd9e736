import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  buildBroadcast,
  CountingPrg,
  computeCover,
  openBroadcast,
  SdTree,
  serializeGkdk,
} from '../core/broadcast/index.js';
import { ed25519Generate } from '../core/crypto/ed25519.js';
import { median, type Progress } from './measure.js';

export interface SdBenchRow {
  readonly capacity: number;
  readonly excluded: number;
  readonly coverEntries: number;
  readonly bound: number;
  readonly coverMs: number;
  readonly buildMs: number;
  readonly headerBytes: number;
  readonly datagrams: number;
  readonly openMs: number;
  readonly maxPrgCalls: number;
}

export interface SdBenchResult {
  readonly gkdkLabels: number;
  readonly gkdkBytes: number;
  readonly rows: SdBenchRow[];
}

function timeMs(fn: () => void, reps: number): number {
  const xs: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    fn();
    xs.push(performance.now() - t);
  }
  return median(xs);
}

/**
 * Subset-Difference broadcast delivery at N = 1024 with r random excluded PNEs (docs/design.md §6: header ≤ 2r−1
 * wrapped keys; a PNE needs O(log N) PRG steps). Header bytes = all datagrams of one delivery.
 */
export function benchSd(opts: { reps: number; progress?: Progress }): SdBenchResult {
  const capacity = 1024;
  const gw = ed25519Generate();
  const tree = SdTree.create({ gwId: randomBytes(16), capacity });
  const ids = Array.from({ length: capacity }, (_, i) => `pne-${i}`);
  for (const id of ids) tree.assignLeaf(id);
  const gkdk = tree.gkdkFor(ids[0]!);
  const rows: SdBenchRow[] = [];
  for (const r of [1, 16, 256]) {
    const excluded = new Set<number>();
    while (excluded.size < r) excluded.add(1 + Math.floor(Math.random() * (capacity - 1))); // keep leaf 0 a member
    const memberIds = ids.filter((_, i) => !excluded.has(i));
    const leaves = ids.map((_, i) => i).filter((i) => !excluded.has(i));
    let cover = computeCover(capacity, leaves);
    const coverMs = timeMs(() => {
      cover = computeCover(capacity, leaves);
    }, opts.reps);
    const sgId = randomBytes(16);
    const groupKey = randomBytes(32);
    let datagrams: Buffer[] = [];
    const buildMs = timeMs(
      () => {
        datagrams = buildBroadcast({
          gwSigningKey: gw.privateKey,
          tree,
          sgId,
          epoch: 7,
          groupKey,
          memberPneIds: memberIds,
        });
      },
      Math.max(3, opts.reps >> 2),
    );
    // PNE side: every member opens; report median time and the worst PRG call count seen
    let maxPrgCalls = 0;
    const sample = memberIds.slice(0, 64);
    const openTimes: number[] = [];
    for (const id of sample) {
      const g = tree.gkdkFor(id);
      const prg = new CountingPrg();
      const t = performance.now();
      let opened = false;
      for (const d of datagrams) {
        try {
          openBroadcast(d, { gkdk: g, gwPublicKey: gw.publicKey, prg });
          opened = true;
          break;
        } catch {
          // NOT_IN_COVER in this fragment: try the next datagram
        }
      }
      openTimes.push(performance.now() - t);
      if (!opened) throw new Error('benchmark invariant: a member could not open the broadcast');
      maxPrgCalls = Math.max(maxPrgCalls, prg.calls);
    }
    rows.push({
      capacity,
      excluded: r,
      coverEntries: cover.length,
      bound: Math.min(2 * r - 1, capacity - r, capacity / 2),
      coverMs,
      buildMs,
      headerBytes: datagrams.reduce((n, d) => n + d.length, 0),
      datagrams: datagrams.length,
      openMs: median(openTimes),
      maxPrgCalls,
    });
    opts.progress?.tick(`SD N=${capacity} r=${r}`);
  }
  return { gkdkLabels: gkdk.labels.length / 16 + 1, gkdkBytes: serializeGkdk(gkdk).length, rows };
}
