import { describe, expect, it } from 'vitest';
import {
  aesG3,
  buildGkdkLabels,
  CountingPrg,
  deriveAllKey,
  deriveRootLabel,
  gkdkLabelCount,
  gkdkLabelIndex,
  LABEL_BYTES,
  subsetKeyFromGkdkLabels,
  subsetKeyFromRootLabel,
  walkDown,
} from '../../../src/core/broadcast/index.js';
import { aesKeyWrap } from '../../../src/core/crypto/keywrap.js';
import { refGkdk } from './reference.js';

// Reference §6.4: N = 8, LABEL_i = byte(i) × 16, R = {1, 6}, K_g = 000102…0f, KEK = L_{i,j} directly.
const hex = (s: string) => Buffer.from(s, 'hex');
const labelOf = (i: number) => Buffer.alloc(16, i);
const Kg = hex('000102030405060708090a0b0c0d0e0f');

describe('AES-G3 PRG known answers (reference §6.4, §7.2)', () => {
  it('AES-G3(0102…0f10) thirds', () => {
    const seed = hex('0102030405060708090a0b0c0d0e0f10');
    expect(aesG3.left(seed).toString('hex')).toBe('7163bb2f4dd7583abe819981b92d5a8e');
    expect(aesG3.middle(seed).toString('hex')).toBe('84f2f664ddb67a5e29f9f14f9ccd0295');
    expect(aesG3.right(seed).toString('hex')).toBe('ccf519a4bf33183813d2f5b376f48170');
  });

  it('does not modify its input', () => {
    const seed = hex('0102030405060708090a0b0c0d0e0f10');
    const copy = Buffer.from(seed);
    aesG3.left(seed);
    aesG3.middle(seed);
    aesG3.right(seed);
    expect(seed).toEqual(copy);
  });

  it('S_{2,9}: LABEL_{2,4}, LABEL_{2,9}, L_{2,9}, AES-KW', () => {
    expect(walkDown(aesG3, labelOf(2), 2, 4).toString('hex')).toBe('ee03e4f13925ac50cc4469b6f1b32320');
    expect(aesG3.left(labelOf(2)).toString('hex')).toBe('ee03e4f13925ac50cc4469b6f1b32320');
    expect(walkDown(aesG3, labelOf(2), 2, 9).toString('hex')).toBe('ef1fa99e9c13795a27bf8c19d85c49a1');
    const L29 = subsetKeyFromRootLabel(aesG3, labelOf(2), 2, 9);
    expect(L29.toString('hex')).toBe('a7d975cd616c5023dbad0135ea4752c3');
    expect(aesKeyWrap(L29, Kg).toString('hex')).toBe('6677e0041ed93474b1cb2384ac980a6fbb2b8f0fd7347562');
  });

  it('S_{3,14}: LABEL_{3,14}, L_{3,14}, AES-KW', () => {
    expect(walkDown(aesG3, labelOf(3), 3, 14).toString('hex')).toBe('e5774af527fb43179509327c6133a02b');
    const L = subsetKeyFromRootLabel(aesG3, labelOf(3), 3, 14);
    expect(L.toString('hex')).toBe('7749397d2a9c2c286bb5315e29e0a410');
    expect(aesKeyWrap(L, Kg).toString('hex')).toBe('1e77d5a5a5bfc5b56c6d67fdf635b77ff2c6afb77aec23d3');
  });

  it('RFC 3394 §4.1 vector through the project key wrap', () => {
    expect(
      aesKeyWrap(hex('000102030405060708090a0b0c0d0e0f'), hex('00112233445566778899aabbccddeeff')).toString(
        'hex',
      ),
    ).toBe('1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5');
  });
});

describe('device-side derivation on the §6.4 labels (reference §4.4 worked example)', () => {
  const n = 3;
  it('device 3 (leaf 11) derives L_{2,9} in 2 G-calls; device 0 (leaf 8) in 1', () => {
    const labels3 = buildGkdkLabels(aesG3, n, 3, labelOf);
    const c3 = new CountingPrg();
    expect(subsetKeyFromGkdkLabels(c3, n, labels3, 3, 2, 9).toString('hex')).toBe(
      'a7d975cd616c5023dbad0135ea4752c3',
    );
    expect(c3.calls).toBe(2);
    const labels0 = buildGkdkLabels(aesG3, n, 0, labelOf);
    const c0 = new CountingPrg();
    expect(subsetKeyFromGkdkLabels(c0, n, labels0, 0, 2, 9).toString('hex')).toBe(
      'a7d975cd616c5023dbad0135ea4752c3',
    );
    expect(c0.calls).toBe(1);
  });

  it('devices 4, 5, 7 derive L_{3,14}; devices 1 and 6 are refused', () => {
    for (const u of [4, 5, 7]) {
      const labels = buildGkdkLabels(aesG3, n, u, labelOf);
      expect(subsetKeyFromGkdkLabels(aesG3, n, labels, u, 3, 14).toString('hex')).toBe(
        '7749397d2a9c2c286bb5315e29e0a410',
      );
    }
    const l1 = buildGkdkLabels(aesG3, n, 1, labelOf);
    expect(() => subsetKeyFromGkdkLabels(aesG3, n, l1, 1, 2, 9)).toThrow(/not in the subset/);
    const l6 = buildGkdkLabels(aesG3, n, 6, labelOf);
    expect(() => subsetKeyFromGkdkLabels(aesG3, n, l6, 6, 3, 14)).toThrow(/not in the subset/);
  });

  it('GKDK of device 3 is exactly LABEL_{5,10}, _{2,10}, _{2,4}, _{1,10}, _{1,4}, _{1,3} (reference §4.3)', () => {
    const labels = buildGkdkLabels(aesG3, n, 3, labelOf);
    expect(labels.length).toBe(6 * LABEL_BYTES);
    const ref = refGkdk(8, aesG3, labelOf, 3);
    expect([...ref.keys()].sort()).toEqual(['1,10', '1,3', '1,4', '2,10', '2,4', '5,10']);
    // canonical order: (d_i, d_h) = (0,1) 1,3 | (0,2) 1,4 | (0,3) 1,10 | (1,2) 2,4 | (1,3) 2,10 | (2,3) 5,10
    const order = ['1,3', '1,4', '1,10', '2,4', '2,10', '5,10'];
    order.forEach((key, k) => {
      expect(labels.subarray(k * 16, k * 16 + 16)).toEqual(ref.get(key));
    });
    expect(gkdkLabelIndex(3, 1, 3)).toBe(4);
    expect(gkdkLabelCount(10)).toBe(55);
  });
});

describe('root labels and K_ALL (reference §4.7, §11 item 5)', () => {
  const master = Buffer.alloc(32, 7);
  const treeId = Buffer.alloc(16, 1);
  it('are 16 bytes, independent per node, version and tree id, and K_ALL is in its own domain', () => {
    const seen = new Set<string>();
    for (let i = 1; i < 64; i++) seen.add(deriveRootLabel(master, treeId, 0, i).toString('hex'));
    seen.add(deriveAllKey(master, treeId, 0).toString('hex'));
    for (let i = 1; i < 64; i++) seen.add(deriveRootLabel(master, treeId, 1, i).toString('hex'));
    seen.add(deriveAllKey(master, treeId, 1).toString('hex'));
    seen.add(deriveRootLabel(master, Buffer.alloc(16, 2), 0, 1).toString('hex'));
    expect(seen.size).toBe(63 * 2 + 2 + 1);
    expect(deriveRootLabel(master, treeId, 0, 1).length).toBe(16);
    expect(deriveAllKey(master, treeId, 0).length).toBe(16);
  });
});
