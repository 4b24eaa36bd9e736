import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Suite } from '../core/crypto/aead.js';
import { GroupKeyRing, GroupReceiver, GroupSender } from '../core/group/index.js';
import { type Comparison, compare, type Progress } from './measure.js';

export interface GroupBenchRow extends Comparison {
  readonly suite: 'aes-256-gcm' | 'chacha20-poly1305';
  readonly bytes: number;
  /** protect+open pairs per second (subject) and MB/s of payload. */
  readonly pairsPerSec: number;
  readonly mbPerSec: number;
  readonly baselineMbPerSec: number;
  readonly target: number;
}

export const GROUP_SIZES = [64, 1024, 16384] as const;

/**
 * protect+unprotect of a Service Group message versus raw AES-256-GCM seal+open of node:crypto on the same
 * payload (one key, incrementing 12-byte nonce, 56-byte AAD like our header), measured in the same run.
 * Targets (docs/design.md §6): >= 0.8x raw at 1 KiB and 16 KiB, >= 0.5x at 64 B.
 */
export function benchGroup(opts: { rounds: number; ms: number; progress?: Progress }): GroupBenchRow[] {
  const rows: GroupBenchRow[] = [];
  const sg = randomBytes(16);
  for (const suite of [Suite.AES_256_GCM, Suite.CHACHA20_POLY1305]) {
    const ring = new GroupKeyRing();
    ring.install(sg, 1, randomBytes(32), suite);
    const gk = ring.current(sg)!;
    const sender = new GroupSender({ senderId: randomBytes(16) });
    const receiver = new GroupReceiver({ keyRing: ring, replayWindow: 1024 });
    for (const bytes of GROUP_SIZES) {
      const pt = randomBytes(bytes);
      const subject = () => {
        receiver.open(sender.protect(sg, gk, pt));
      };
      // Baseline (docs/benchmarks.md): the leanest raw use of AES-256-GCM of node:crypto on the same payload, for both
      // suites (no concat, no framing, no key derivation).
      const raw = 'aes-256-gcm';
      const key = randomBytes(32);
      const aad = randomBytes(56);
      const nonce = Buffer.alloc(12);
      let ctr = 0;
      const baseline = () => {
        nonce.writeUInt32BE(++ctr >>> 0, 8);
        const c = createCipheriv(raw, key, nonce, { authTagLength: 16 });
        c.setAAD(aad);
        const ct = c.update(pt);
        c.final();
        const tag = c.getAuthTag();
        const d = createDecipheriv(raw, key, nonce, { authTagLength: 16 });
        d.setAuthTag(tag);
        d.setAAD(aad);
        d.update(ct);
        d.final();
      };
      const cmp = compare(subject, baseline, opts.rounds, opts.ms);
      const name = suite === Suite.AES_256_GCM ? 'aes-256-gcm' : 'chacha20-poly1305';
      rows.push({
        ...cmp,
        suite: name,
        bytes,
        pairsPerSec: cmp.subject,
        mbPerSec: (cmp.subject * bytes) / 1e6,
        baselineMbPerSec: (cmp.baseline * bytes) / 1e6,
        target: bytes <= 64 ? 0.5 : 0.8,
      });
      opts.progress?.tick(`group ${name} ${bytes} B`);
    }
  }
  return rows;
}
