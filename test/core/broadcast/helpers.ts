import { type Gkdk, SdTree } from '../../../src/core/broadcast/index.js';
import { ed25519PrivateFromSeed } from '../../../src/core/crypto/ed25519.js';

export const GW_ID = Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex');
export const SG_ID = Buffer.from('5a5a5a5a000011112222333344445555', 'hex');
export const GW_KEYS = ed25519PrivateFromSeed(Buffer.alloc(32, 0x42));
export const OTHER_KEYS = ed25519PrivateFromSeed(Buffer.alloc(32, 0x43));

export interface Pn {
  tree: SdTree;
  gkdk: Map<string, Gkdk>;
}

/** A PN with `assigned` PNEs p0.. on leaves 0.., then the listed ones released (they keep their GKDKs). */
export function makePn(capacity: number, assigned: number, released: readonly number[] = []): Pn {
  const tree = SdTree.create({ gwId: GW_ID, capacity });
  const gkdk = new Map<string, Gkdk>();
  for (let k = 0; k < assigned; k++) {
    tree.assignLeaf(`p${k}`);
    gkdk.set(`p${k}`, tree.gkdkFor(`p${k}`));
  }
  for (const k of released) tree.releaseLeaf(`p${k}`);
  return { tree, gkdk };
}

export function groupKey(seed: number): Buffer {
  return Buffer.alloc(32, seed & 0xff);
}
