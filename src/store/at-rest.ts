/**
 * Encryption at rest, shared by every backend. Each secret row is sealed with AES-256-GCM under the server
 * master key, with a fresh random 96-bit nonce per write, and AAD that binds the ciphertext to its row:
 *
 *   AAD = "cpns-store/v1" || storeId(16) || lp(kind) || lp(part_1) || ... || lp(part_n)
 *   lp(x) = uint16 BE length || bytes(x)          (numbers are encoded as 8-byte big-endian)
 *
 * kind = "gk" with (sgId, epoch) for Group Keys, "secret" with (name) for named secrets, "check" for the
 * master-key check value. Moving a ciphertext to another row, another group, another epoch or another
 * database (storeId is random per database) makes it fail authentication.
 *
 * Failure modes: a wrong master key is detected once at open time by the check value (MASTER_KEY_MISMATCH);
 * a row that fails under the right key is STORE_CORRUPT. Never garbage.
 */
import { randomBytes } from 'node:crypto';
import { aeadOpen, aeadSeal, KEY_BYTES, NONCE_BYTES, Suite } from '../core/crypto/aead.js';
import { isCpnsError } from '../core/errors.js';
import { StoreError } from './errors.js';

const PREFIX = Buffer.from('cpns-store/v1', 'ascii');
const CHECK_PLAINTEXT = Buffer.from('cpns master key check v1', 'ascii');
export const STORE_ID_BYTES = 16;

export interface Sealed {
  readonly nonce: Buffer;
  readonly ct: Buffer;
}

function lp(part: string | number): Buffer {
  let b: Buffer;
  if (typeof part === 'number') {
    b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(part));
  } else {
    b = Buffer.from(part, 'utf8');
  }
  const h = Buffer.alloc(2);
  h.writeUInt16BE(b.length);
  return Buffer.concat([h, b]);
}

export class RowSealer {
  readonly #key: Buffer;
  readonly #storeId: Buffer;

  constructor(masterKey: Uint8Array, storeId: Uint8Array) {
    if (!(masterKey instanceof Uint8Array) || masterKey.length !== KEY_BYTES)
      throw new StoreError('MASTER_KEY_INVALID', 'master key must be 32 bytes', 'masterKey');
    if (storeId.length !== STORE_ID_BYTES)
      throw new StoreError('STORE_CORRUPT', 'store id has a wrong length', 'storeId');
    this.#key = Buffer.from(masterKey);
    this.#storeId = Buffer.from(storeId);
  }

  aad(kind: string, ...parts: (string | number)[]): Buffer {
    return Buffer.concat([PREFIX, this.#storeId, lp(kind), ...parts.map(lp)]);
  }

  seal(plaintext: Uint8Array, kind: string, ...parts: (string | number)[]): Sealed {
    const nonce = randomBytes(NONCE_BYTES);
    const ct = aeadSeal(Suite.AES_256_GCM, this.#key, nonce, this.aad(kind, ...parts), plaintext);
    return { nonce, ct };
  }

  /** Opens a row; STORE_CORRUPT if it does not authenticate (the master key was checked at open). */
  open(sealed: Sealed, kind: string, ...parts: (string | number)[]): Buffer {
    try {
      return aeadOpen(Suite.AES_256_GCM, this.#key, sealed.nonce, this.aad(kind, ...parts), sealed.ct);
    } catch (e) {
      if (isCpnsError(e)) throw new StoreError('STORE_CORRUPT', 'encrypted row failed authentication', kind);
      throw e;
    }
  }

  /** Value stored once per database to detect a wrong master key at open time. */
  makeCheck(): Sealed {
    return this.seal(CHECK_PLAINTEXT, 'check');
  }

  verifyCheck(sealed: Sealed): void {
    let pt: Buffer;
    try {
      pt = aeadOpen(Suite.AES_256_GCM, this.#key, sealed.nonce, this.aad('check'), sealed.ct);
    } catch {
      throw new StoreError('MASTER_KEY_MISMATCH', 'the master key does not open this database', 'masterKey');
    }
    if (!pt.equals(CHECK_PLAINTEXT))
      throw new StoreError('MASTER_KEY_MISMATCH', 'the master key does not open this database', 'masterKey');
  }

  wipe(): void {
    this.#key.fill(0);
  }
}
