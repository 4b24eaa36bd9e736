/**
 * Ed25519 through the wrappers:
 * - Wycheproof ed25519_test.json (verification only): ed25519PublicFromRaw(pk) + ed25519Verify must return
 *   true for `valid` and false for `invalid` (never throw). The imported key must re-export to the vector's
 *   SPKI DER and raw pk.
 * - Signing KAT: cose-wg/Examples eddsa-examples/eddsa-sig-01.json, whose key is RFC 8032 §7.1 TEST 1.
 *   Signing the COSE Sig_structure ("ToBeSigned") with the seed must reproduce the COSE_Sign1 signature
 *   byte for byte (Ed25519 is deterministic).
 */

import { createPublicKey } from 'node:crypto';
import { decode, encode, Tag } from 'cbor-x';
import { describe, expect, it } from 'vitest';
import {
  ed25519PrivateFromSeed,
  ed25519PublicFromRaw,
  ed25519PublicToRaw,
  ed25519Sign,
  ed25519Verify,
} from '../../../src/core/crypto/index.js';
import {
  type EddsaGroup,
  type EddsaTest,
  flatten,
  hex,
  loadCoseSign1,
  loadEddsa,
  type WithGroup,
} from '../../vectors/load.js';
import { countBy, Tally } from './helpers.js';

type Case = WithGroup<EddsaGroup, EddsaTest>;

/** `invalid/length` cases are refused by the wrapper's 64-byte check; the others reach OpenSSL. */
function category({ test }: Case): string {
  if (test.result === 'valid') return test.sig.length === 128 ? 'valid' : 'unexpected';
  if (test.result === 'invalid') return test.sig.length === 128 ? 'invalid/verifyFalse' : 'invalid/length';
  return 'unexpected';
}

const EXPECTED = { valid: 88, 'invalid/verifyFalse': 51, 'invalid/length': 12 };

describe('Wycheproof ed25519_test.json via ed25519PublicFromRaw/ed25519Verify', () => {
  const file = loadEddsa();
  const cases = flatten<EddsaGroup, EddsaTest>(file);
  const tally = new Tally();

  it('has the expected number of cases in each category (151 in all)', () => {
    expect(file.numberOfTests).toBe(151);
    expect(countBy(cases, category)).toEqual(EXPECTED);
  });

  it('imports every group key from raw and re-exports the same SPKI and raw bytes (78 groups)', () => {
    expect(file.testGroups).toHaveLength(78);
    for (const g of file.testGroups) {
      const key = ed25519PublicFromRaw(hex(g.publicKey.pk));
      expect(key.asymmetricKeyType).toBe('ed25519');
      expect(key.export({ format: 'der', type: 'spki' }).toString('hex')).toBe(g.publicKeyDer);
      expect(ed25519PublicToRaw(key).toString('hex')).toBe(g.publicKey.pk);
      expect(key.equals(createPublicKey(g.publicKeyPem))).toBe(true);
    }
  });

  for (const c of cases) {
    const { group, test } = c;
    const cat = category(c);
    it(`tcId ${test.tcId} [${cat}] sig ${test.sig.length / 2} B ${test.flags.join(',')}`, () => {
      if (cat === 'unexpected') throw new Error(`uncategorised vector tcId ${test.tcId}`);
      const key = ed25519PublicFromRaw(hex(group.publicKey.pk));
      expect(ed25519Verify(key, hex(test.msg), hex(test.sig))).toBe(test.result === 'valid');
      tally.hit(cat);
    });
  }

  // Declared last, so it runs after every case above (vitest runs a file's tests in order).
  it('ran every case to the end of its assertions', () => {
    expect(tally.snapshot()).toEqual(EXPECTED);
  });
});

describe('Ed25519 signing KAT: cose-wg eddsa-sig-01.json (RFC 8032 §7.1 TEST 1 key)', () => {
  const ex = loadCoseSign1('eddsa-examples/eddsa-sig-01.json');
  const seed = hex(ex.input.sign0.key.d_hex);
  const x = hex(ex.input.sign0.key.x_hex);
  const toBeSigned = hex(ex.intermediates.ToBeSign_hex);
  const cbor = hex(ex.output.cbor);

  // COSE_Sign1 = #6.18([protected: bstr, unprotected: map, payload: bstr / nil, signature: bstr]) (RFC 9052 §4.2).
  const decoded: unknown = decode(cbor);
  const parts = decoded instanceof Tag && Array.isArray(decoded.value) ? (decoded.value as unknown[]) : [];
  const [protectedBytes, , payload, signature] = parts;

  it('is the RFC 8032 TEST 1 key pair and an expected-success example', () => {
    expect(ex.fail).toBeUndefined();
    expect(ex.input.sign0.key.crv).toBe('Ed25519');
    expect(ex.input.sign0.key.d_hex).toBe('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
    expect(ex.input.sign0.key.x_hex).toBe('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  });

  it('decodes output.cbor as a tag-18 COSE_Sign1 with a 64-byte signature', () => {
    expect(decoded).toBeInstanceOf(Tag);
    expect((decoded as Tag).tag).toBe(18);
    expect(parts).toHaveLength(4);
    expect(protectedBytes).toBeInstanceOf(Uint8Array);
    expect(payload).toBeInstanceOf(Uint8Array);
    expect(signature).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(payload as Uint8Array).toString('utf8')).toBe(ex.input.plaintext);
    expect(signature as Uint8Array).toHaveLength(64);
    // The signature is the last array element, a 64-byte bstr (header 0x58 0x40): the message ends with it.
    expect(cbor.subarray(cbor.length - 66, cbor.length - 64).toString('hex')).toBe('5840');
    expect(Buffer.from(signature as Uint8Array).equals(cbor.subarray(cbor.length - 64))).toBe(true);
  });

  it('ToBeSign_hex is the Sig_structure ["Signature1", protected, h"", payload] (RFC 9052 §4.4)', () => {
    // cbor-x encodes Buffer as a CBOR byte string (a plain Uint8Array would get typed-array tag 64).
    const sigStructure = encode([
      'Signature1',
      Buffer.from(protectedBytes as Uint8Array),
      Buffer.alloc(0),
      Buffer.from(payload as Uint8Array),
    ]);
    expect(Buffer.from(sigStructure).equals(toBeSigned)).toBe(true);
  });

  it('ed25519PrivateFromSeed + ed25519PublicToRaw give x; ed25519Sign reproduces the signature exactly', () => {
    const pair = ed25519PrivateFromSeed(seed);
    expect(ed25519PublicToRaw(pair.publicKey).equals(x)).toBe(true);
    const sig = ed25519Sign(pair.privateKey, toBeSigned);
    expect(sig.toString('hex')).toBe(Buffer.from(signature as Uint8Array).toString('hex'));
    expect(ed25519Verify(ed25519PublicFromRaw(x), toBeSigned, sig)).toBe(true);
    const tampered = Buffer.from(toBeSigned);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 0x01;
    expect(ed25519Verify(ed25519PublicFromRaw(x), tampered, sig)).toBe(false);
  });
});
