/**
 * Group Keys held by this PNE: unicast `key.deliver` (from the GW, or over the tunnel in answer to key.fetch)
 * installed now or staged ahead of its activation by the one activation rule (src/core/group/activation.ts), the
 * signing keys of source-authenticated SGs (`sg.signers`), and forgetting an SG (left, deleted, removed).
 */
import type { MessageOf } from '../core/codec/index.js';
import { Suite } from '../core/crypto/aead.js';
import { ed25519PublicFromRaw } from '../core/crypto/ed25519.js';
import { activationTime } from '../core/group/activation.js';
import { codeOf, uuidOf, uuidToBytes } from '../protocol/control.js';
import { flushPending } from './messages.js';
import { liveLink, type PneState } from './state.js';
import type { WireSuite } from './types.js';

const SUITE_OF: Record<WireSuite, Suite> = {
  'aes-256-gcm': Suite.AES_256_GCM,
  'chacha20-poly1305': Suite.CHACHA20_POLY1305,
};

export function currentEpoch(st: PneState, sgId: string): number | undefined {
  return st.ring.current(uuidToBytes(sgId))?.epoch;
}

/** Epoch staged for a later activation (periodic update distributed ahead), if any. */
export function stagedEpoch(st: PneState, sgId: string): number | undefined {
  return st.ring.staged(uuidToBytes(sgId));
}

/** A unicast Group Key delivery: install (or stage), ack to the GW, emit 'key' if new, retry pending messages. */
export function installKey(st: PneState, msg: MessageOf<'key.deliver'>): void {
  const sg = uuidToBytes(msg.sgId);
  let fresh = false;
  // A key distributed ahead of its activation: relative activation wins (converted to this device's clock,
  // which need not be synchronised); the absolute time is used only when no relative one is given.
  const now = Date.now();
  const activateAt = activationTime(msg.activateIn, msg.activateAt, now);
  const staged = activateAt !== undefined && activateAt > now && st.ring.has(sg);
  try {
    fresh = staged
      ? st.ring.stage(sg, msg.epoch, msg.key, SUITE_OF[msg.suite], activateAt, {
          graceMs: msg.graceSec * 1000,
        })
      : st.ring.install(sg, msg.epoch, msg.key, SUITE_OF[msg.suite], {
          graceMs: msg.graceSec * 1000,
          sourceAuth: msg.sourceAuth ?? false,
        });
    for (const a of msg.senderAnchors ?? []) {
      st.receiver.anchor(sg, msg.epoch, a.sender, a.instance, a.counter);
    }
  } catch (e) {
    st.log.warn({ code: codeOf(e) }, 'key not installed');
    return;
  } finally {
    msg.key.fill(0);
  }
  try {
    liveLink(st)?.gw.send({ t: 'key.ack', sgId: msg.sgId, epoch: msg.epoch });
  } catch {}
  if (fresh) {
    st.log.debug({ sgId: msg.sgId, epoch: msg.epoch, reason: msg.reason, staged }, 'group key installed');
    st.events.emit('key', {
      sgId: msg.sgId,
      epoch: msg.epoch,
      reason: msg.reason,
      method: 'unicast',
      ...(staged ? { activateAt } : {}),
    });
  }
  flushPending(st, msg.sgId);
}

/** The signing keys of the members of a source-authenticated SG (an invalid one is ignored). */
export function installSigners(st: PneState, msg: MessageOf<'sg.signers'>): void {
  for (const sgn of msg.signers) {
    try {
      st.signers.set(uuidToBytes(uuidOf(sgn.pneId)).toString('hex'), ed25519PublicFromRaw(sgn.key));
    } catch {
      st.log.warn('invalid signing key ignored');
    }
  }
}

/** Drops every key, sender state and pending message of an SG. */
export function forget(st: PneState, sgId: string): void {
  const sg = uuidToBytes(sgId);
  st.ring.remove(sg);
  st.sender.forget(sg);
  st.pending.delete(sgId);
}

/** `sg.deleted`: the SG is gone. */
export function groupDeleted(st: PneState, msg: MessageOf<'sg.deleted'>): void {
  forget(st, msg.sgId);
  st.events.emit('group-deleted', { sgId: msg.sgId });
}

/** `sg.remove` over the tunnel: this PNE was removed from the SG (a removal of another PNE is ignored). */
export function removed(st: PneState, msg: MessageOf<'sg.remove'>): void {
  if (msg.pneId !== st.identity) return;
  forget(st, msg.sgId);
  st.events.emit('removed', { sgId: msg.sgId });
}
