import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Suite, TAG_BYTES } from '../core/crypto/aead.js';
import { GroupKeyRing, GroupReceiver, GroupSender, HEADER_BYTES } from '../core/group/index.js';
import { type Comparison, compare, type Progress } from './measure.js';

export interface GroupBenchRow extends Comparison {
  readonly suite: 'aes-256-gcm' | 'chacha20-poly1305';
  readonly bytes: number;
  /** protect+open pairs per second (subject) and MB/s of payload. */
  readonly pairsPerSec: number;
  readonly mbPerSec: number;
  readonly baselineMbPerSec: number;
  /** The raw node:crypto cipher of the baseline: the suite's own AEAD. */
  readonly baselineCipher: 'aes-256-gcm' | 'chacha20-poly1305';
  readonly target: number;
  /**
   * The raw pair plus only the allocation of a message-sized buffer (header + payload + tag), against the raw pair:
   * what any `protect` that returns a fresh contiguous message keeps at most (node:crypto's `update` cannot write
   * into a given buffer, so the ciphertext must be copied into one), before any framing, copy or check.
   */
  readonly allocCeiling: number;
}

export const GROUP_SIZES = [64, 1024, 16384] as const;

/**
 * protect+open of a Service Group message versus raw seal+open of the same AEAD in node:crypto (each suite
 * against its own cipher) on the same payload (one key, incrementing 12-byte nonce, 56-byte AAD like our header),
 * measured in the same run.
 * Targets (docs/design.md §6): AES-256-GCM >= 0.9x raw at 1 KiB and 16 KiB, >= 0.8x at 64 B;
 * ChaCha20-Poly1305 >= 0.8x raw at every size.
 */
export function groupTarget(suite: Suite, bytes: number): number {
  if (suite === Suite.CHACHA20_POLY1305) return 0.8;
  return bytes <= 64 ? 0.8 : 0.9;
}

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
      const name = suite === Suite.AES_256_GCM ? 'aes-256-gcm' : 'chacha20-poly1305';
      // Baseline (docs/benchmarks.md): the leanest raw use of the suite's own AEAD in node:crypto on the same
      // payload and AAD length: createCipheriv + setAAD + update + final + getAuthTag, and the decipher
      // (no concat, no framing, no key derivation, no header, no replay window).
      const raw = name; // the cast below only picks the AEAD overload of createCipheriv (both suites have one)
      const key = randomBytes(32);
      const aad = randomBytes(56);
      const nonce = Buffer.alloc(12);
      let ctr = 0;
      const baseline = () => {
        nonce.writeUInt32BE(++ctr >>> 0, 8);
        const c = createCipheriv(raw as 'aes-256-gcm', key, nonce, { authTagLength: 16 });
        c.setAAD(aad);
        const ct = c.update(pt);
        c.final();
        const tag = c.getAuthTag();
        const d = createDecipheriv(raw as 'aes-256-gcm', key, nonce, { authTagLength: 16 });
        d.setAuthTag(tag);
        d.setAAD(aad);
        d.update(ct);
        d.final();
      };
      const withAlloc = () => {
        baseline();
        // the message protect returns: header || ciphertext || tag
        Buffer.allocUnsafe(HEADER_BYTES + bytes + TAG_BYTES)[0] = 1;
      };
      const cmp = compare(subject, baseline, opts.rounds, opts.ms);
      const ceiling = compare(withAlloc, baseline, opts.rounds, opts.ms);
      rows.push({
        ...cmp,
        suite: name,
        bytes,
        pairsPerSec: cmp.subject,
        mbPerSec: (cmp.subject * bytes) / 1e6,
        baselineMbPerSec: (cmp.baseline * bytes) / 1e6,
        baselineCipher: raw,
        target: groupTarget(suite, bytes),
        allocCeiling: ceiling.ratio,
      });
      opts.progress?.tick(`group ${name} ${bytes} B`);
    }
  }
  return rows;
}
