/**
 * Broadcast Group Key delivery (seed §5.3.3, docs/broadcast.md): when the GW sends this PNE its GKDK
 * (`gkdk.issue`), the PNE listens on the broadcast media it supports and installs the Group Key updates it can
 * open for the SGs it already holds; datagrams it cannot open are counted by error code (`broadcastDrops`).
 */
import type { MessageOf } from '../core/codec/index.js';
import { activationTime } from '../core/group/activation.js';
import { codeOf, uuidToBytes } from '../protocol/control.js';
import { type BroadcastKey, BroadcastKeyListener } from '../protocol/pne-listener.js';
import { PNE_DEFAULTS } from './defaults.js';
import { currentEpoch } from './keys.js';
import { flushPending } from './messages.js';
import { linkClosed, liveLink, type PneState } from './state.js';

/**
 * The GW's GKDK for this PNE (on joining the PN, or after a tree rebuild): listen on the media named in it that
 * this PNE supports (reopening only if they changed), install the GKDK and ack it. A rebuilt tree's GKDK
 * replaces the old one, which can no longer open new broadcasts (WRONG_TREE).
 */
export function onGkdkIssue(st: PneState, msg: MessageOf<'gkdk.issue'>): void {
  if (st.opts.noBroadcast) return;
  st.opts.onGkdkIssue?.(msg);
  const supported = st.opts.media ?? [...PNE_DEFAULTS.media];
  const wanted = msg.media.filter((m) => supported.includes(m.name));
  const b = st.broadcast;
  b.chain = b.chain.then(async () => {
    if (linkClosed(st)) return;
    try {
      const have = b.listener?.mediaNames.slice().sort().join(',');
      if (
        b.listener === undefined ||
        have !==
          wanted
            .map((m) => m.name)
            .sort()
            .join(',')
      ) {
        await b.listener?.close();
        b.listener = await BroadcastKeyListener.open({
          media: wanted,
          supported,
          currentEpoch: (sgId) => currentEpoch(st, sgId),
          ...(st.opts.broadcastInterface ? { interfaceAddress: st.opts.broadcastInterface } : {}),
          ...(st.opts.dropBroadcast
            ? { filter: (d: Buffer, m: string) => !st.opts.dropBroadcast?.(d, m) }
            : {}),
        });
        b.listener.on('key', (k: BroadcastKey) => onBroadcastKey(st, k));
        b.listener.on('drop', (code: string) => countDrop(st, code));
      }
      b.listener.setGkdk(msg);
      if (b.listener.mediaNames.length === 0) return; // nothing to listen on: stay unicast-only
      liveLink(st)?.gw.send({ t: 'gkdk.ack', treeId: msg.treeId, treeVersion: msg.treeVersion });
      st.events.emit('gkdk', { treeId: msg.treeId, treeVersion: msg.treeVersion, leaf: msg.leaf });
    } catch (e) {
      st.log.warn({ code: codeOf(e) }, 'GKDK not installed: unicast delivery only');
    } finally {
      msg.gkdk.fill(0);
    }
  });
}

/** Waits for the GKDK work in progress, then stops listening (close). */
export async function closeBroadcast(st: PneState): Promise<void> {
  await st.broadcast.chain;
  const l = st.broadcast.listener;
  st.broadcast.listener = undefined;
  await l?.close();
}

function countDrop(st: PneState, code: string): void {
  const drops = st.broadcast.drops;
  drops.set(code, (drops.get(code) ?? 0) + 1);
  st.events.emit('broadcast-drop', { code });
}

/**
 * A Group Key opened from a broadcast datagram. Installed only for an SG this PNE already holds (the suite
 * comes from its current key; the first key of an SG always comes by unicast).
 *
 * Grace and activation as in the unicast key.deliver of the same update: the GW signs the update's reason,
 * `graceSec` (0 after a leave: the previous epoch stops at once; the periodic grace otherwise) and `activateIn`
 * into the datagram (wire v2, docs/broadcast.md), so a periodic switch by broadcast drops no message sent just
 * before it under the previous epoch.
 */
function onBroadcastKey(st: PneState, k: BroadcastKey): void {
  const sg = uuidToBytes(k.sgId);
  const cur = st.ring.current(sg);
  if (!cur) {
    k.groupKey.fill(0);
    countDrop(st, 'NOT_HELD');
    return;
  }
  let fresh = false;
  // The one activation rule (src/core/group/activation.ts); a datagram carries only the relative time.
  const activateAt = activationTime(k.activateIn, undefined, Date.now());
  try {
    fresh =
      activateAt !== undefined
        ? st.ring.stage(sg, k.epoch, k.groupKey, cur.suite, activateAt, { graceMs: k.graceSec * 1000 })
        : st.ring.install(sg, k.epoch, k.groupKey, cur.suite, { graceMs: k.graceSec * 1000 });
  } catch (e) {
    st.log.warn({ code: codeOf(e) }, 'broadcast key not installed');
    return;
  } finally {
    k.groupKey.fill(0);
  }
  if (!fresh) return;
  try {
    liveLink(st)?.gw.send({ t: 'key.ack', sgId: k.sgId, epoch: k.epoch, method: 'broadcast' });
  } catch {}
  st.log.debug({ sgId: k.sgId, epoch: k.epoch, medium: k.medium }, 'group key installed (broadcast)');
  st.events.emit('key', {
    sgId: k.sgId,
    epoch: k.epoch,
    reason: k.reason,
    method: 'broadcast',
    medium: k.medium,
    ...(activateAt !== undefined ? { activateAt } : {}),
  });
  flushPending(st, k.sgId);
}
