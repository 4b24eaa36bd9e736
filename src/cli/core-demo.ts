import { randomBytes, randomUUID } from 'node:crypto';
import { buildBroadcast, openBroadcast, SdTree } from '../core/broadcast/index.js';
import { Suite } from '../core/crypto/aead.js';
import { ed25519Generate } from '../core/crypto/ed25519.js';
import { CpnsError } from '../core/errors.js';
import { GroupKeyRing, GroupReceiver, GroupSender } from '../core/group/index.js';

export interface DemoOptions {
  readonly log: (line: string) => void;
}

const uuidBytes = (u: string) => Buffer.from(u.replace(/-/g, ''), 'hex');

interface DemoPne {
  readonly name: string;
  readonly id: Buffer;
  readonly ring: GroupKeyRing;
  readonly rx: GroupReceiver;
  readonly tx: GroupSender;
}

function pne(name: string): DemoPne {
  const id = uuidBytes(randomUUID());
  const ring = new GroupKeyRing();
  return { name, id, ring, rx: new GroupReceiver({ keyRing: ring }), tx: new GroupSender({ senderId: id }) };
}

function tryOpen(p: DemoPne, msg: Buffer): string {
  try {
    return `reads "${p.rx.open(msg).plaintext.toString()}"`;
  } catch (e) {
    if (e instanceof CpnsError) return `cannot read (${e.code})`;
    throw e;
  }
}

/**
 * The core demo: Group Key lifecycle of one Service Group, in-process (no network yet). It exercises exactly
 * what the seed asks: messages to the SG encrypted and MAC'd with the Group Key; key created with the SG,
 * updated when a member leaves; the leaver cannot read what follows.
 */
export async function runCoreDemo({ log }: DemoOptions): Promise<void> {
  const sgId = uuidBytes(randomUUID());
  const members = [pne('watch'), pne('tv'), pne('headset')];
  const outsider = pne('game-pad (same PN, not a member)');
  log(`CPNS core demo — Service Group ${sgId.toString('hex')}`);

  // create: the server creates the Group Key with the SG (epoch 1) and delivers it to the members
  let epoch = 1;
  let gk = randomBytes(32);
  for (const m of members) m.ring.install(sgId, epoch, gk, Suite.AES_256_GCM);
  log(`[server] create Group Key epoch ${epoch}; delivered to ${members.map((m) => m.name).join(', ')}`);

  const [watch, tv, headset] = members as [DemoPne, DemoPne, DemoPne];
  const m1 = watch.tx.protect(sgId, watch.ring.current(sgId)!, Buffer.from('match starts at 20:00'));
  log(`[watch] sends ${m1.length} bytes to the SG (header 56 B + ciphertext + 16 B tag)`);
  for (const p of [tv, headset, outsider]) log(`  ${p.name}: ${tryOpen(p, m1)}`);
  log(`  tv again (replayed copy): ${tryOpen(tv, m1)}`);
  const forged = watch.tx.protect(sgId, watch.ring.current(sgId)!, Buffer.from('match moved to 21:00'));
  forged[forged.length - 20]! ^= 1;
  log(`  headset, one bit flipped in transit: ${tryOpen(headset, forged)}`);

  // update on leave: the headset leaves; new epoch, no grace for the old key
  log('[server] headset leaves the SG -> update Group Key');
  epoch += 1;
  gk = randomBytes(32);
  for (const m of [watch, tv]) m.ring.install(sgId, epoch, gk, Suite.AES_256_GCM, { graceMs: 0 });
  log(`[server] epoch ${epoch} delivered to watch, tv (not to headset)`);
  const m2 = tv.tx.protect(sgId, tv.ring.current(sgId)!, Buffer.from('new score: 3-1'));
  for (const p of [watch, headset, outsider]) log(`  ${p.name}: ${tryOpen(p, m2)}`);
  const injected = headset.tx.protect(sgId, headset.ring.current(sgId)!, Buffer.from('fake score'));
  log(`  headset injects under its old key -> tv: ${tryOpen(tv, injected)}`);

  // broadcast delivery (GKEK/GKDK): the PN GW broadcasts the next Group Key so only SG members can unwrap it
  log('[pn-gw] broadcast delivery of the next Group Key (Subset-Difference GKEK over a 16-leaf tree)');
  const gw = ed25519Generate();
  const tree = SdTree.create({ gwId: uuidBytes(randomUUID()), capacity: 16 });
  const pn = ['watch', 'tv', 'headset', 'game-pad', 'camera', 'speaker'];
  for (const name of pn) tree.assignLeaf(name);
  const gkdks = new Map(pn.map((name) => [name, tree.gkdkFor(name)]));
  tree.releaseLeaf('camera');
  log(
    '  GKDKs issued to 6 PNEs of the PN; the camera then left the PN (its leaf is spent, it keeps its GKDK)',
  );
  epoch += 1;
  gk = randomBytes(32);
  const datagrams = buildBroadcast({
    gwSigningKey: gw.privateKey,
    tree,
    sgId,
    epoch,
    groupKey: gk,
    memberPneIds: ['watch', 'tv'],
  });
  log(
    `  epoch ${epoch}: ${datagrams.length} signed datagram(s), ${datagrams[0]!.length} bytes, members watch, tv`,
  );
  for (const [name, gkdk] of gkdks) {
    let result: string;
    try {
      const opened = openBroadcast(datagrams[0]!, {
        gkdk,
        gwPublicKey: gw.publicKey,
        currentEpoch: epoch - 1,
      });
      result = opened.groupKey.equals(gk) ? `unwraps the Group Key of epoch ${opened.epoch}` : 'WRONG KEY';
    } catch (e) {
      if (!(e instanceof CpnsError)) throw e;
      result = `cannot unwrap (${e.code})`;
    }
    log(`  ${name.padEnd(9)} ${result}`);
  }

  // delete: keys erased everywhere
  for (const m of members) m.ring.remove(sgId);
  log(`[server] SG deleted -> Group Key erased; watch: ${tryOpen(watch, m2)}`);
}
