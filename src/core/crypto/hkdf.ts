import { hkdfSync } from 'node:crypto';
import { CpnsError, ErrorCode } from '../errors.js';

/** HKDF-SHA256 (RFC 5869). Output length is bounded by 255 * HashLen as the RFC requires. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
  if (!Number.isInteger(length) || length < 1 || length > 255 * 32) {
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'HKDF output length out of range');
  }
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}
