import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CpnsError, ErrorCode } from '../errors.js';

/**
 * AES Key Wrap (RFC 3394) with the default IV A6A6A6A6A6A6A6A6. Lengths are checked here because node's
 * id-aesNNN-wrap unwraps an empty input without error (Wycheproof aes_wrap tcIds 22, 64, 119).
 * Key data must be at least 16 bytes (SP 800-38F; RFC 3394 would allow 8) and a multiple of 8.
 */
const DEFAULT_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

function algorithm(kek: Uint8Array): 'id-aes128-wrap' | 'id-aes192-wrap' | 'id-aes256-wrap' {
  switch (kek.length) {
    case 16:
      return 'id-aes128-wrap';
    case 24:
      return 'id-aes192-wrap';
    case 32:
      return 'id-aes256-wrap';
    default:
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'KEK must be 16, 24 or 32 bytes');
  }
}

export function aesKeyWrap(kek: Uint8Array, keyData: Uint8Array): Buffer {
  const alg = algorithm(kek);
  if (keyData.length < 16 || keyData.length % 8 !== 0) {
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'key data must be >= 16 bytes and a multiple of 8');
  }
  const c = createCipheriv(alg, kek, DEFAULT_IV);
  return Buffer.concat([c.update(keyData), c.final()]);
}

export function aesKeyUnwrap(kek: Uint8Array, wrapped: Uint8Array): Buffer {
  const alg = algorithm(kek);
  if (wrapped.length < 24 || wrapped.length % 8 !== 0) {
    throw new CpnsError(ErrorCode.UNWRAP_FAILED, 'wrapped key has an invalid length');
  }
  try {
    const d = createDecipheriv(alg, kek, DEFAULT_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch {
    throw new CpnsError(ErrorCode.UNWRAP_FAILED, 'key unwrap integrity check failed');
  }
}
