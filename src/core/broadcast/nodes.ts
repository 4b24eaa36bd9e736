import { CpnsError, ErrorCode } from '../errors.js';

/**
 * Heap numbering of the complete binary tree (reference §1): root = 1, children of v are 2v (path bit 0) and
 * 2v+1 (path bit 1), depth(v) = floor(log2 v), leaves are N..2N-1 and leaf u (0-based) is heap node N+u.
 * depth = bit length - 1, so no shift ever reaches the word width (reference §11 item 9).
 */

/** Smallest and largest supported tree: 2 leaves .. 2^16 leaves (so every heap index fits in 17 bits). */
export const MIN_LOG2_CAPACITY = 1;
export const MAX_LOG2_CAPACITY = 16;
export const MAX_CAPACITY = 1 << MAX_LOG2_CAPACITY;

export function depthOf(v: number): number {
  return 31 - Math.clz32(v);
}

/** True when v is an ancestor of x or x itself (reference §1). */
export function isAncestorOrSelf(v: number, x: number): boolean {
  const dv = depthOf(v);
  const dx = depthOf(x);
  return dv <= dx && x >>> (dx - dv) === v;
}

/** log2 of a capacity that must be a power of two in [2, 2^16]; INVALID_ARGUMENT otherwise (local caller input). */
export function log2Capacity(capacity: number): number {
  if (
    !Number.isInteger(capacity) ||
    capacity < 1 << MIN_LOG2_CAPACITY ||
    capacity > MAX_CAPACITY ||
    (capacity & (capacity - 1)) !== 0
  ) {
    throw new CpnsError(
      ErrorCode.INVALID_ARGUMENT,
      'tree capacity must be a power of two between 2 and 65536',
      'capacity',
    );
  }
  return depthOf(capacity);
}
