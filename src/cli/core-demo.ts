import { randomBytes, randomUUID } from 'node:crypto';
import { Suite } from '../core/crypto/aead.js';
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

  // delete: keys erased everywhere
  for (const m of members) m.ring.remove(sgId);
  log(`[server] SG deleted -> Group Key erased; watch: ${tryOpen(watch, m2)}`);
}
