/**
 * Service Group messages (frame 0x05): protect and send, open what the GW relays. A message under an epoch not
 * held yet (UNKNOWN_EPOCH) is kept (at most MAX_PENDING per SG) and the current key fetched over the tunnel, once
 * at a time per SG; the kept messages are retried once when a key of that SG is installed.
 */
import { CpnsError, ErrorCode } from '../core/errors.js';
import { OFF } from '../core/group/header.js';
import type { OpenedMessage, SenderInstance } from '../core/group/receiver.js';
import { bytesToUuid, codeOf, senderIdentity, uuidToBytes } from '../protocol/control.js';
import { encodeGroupFrame } from '../transport/framing.js';
import { MAX_PENDING } from './defaults.js';
import { fetchKey } from './groups.js';
import { liveLink, type PneState } from './state.js';
import type { GroupMessageEvent } from './types.js';

/**
 * Protects `data` with the current Group Key of the SG and sends it to the GW; returns the protected message
 * (a view into the frame handed to the session: header, ciphertext and tag are copied once, into the frame).
 */
export function send(st: PneState, sgId: string, data: Uint8Array | string): Buffer {
  // The id bytes of the SG sent to last: a sender usually sends several messages to one SG in a row.
  const c = st.sendTo;
  if (c.sgId !== sgId) {
    c.bytes = uuidToBytes(sgId);
    c.sgId = sgId;
  }
  const sg = c.bytes;
  const gk = st.ring.current(sg);
  if (!gk) throw new CpnsError(ErrorCode.UNKNOWN_GROUP, 'no Group Key held for this Service Group', 'sgId');
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const p = st.sender.protectParts(sg, gk, bytes, { sign: st.ring.sourceAuth(sg) });
  const session = liveLink(st)?.session ?? null;
  if (!session?.isOpen) throw new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'not connected to the GW');
  const frame = encodeGroupFrame(
    p.signature ? [p.header, p.ciphertext, p.tag, p.signature] : [p.header, p.ciphertext, p.tag],
  );
  session.send(frame);
  return frame.subarray(1);
}

/** Tries to open a captured protected message with the keys this PNE holds (throws CpnsError on failure). */
export function open(st: PneState, raw: Uint8Array): OpenedMessage {
  return st.receiver.open(Buffer.from(raw));
}

/** A group frame from the GW: 'message' when it opens, 'drop' {code, sgId?} when not. */
export function onGroupMessage(st: PneState, payload: Buffer, retried = false): void {
  let opened: OpenedMessage;
  try {
    opened = st.receiver.open(payload);
  } catch (e) {
    const code = codeOf(e);
    const sgId =
      payload.length >= OFF.sgId + 16 ? bytesToUuid(payload.subarray(OFF.sgId, OFF.sgId + 16)) : undefined;
    st.events.emit('drop', { code, sgId });
    if (code === ErrorCode.UNKNOWN_EPOCH && sgId !== undefined && !retried) {
      const list = st.pending.get(sgId) ?? [];
      // A copy: the payload is a view into the session's read buffer, which a kept message must not pin.
      if (list.length < MAX_PENDING) list.push(Buffer.from(payload));
      st.pending.set(sgId, list);
      fetchPending(st, sgId);
    }
    return;
  }
  const ids = idsOf(st, opened.from);
  const ev: GroupMessageEvent = {
    sgId: ids.sgId,
    sender: ids.sender,
    epoch: opened.header.epoch,
    plaintext: opened.plaintext,
  };
  st.events.emit('message', ev);
}

/** The text ids of a sender instance, formatted once per instance (not per message). */
function idsOf(st: PneState, from: SenderInstance): { readonly sgId: string; readonly sender: string } {
  const c = st.senderIds;
  if (c.last === from) return c.ids;
  let ids = c.byInstance.get(from);
  if (!ids) {
    ids = { sgId: bytesToUuid(from.sgId), sender: senderIdentity(from.senderId) };
    c.byInstance.set(from, ids);
  }
  c.last = from;
  c.ids = ids;
  return ids;
}

/** A key of `sgId` was installed: retry (once) the messages kept for it. */
export function flushPending(st: PneState, sgId: string): void {
  const pending = st.pending.get(sgId);
  if (pending) {
    st.pending.delete(sgId);
    for (const p of pending) onGroupMessage(st, p, true);
  }
}

/** UNKNOWN_EPOCH: fetch the current key over the tunnel (once at a time per SG). */
function fetchPending(st: PneState, sgId: string): void {
  if (st.fetching.has(sgId)) return;
  st.fetching.add(sgId);
  fetchKey(st, sgId)
    .catch((e) => {
      st.log.debug({ code: codeOf(e), sgId }, 'key fetch failed');
      st.pending.delete(sgId);
    })
    .finally(() => st.fetching.delete(sgId));
}
