import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { CpnsError, ErrorCode } from '../errors.js';

/** Ed25519 (RFC 8032) through node:crypto, with raw 32-byte key import/export. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export const ED25519_SIGNATURE_BYTES = 64;
export const ED25519_PUBLIC_KEY_BYTES = 32;

export interface Ed25519KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export function ed25519Generate(): Ed25519KeyPair {
  return generateKeyPairSync('ed25519');
}

export function ed25519PublicFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== ED25519_PUBLIC_KEY_BYTES) {
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'Ed25519 public key must be 32 bytes');
  }
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

export function ed25519PrivateFromSeed(seed: Uint8Array): Ed25519KeyPair {
  if (seed.length !== 32) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'Ed25519 seed must be 32 bytes');
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

export function ed25519PublicToRaw(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - ED25519_PUBLIC_KEY_BYTES));
}

export function ed25519Sign(privateKey: KeyObject, msg: Uint8Array): Buffer {
  return sign(null, msg, privateKey);
}

/** Returns false for any invalid signature (wrong length, non-canonical S, bad point...), never throws. */
export function ed25519Verify(publicKey: KeyObject, msg: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    return verify(null, msg, publicKey, sig);
  } catch {
    return false;
  }
}
