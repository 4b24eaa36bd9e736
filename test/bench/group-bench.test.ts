import { describe, expect, it } from 'vitest';
import { benchGroup } from '../../src/bench/group-bench.js';

describe('bench core: group messages against the raw AEAD (issue #11 §3)', () => {
  it('one row per suite and size, each against its own cipher, with its target and the allocation ceiling', () => {
    const rows = benchGroup({ rounds: 1, ms: 20 });
    expect(rows.map((r) => [r.suite, r.bytes, r.baselineCipher, r.target])).toEqual([
      ['aes-256-gcm', 64, 'aes-256-gcm', 0.8],
      ['aes-256-gcm', 1024, 'aes-256-gcm', 0.9],
      ['aes-256-gcm', 16384, 'aes-256-gcm', 0.9],
      ['chacha20-poly1305', 64, 'chacha20-poly1305', 0.8],
      ['chacha20-poly1305', 1024, 'chacha20-poly1305', 0.8],
      ['chacha20-poly1305', 16384, 'chacha20-poly1305', 0.8],
    ]);
    for (const r of rows) {
      expect(r.ratio).toBeGreaterThan(0);
      expect(r.ratio).toBeCloseTo(r.subject / r.baseline, 1);
      expect(r.mbPerSec).toBeCloseTo((r.pairsPerSec * r.bytes) / 1e6, 6);
      expect(r.allocCeiling).toBeGreaterThan(0);
      expect(Number.isFinite(r.allocCeiling)).toBe(true);
    }
  });
});
