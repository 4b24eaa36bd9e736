import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { benchGroup, GROUP_SIZES, type GroupBenchRow } from './group-bench.js';
import { Progress } from './measure.js';
import { benchSd, type SdBenchResult } from './sd-bench.js';

export interface CoreBenchOptions {
  readonly quick?: boolean;
  readonly outDir?: string;
  readonly log?: (line: string) => void;
}

export interface CoreBenchResult {
  readonly date: string;
  readonly node: string;
  readonly cpu: string;
  readonly group: GroupBenchRow[];
  readonly sd: SdBenchResult;
  readonly file: string;
}

/** `cpns bench core`: group-message throughput vs raw AEAD; writes bench/results/core-<date>.json. */
export function runCoreBench(opts: CoreBenchOptions = {}): CoreBenchResult {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const rounds = opts.quick ? 1 : 9;
  const ms = opts.quick ? 100 : 250;
  const progress = new Progress(GROUP_SIZES.length * 2 + 3);
  const group = benchGroup({ rounds, ms, progress });
  const sd = benchSd({ reps: opts.quick ? 5 : 40, progress });

  log('');
  log(
    'Service Group message protect+open vs raw seal+open of the same AEAD in node:crypto (same run, median of interleaved rounds)',
  );
  log(
    'suite              size    pairs/s     MB/s   raw MB/s  raw cipher          ratio  target        raw + message alloc',
  );
  for (const r of group) {
    const ok = r.ratio >= r.target ? 'ok' : 'BELOW';
    log(
      `${r.suite.padEnd(18)} ${String(r.bytes).padStart(5)} ${r.pairsPerSec.toFixed(0).padStart(10)} ${r.mbPerSec
        .toFixed(1)
        .padStart(
          8,
        )} ${r.baselineMbPerSec.toFixed(1).padStart(10)}  ${r.baselineCipher.padEnd(17)} ${r.ratio.toFixed(2).padStart(7)}  >=${r.target} ${ok.padEnd(5)}  ${r.allocCeiling.toFixed(2).padStart(19)}`,
    );
  }

  log('');
  log(
    `Subset-Difference broadcast delivery (GKEK), N = 1024; GKDK per PNE: ${sd.gkdkLabels} labels, ${sd.gkdkBytes} B`,
  );
  log(
    '  r  entries  bound  cover ms  build+sign ms  header B  datagrams  PNE open ms  max PRG calls (<= 10)',
  );
  for (const r of sd.rows) {
    log(
      `${String(r.excluded).padStart(3)} ${String(r.coverEntries).padStart(8)} ${String(r.bound).padStart(6)} ${r.coverMs
        .toFixed(3)
        .padStart(9)} ${r.buildMs.toFixed(2).padStart(14)} ${String(r.headerBytes).padStart(9)} ${String(
        r.datagrams,
      ).padStart(10)} ${r.openMs.toFixed(3).padStart(12)} ${String(r.maxPrgCalls).padStart(14)}`,
    );
  }

  const date = new Date().toISOString();
  const outDir = opts.outDir ?? join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `core-${date.slice(0, 10)}.json`);
  const result = { date, node: process.version, cpu: cpus()[0]?.model ?? 'unknown', group, sd, file };
  writeFileSync(file, `${JSON.stringify({ ...result, file: undefined, rounds, msPerSide: ms }, null, 2)}\n`);
  log(`\nwritten ${file}`);
  return result;
}
