import { createDecipheriv } from 'node:crypto';
import { CpnsError, ErrorCode } from '../errors.js';

/**
 * The length-tripling PRG G of NNL SD (reference §4.2): G(s) = G_L(s) || G_M(s) || G_R(s). G_L / G_R label the
 * left / right child, G_M turns a label into the subset key. Each third is exposed separately because a walk
 * needs only one third per level (reference §4.4 item 5): one AES block per step instead of three.
 *
 * Pluggable so tests can count calls (the O(log N) bound, reference §11 item 11) and check the §6.4 known
 * answers exactly. Wire format version 1 fixes AES-G3; any other PRG is a test instrument only.
 */
export interface SdPrg {
  readonly name: string;
  /** G_L: label of the left child. */
  left(seed: Uint8Array): Buffer;
  /** G_M: the subset key ("processing key" in AACS). */
  middle(seed: Uint8Array): Buffer;
  /** G_R: label of the right child. */
  right(seed: Uint8Array): Buffer;
}

export const LABEL_BYTES = 16;

// AACS Common book §3.2.2 (reference §7.2): s0 = 7B103C5D CB08C4E5 1A27B017 99053BD9; the three outputs use
// s0, s0+1, s0+2. 0xD9 + 2 does not carry, so adding to the last byte equals 128-bit addition.
const S0 = Buffer.from('7b103c5dcb08c4e51a27b01799053bd9', 'hex');
const S1 = Buffer.from(S0);
S1[15] = S0[15]! + 1;
const S2 = Buffer.from(S0);
S2[15] = S0[15]! + 2;

/**
 * AES-G(k, x) = AES-128-D(k, x) XOR x (AACS Common §2.1.3): note AES *decryption*, k is the key, x the data.
 * Node's AES-128-ECB on one block, no padding: this is the only non-library construction of the module.
 */
export function aesG(key: Uint8Array, x: Uint8Array): Buffer {
  if (key.length !== LABEL_BYTES || x.length !== LABEL_BYTES) {
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'AES-G key and block must be 16 bytes');
  }
  const d = createDecipheriv('aes-128-ecb', key, null);
  d.setAutoPadding(false);
  const out = d.update(x);
  for (let k = 0; k < LABEL_BYTES; k++) out[k]! ^= x[k]!;
  return out;
}

/** AACS AES-G3 (reference §7.2): G_L = AES-G(k, s0), G_M = AES-G(k, s0+1), G_R = AES-G(k, s0+2). */
export const aesG3: SdPrg = Object.freeze({
  name: 'AES-G3',
  left: (seed: Uint8Array) => aesG(seed, S0),
  middle: (seed: Uint8Array) => aesG(seed, S1),
  right: (seed: Uint8Array) => aesG(seed, S2),
});

/** Wraps a PRG and counts every third evaluated (one AES block each for AES-G3). For tests and benchmarks. */
export class CountingPrg implements SdPrg {
  readonly name: string;
  calls = 0;
  constructor(private readonly inner: SdPrg = aesG3) {
    this.name = `counting(${inner.name})`;
  }
  left(seed: Uint8Array): Buffer {
    this.calls++;
    return this.inner.left(seed);
  }
  middle(seed: Uint8Array): Buffer {
    this.calls++;
    return this.inner.middle(seed);
  }
  right(seed: Uint8Array): Buffer {
    this.calls++;
    return this.inner.right(seed);
  }
}
