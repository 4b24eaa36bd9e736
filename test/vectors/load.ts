/**
 * Typed readers for the third-party test vectors kept next to this file (see ./README.md for provenance).
 * Files are read relative to this module, never from /work/shared, so the tests run on a clean clone.
 * Each reader checks the few structural facts the tests rely on (algorithm, schema, group type, and that the
 * number of tests equals the header's `numberOfTests`) so a truncated or swapped file fails loudly.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const VECTORS_DIR = dirname(fileURLToPath(import.meta.url));

/** Absolute path of a file under test/vectors/. */
export function vectorPath(relative: string): string {
  return join(VECTORS_DIR, relative);
}

export function readVectorJson(relative: string): unknown {
  return JSON.parse(readFileSync(vectorPath(relative), 'utf8')) as unknown;
}

/** Lower- or upper-case hex to bytes; rejects odd lengths and non-hex characters. */
export function hex(s: string): Buffer {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new Error(`not a hex string: ${s.slice(0, 16)}`);
  return Buffer.from(s, 'hex');
}

// ---------------------------------------------------------------------------------------------------------
// Wycheproof (C2SP/wycheproof, testvectors_v1/)
// ---------------------------------------------------------------------------------------------------------

export type WycheproofResult = 'valid' | 'invalid' | 'acceptable';

export interface WycheproofTestBase {
  readonly tcId: number;
  readonly comment: string;
  readonly flags: readonly string[];
  readonly result: WycheproofResult;
}

export interface WycheproofNote {
  readonly bugType: string;
  readonly description: string;
}

export interface WycheproofFile<G> {
  readonly algorithm: string;
  readonly schema: string;
  readonly numberOfTests: number;
  readonly header: readonly string[];
  readonly notes: Readonly<Record<string, WycheproofNote>>;
  readonly testGroups: readonly G[];
}

/** A test flattened together with its group, which carries the group-level parameters. */
export interface WithGroup<G, T> {
  readonly group: G;
  readonly test: T;
}

export interface AeadTest extends WycheproofTestBase {
  readonly key: string;
  readonly iv: string;
  readonly aad: string;
  readonly msg: string;
  /** Ciphertext without the tag. */
  readonly ct: string;
  readonly tag: string;
}
export interface AeadGroup {
  readonly type: 'AeadTest';
  /** All sizes in bits. */
  readonly keySize: number;
  readonly ivSize: number;
  readonly tagSize: number;
  readonly tests: readonly AeadTest[];
}

export interface KeywrapTest extends WycheproofTestBase {
  /** The KEK. */
  readonly key: string;
  /** The key data to wrap. */
  readonly msg: string;
  /** The wrapped key. */
  readonly ct: string;
}
export interface KeywrapGroup {
  readonly type: 'KeywrapTest';
  readonly keySize: number;
  readonly tests: readonly KeywrapTest[];
}

export interface HkdfTest extends WycheproofTestBase {
  readonly ikm: string;
  readonly salt: string;
  readonly info: string;
  /** Output length in bytes. */
  readonly size: number;
  readonly okm: string;
}
export interface HkdfGroup {
  readonly type: 'HkdfTest';
  readonly keySize: number;
  readonly tests: readonly HkdfTest[];
}

export interface MacTest extends WycheproofTestBase {
  readonly key: string;
  readonly msg: string;
  /** Expected tag, already truncated to tagSize/8 bytes. */
  readonly tag: string;
}
export interface MacGroup {
  readonly type: 'MacTest';
  readonly keySize: number;
  readonly tagSize: number;
  readonly tests: readonly MacTest[];
}

export interface EddsaTest extends WycheproofTestBase {
  readonly msg: string;
  readonly sig: string;
}
export interface EddsaGroup {
  readonly type: 'EddsaVerify';
  readonly publicKey: {
    readonly type: string;
    readonly curve: string;
    readonly keySize: number;
    /** Raw 32-byte public key (hex). */
    readonly pk: string;
  };
  /** SubjectPublicKeyInfo DER (hex). */
  readonly publicKeyDer: string;
  readonly publicKeyPem: string;
  readonly tests: readonly EddsaTest[];
}

interface FamilySpec {
  readonly file: string;
  readonly algorithm: string;
  readonly schema: string;
  readonly groupType: string;
  readonly testFields: readonly string[];
}

const FAMILIES = {
  aes_gcm: {
    file: 'wycheproof/aes_gcm_test.json',
    algorithm: 'AES-GCM',
    schema: 'aead_test_schema_v1.json',
    groupType: 'AeadTest',
    testFields: ['key', 'iv', 'aad', 'msg', 'ct', 'tag'],
  },
  chacha20_poly1305: {
    file: 'wycheproof/chacha20_poly1305_test.json',
    algorithm: 'CHACHA20-POLY1305',
    schema: 'aead_test_schema_v1.json',
    groupType: 'AeadTest',
    testFields: ['key', 'iv', 'aad', 'msg', 'ct', 'tag'],
  },
  aes_wrap: {
    file: 'wycheproof/aes_wrap_test.json',
    algorithm: 'AES-WRAP',
    schema: 'keywrap_test_schema_v1.json',
    groupType: 'KeywrapTest',
    testFields: ['key', 'msg', 'ct'],
  },
  hkdf_sha256: {
    file: 'wycheproof/hkdf_sha256_test.json',
    algorithm: 'HKDF-SHA-256',
    schema: 'hkdf_test_schema_v1.json',
    groupType: 'HkdfTest',
    testFields: ['ikm', 'salt', 'info', 'okm'],
  },
  hmac_sha256: {
    file: 'wycheproof/hmac_sha256_test.json',
    algorithm: 'HMACSHA256',
    schema: 'mac_test_schema_v1.json',
    groupType: 'MacTest',
    testFields: ['key', 'msg', 'tag'],
  },
  ed25519: {
    file: 'wycheproof/ed25519_test.json',
    algorithm: 'EDDSA',
    schema: 'eddsa_verify_schema_v1.json',
    groupType: 'EddsaVerify',
    testFields: ['msg', 'sig'],
  },
} as const satisfies Record<string, FamilySpec>;

type Family = keyof typeof FAMILIES;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function loadWycheproof<G>(family: Family): WycheproofFile<G> {
  const spec: FamilySpec = FAMILIES[family];
  const raw = readVectorJson(spec.file);
  const fail = (why: string): never => {
    throw new Error(`${spec.file}: ${why}`);
  };
  if (!isRecord(raw)) return fail('not a JSON object');
  if (raw.algorithm !== spec.algorithm) fail(`algorithm is ${String(raw.algorithm)}`);
  if (raw.schema !== spec.schema) fail(`schema is ${String(raw.schema)}`);
  if (!Array.isArray(raw.testGroups)) return fail('testGroups missing');
  let counted = 0;
  for (const g of raw.testGroups as unknown[]) {
    if (!isRecord(g) || g.type !== spec.groupType || !Array.isArray(g.tests)) fail('bad test group');
    for (const t of (g as { tests: unknown[] }).tests) {
      if (!isRecord(t) || typeof t.tcId !== 'number' || !Array.isArray(t.flags)) fail('bad test');
      const test = t as Record<string, unknown>;
      if (test.result !== 'valid' && test.result !== 'invalid' && test.result !== 'acceptable') {
        fail(`tcId ${String(test.tcId)}: bad result`);
      }
      for (const f of spec.testFields) {
        if (typeof test[f] !== 'string') fail(`tcId ${String(test.tcId)}: field ${f} is not a string`);
      }
      counted++;
    }
  }
  if (counted !== raw.numberOfTests)
    fail(`counted ${counted} tests, header says ${String(raw.numberOfTests)}`);
  return raw as unknown as WycheproofFile<G>;
}

/** All tests of a file, each with its group, in file order. */
export function flatten<G extends { readonly tests: readonly T[] }, T>(
  file: WycheproofFile<G>,
): WithGroup<G, T>[] {
  return file.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));
}

export function loadAead(family: 'aes_gcm' | 'chacha20_poly1305'): WycheproofFile<AeadGroup> {
  return loadWycheproof<AeadGroup>(family);
}
export function loadKeywrap(): WycheproofFile<KeywrapGroup> {
  return loadWycheproof<KeywrapGroup>('aes_wrap');
}
export function loadHkdf(): WycheproofFile<HkdfGroup> {
  return loadWycheproof<HkdfGroup>('hkdf_sha256');
}
export function loadMac(): WycheproofFile<MacGroup> {
  return loadWycheproof<MacGroup>('hmac_sha256');
}
export function loadEddsa(): WycheproofFile<EddsaGroup> {
  return loadWycheproof<EddsaGroup>('ed25519');
}

// ---------------------------------------------------------------------------------------------------------
// COSE WG Examples (cose-wg/Examples)
// ---------------------------------------------------------------------------------------------------------

export interface CoseOkpKey {
  readonly kty: 'OKP';
  readonly kid?: string;
  readonly crv: string;
  readonly x_hex: string;
  readonly d_hex: string;
}

/** A COSE_Sign1 example (`input.sign0`). Only the members the tests use are typed. */
export interface CoseSign1Example {
  readonly title: string;
  readonly fail?: boolean;
  readonly input: {
    readonly plaintext: string;
    readonly sign0: {
      readonly key: CoseOkpKey;
      readonly alg: string;
      readonly protected?: Readonly<Record<string, unknown>>;
      readonly unprotected?: Readonly<Record<string, unknown>>;
      readonly external?: string;
    };
  };
  readonly intermediates: {
    /** Sig_structure (RFC 9052 §4.4) as upper-case hex. */
    readonly ToBeSign_hex: string;
  };
  readonly output: {
    readonly cbor: string;
    readonly cbor_diag: string;
  };
}

export function loadCoseSign1(relative: string): CoseSign1Example {
  const raw = readVectorJson(`cose-wg/${relative}`);
  const ok =
    isRecord(raw) &&
    isRecord(raw.input) &&
    typeof raw.input.plaintext === 'string' &&
    isRecord(raw.input.sign0) &&
    isRecord(raw.input.sign0.key) &&
    typeof raw.input.sign0.key.x_hex === 'string' &&
    typeof raw.input.sign0.key.d_hex === 'string' &&
    isRecord(raw.intermediates) &&
    typeof raw.intermediates.ToBeSign_hex === 'string' &&
    isRecord(raw.output) &&
    typeof raw.output.cbor === 'string';
  if (!ok) throw new Error(`cose-wg/${relative}: not a COSE_Sign1 example with an OKP key`);
  return raw as unknown as CoseSign1Example;
}
