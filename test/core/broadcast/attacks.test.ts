import { describe, expect, it } from 'vitest';
import {
  buildBroadcast,
  findSubsetIndex,
  type Gkdk,
  HEADER_BYTES,
  openBroadcast,
  parseBroadcast,
  SdTree,
  signedMessage,
} from '../../../src/core/broadcast/index.js';
import { deriveKek } from '../../../src/core/broadcast/kek.js';
import { subsetKeyFromGkdkLabels } from '../../../src/core/broadcast/labels.js';
import { aesG3 } from '../../../src/core/broadcast/prg.js';
import { ed25519Sign } from '../../../src/core/crypto/ed25519.js';
import { aesKeyWrap } from '../../../src/core/crypto/keywrap.js';
import { type CpnsError, isCpnsError } from '../../../src/core/errors.js';
import { GW_KEYS, groupKey, makePn, OTHER_KEYS, SG_ID } from './helpers.js';

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isCpnsError(e)) return (e as CpnsError).code;
    return `non-CpnsError: ${String(e)}`;
  }
  return 'no error';
}

const SG_B = Buffer.alloc(16, 0xbb);
const pn = makePn(16, 12, [3]);
const members = ['p0', 'p1', 'p2', 'p4', 'p5', 'p8', 'p9', 'p10'];
const gk = groupKey(9);
const build = (over: Partial<Parameters<typeof buildBroadcast>[0]> = {}) =>
  buildBroadcast({
    gwSigningKey: GW_KEYS.privateKey,
    tree: pn.tree,
    sgId: SG_ID,
    epoch: 9,
    groupKey: gk,
    memberPneIds: members,
    ...over,
  });
const open = (d: Uint8Array, id: string, extra: { currentEpoch?: number; gkdk?: Gkdk } = {}) =>
  openBroadcast(d, { gkdk: extra.gkdk ?? pn.gkdk.get(id)!, gwPublicKey: GW_KEYS.publicKey, ...extra });

/** Re-sign a body with any key (the GW itself when `key` is the GW key: models a GW bug or signing oracle). */
function resign(body: Buffer, key = GW_KEYS.privateKey): Buffer {
  return Buffer.concat([body, ed25519Sign(key, signedMessage(body))]);
}

describe('authenticity (reference §11 item 7)', () => {
  const [d] = build();

  it('sanity: members open', () => {
    for (const id of members) expect(open(d!, id).groupKey.equals(gk)).toBe(true);
  });

  it('a member forging an entry for its co-members, signed with its own key → BAD_SIGNATURE', () => {
    // p0 knows the subset key of its entry and wraps an attacker-chosen GK under the right KEK.
    const parsed = parseBroadcast(d!);
    const gkdk = pn.gkdk.get('p0')!;
    const idx = parsed.entries.findIndex((e) => {
      try {
        subsetKeyFromGkdkLabels(aesG3, 4, gkdk.labels, gkdk.leaf, e.subset.i, e.subset.j);
        return true;
      } catch {
        return false;
      }
    });
    const e = parsed.entries[idx]!;
    const L = subsetKeyFromGkdkLabels(aesG3, 4, gkdk.labels, gkdk.leaf, e.subset.i, e.subset.j);
    const forged = aesKeyWrap(deriveKek(L, parsed, e.subsetId), Buffer.alloc(32, 0xee));
    const body = Buffer.from(parsed.body);
    forged.copy(body, HEADER_BYTES + idx * 43 + 3);
    const bad = resign(body, OTHER_KEYS.privateKey);
    // co-member p1 shares the subset
    expect(codeOf(() => open(bad, 'p1'))).toBe('BAD_SIGNATURE');
    // without a signature check the forgery would have worked: the GW-signed version opens to the forged key
    expect(open(resign(body), 'p1').groupKey.equals(Buffer.alloc(32, 0xee))).toBe(true);
  });

  it('any single-bit change anywhere is rejected with a typed error (signed region → BAD_SIGNATURE)', () => {
    const src = d!;
    for (let pos = 0; pos < src.length; pos++) {
      for (const bit of [0x01, 0x80]) {
        const m = Buffer.from(src);
        m[pos]! ^= bit;
        const code = codeOf(() => open(m, 'p0'));
        if (pos === 0) expect(code).toBe('UNSUPPORTED_VERSION');
        else if (pos === 62 || pos === 63) expect(['MALFORMED', 'TOO_LARGE']).toContain(code);
        else expect(code).toBe('BAD_SIGNATURE');
      }
    }
  });

  it("another GW's datagram, verified with this PNE's GW key → BAD_SIGNATURE", () => {
    const other = SdTree.create({ gwId: Buffer.alloc(16, 9), capacity: 16 });
    other.assignLeaf('x');
    const [od] = buildBroadcast({
      gwSigningKey: OTHER_KEYS.privateKey,
      tree: other,
      sgId: SG_ID,
      epoch: 9,
      groupKey: gk,
      memberPneIds: ['x'],
    });
    expect(codeOf(() => open(od!, 'p0'))).toBe('BAD_SIGNATURE');
  });
});

describe('binding to GW, tree, epoch (WRONG_TREE, STALE_EPOCH)', () => {
  it('same GW key but another GW id → WRONG_TREE', () => {
    const t = SdTree.create({ gwId: Buffer.alloc(16, 1), capacity: 16 });
    t.assignLeaf('p0');
    const [d] = build({ tree: t, memberPneIds: ['p0'] });
    expect(codeOf(() => open(d!, 'p0'))).toBe('WRONG_TREE');
  });

  it('another tree version of the same GW (rebuild) → WRONG_TREE for the old GKDK', () => {
    const rebuilt = pn.tree.rebuild();
    expect(rebuilt.treeVersion).toBe(pn.tree.treeVersion + 1);
    const [d] = build({ tree: rebuilt });
    for (const id of members) expect(codeOf(() => open(d!, id))).toBe('WRONG_TREE');
    // new GKDKs open it
    for (const id of members) {
      expect(open(d!, id, { gkdk: rebuilt.gkdkFor(id) }).groupKey.equals(gk)).toBe(true);
    }
    // an old GKDK relabelled with the new version still cannot derive anything: labels are independent
    for (const id of members) {
      const old = pn.gkdk.get(id)!;
      const doctored: Gkdk = { ...old, treeVersion: rebuilt.treeVersion, leaf: rebuilt.leafOf(id)! };
      expect(codeOf(() => open(d!, id, { gkdk: doctored }))).toBe('UNWRAP_FAILED');
    }
    // the departed p3 gets no leaf in the new tree at all
    expect(rebuilt.leafOf('p3')).toBeUndefined();
  });

  it('replayed older or equal epoch → STALE_EPOCH; newer → accepted', () => {
    const [d] = build({ epoch: 9 });
    expect(codeOf(() => open(d!, 'p0', { currentEpoch: 9 }))).toBe('STALE_EPOCH');
    expect(codeOf(() => open(d!, 'p0', { currentEpoch: 10 }))).toBe('STALE_EPOCH');
    expect(open(d!, 'p0', { currentEpoch: 8 }).epoch).toBe(9);
    expect(open(d!, 'p0').epoch).toBe(9);
  });
});

describe('cut and paste of entries, GW-signed (reference §10 context binding) → UNWRAP_FAILED', () => {
  const [a] = build({ sgId: SG_ID, epoch: 9 });
  const pa = parseBroadcast(a!);

  it.each([
    ['another SG', { sgId: SG_B }],
    ['another epoch', { epoch: 10 }],
  ] as const)('entries moved to %s', (_, over) => {
    const [b] = build(over);
    const body = Buffer.from(parseBroadcast(b!).body);
    pa.body.copy(body, HEADER_BYTES, HEADER_BYTES); // same cover (same members): paste A's entries over B's
    const pasted = resign(body);
    for (const id of members) expect(codeOf(() => open(pasted, id))).toBe('UNWRAP_FAILED');
  });

  it('wrapped keys swapped between subsets', () => {
    expect(pa.entries.length).toBeGreaterThanOrEqual(2);
    const body = Buffer.from(pa.body);
    pa.entries[1]!.wrappedKey.copy(body, HEADER_BYTES + 3);
    pa.entries[0]!.wrappedKey.copy(body, HEADER_BYTES + 43 + 3);
    const swapped = resign(body);
    const subsets = pa.entries.map((e) => e.subset);
    for (const id of members) {
      const k = findSubsetIndex(subsets, 4, pn.gkdk.get(id)!.leaf);
      if (k <= 1) expect(codeOf(() => open(swapped, id))).toBe('UNWRAP_FAILED');
      else expect(open(swapped, id).groupKey.equals(gk)).toBe(true);
    }
  });

  it('entries moved to another GW id signed by the same key', () => {
    const t = SdTree.restore(
      (() => {
        const s = pn.tree.serialize();
        Buffer.alloc(16, 0x77).copy(s, 1);
        return s;
      })(),
    );
    const [b] = build({ tree: t });
    const body = Buffer.from(parseBroadcast(b!).body);
    pa.body.copy(body, HEADER_BYTES, HEADER_BYTES);
    // PNEs holding a GKDK for that GW id (same labels: only the GW id differs) still fail the unwrap
    for (const id of members) {
      const g: Gkdk = { ...pn.gkdk.get(id)!, gwId: Buffer.alloc(16, 0x77) };
      expect(codeOf(() => open(resign(body), id, { gkdk: g }))).toBe('UNWRAP_FAILED');
    }
  });
});

describe('departed PNEs (reference §11 items 1–3)', () => {
  it('a released PNE keeps its GKDK but is never in a later cover, and its leaf is never reissued', () => {
    const p = makePn(8, 4);
    expect(p.tree.releaseLeaf('p2')).toBe(true);
    const leaf = p.tree.assignLeaf('newcomer');
    expect(leaf).toBe(4);
    p.gkdk.set('newcomer', p.tree.gkdkFor('newcomer'));
    const [d] = buildBroadcast({
      gwSigningKey: GW_KEYS.privateKey,
      tree: p.tree,
      sgId: SG_ID,
      epoch: 1,
      groupKey: gk,
      memberPneIds: ['p0', 'p1', 'p3', 'newcomer'],
    });
    expect(codeOf(() => openBroadcast(d!, { gkdk: p.gkdk.get('p2')!, gwPublicKey: GW_KEYS.publicKey }))).toBe(
      'NOT_IN_COVER',
    );
    expect(
      openBroadcast(d!, { gkdk: p.gkdk.get('newcomer')!, gwPublicKey: GW_KEYS.publicKey }).groupKey,
    ).toEqual(gk);
  });
});
