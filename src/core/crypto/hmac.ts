import { createHmac } from 'node:crypto';
import { constantTimeEqual } from './bytes.js';

export function hmacSha256(key: Uint8Array, msg: Uint8Array): Buffer {
  return createHmac('sha256', key).update(msg).digest();
}

/** Verify a (possibly truncated, >= 16 bytes) HMAC-SHA256 tag in constant time. */
export function hmacSha256Verify(key: Uint8Array, msg: Uint8Array, tag: Uint8Array): boolean {
  if (tag.length < 16 || tag.length > 32) return false;
  return constantTimeEqual(hmacSha256(key, msg).subarray(0, tag.length), tag);
}
