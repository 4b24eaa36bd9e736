import { randomBytes, timingSafeEqual } from 'node:crypto';

/** Constant-time equality for secrets (MACs, keys); different lengths compare unequal without early exit on content. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

export function random(n: number): Buffer {
  return randomBytes(n);
}

/** Overwrite a secret buffer once it is no longer needed (best effort: V8 may hold copies). */
export function wipe(buf: Uint8Array): void {
  buf.fill(0);
}
