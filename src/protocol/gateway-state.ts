import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SdTree } from '../core/broadcast/index.js';
import { aeadOpen, aeadSeal, Suite } from '../core/crypto/aead.js';
import { type Ed25519KeyPair, ed25519PrivateFromSeed, ed25519PublicToRaw } from '../core/crypto/ed25519.js';
import { loadOrCreateMasterKey } from '../core/crypto/masterkey.js';
import { CpnsError, ErrorCode } from '../core/errors.js';

/**
 * The PN GW's broadcast state: its Subset-Difference tree (master secret, leaf assignments, spent leaves) and
 * its Ed25519 broadcast-signing key. Persisted in the GW's data directory, encrypted at rest with AES-256-GCM
 * under the GW's own master key, so a GW restart keeps every PNE's GKDK valid (docs/broadcast.md §12 "Setup").
 *
 * File layout: nonce(12) || AEAD(seed(32) || tree state); AAD binds the purpose and version.
 */
const FILE = 'broadcast-state.bin';
const AAD = Buffer.from('cpns gw broadcast state v1');
const MAX_FILE = 2 * 1024 * 1024;

export class GatewayBroadcastState {
  tree: SdTree;
  readonly signing: Ed25519KeyPair;
  readonly signPublicRaw: Buffer;
  readonly #key: Buffer;
  readonly #path: string;
  readonly #seed: Buffer;

  private constructor(dataDir: string, key: Buffer, seed: Buffer, tree: SdTree) {
    this.#key = key;
    this.#path = join(dataDir, FILE);
    this.#seed = seed;
    this.tree = tree;
    this.signing = ed25519PrivateFromSeed(seed);
    this.signPublicRaw = ed25519PublicToRaw(this.signing.publicKey);
  }

  /** Loads the state of this GW, or creates a tree of `capacity` leaves (power of two) on first start. */
  static open(dataDir: string, gwId: Uint8Array, capacity = 1024): GatewayBroadcastState {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const { key } = loadOrCreateMasterKey({ dataDir, fileName: 'gw-master.key', env: {} });
    const path = join(dataDir, FILE);
    if (!existsSync(path)) {
      const s = new GatewayBroadcastState(dataDir, key, randomBytes(32), SdTree.create({ gwId, capacity }));
      s.save();
      return s;
    }
    const file = readFileSync(path);
    if (file.length < 12 + 16 + 32 || file.length > MAX_FILE) {
      throw new CpnsError(ErrorCode.MALFORMED, 'broadcast state file has an invalid size');
    }
    const plain = aeadOpen(Suite.AES_256_GCM, key, file.subarray(0, 12), AAD, file.subarray(12));
    const tree = SdTree.restore(plain.subarray(32));
    if (!tree.gwId.equals(Buffer.from(gwId))) {
      throw new CpnsError(ErrorCode.WRONG_TREE, 'broadcast state belongs to another GW');
    }
    return new GatewayBroadcastState(dataDir, key, Buffer.from(plain.subarray(0, 32)), tree);
  }

  /** Atomically rewrite the encrypted state (after every leaf assignment, release or rebuild). */
  save(): void {
    const nonce = randomBytes(12);
    const plain = Buffer.concat([this.#seed, this.tree.serialize()]);
    const sealed = aeadSeal(Suite.AES_256_GCM, this.#key, nonce, AAD, plain);
    plain.fill(0);
    const tmp = `${this.#path}.tmp`;
    writeFileSync(tmp, Buffer.concat([nonce, sealed]), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.#path);
  }
}
