/**
 * Relay of messages destined to a Service Group (docs/protocol.md rule R1; ciphertext only): admission of a
 * group frame from a GW, the relay marks (highest counter per sender instance, the replay anchors given with a
 * key), fan-out to the GWs that serve members, and the server's own messages to an SG.
 */
import { type CpnsError, ErrorCode } from '../core/errors.js';
import { type GroupHeader, readHeader } from '../core/group/header.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../core/group/receiver.js';
import { bytesToUuid, pneIdentityOf } from '../core/ids.js';
import { codeOf, fail, uuidToBytes } from '../protocol/control.js';
import { encodeFrame } from '../transport/framing.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { type GwConn, type ServerState, type SgState, servingGw } from './state.js';

export function relayGroupFrame(srv: ServerState, conn: GwConn, frame: Buffer): void {
  let sender: string | undefined;
  try {
    if (!conn.registered) fail(ErrorCode.UNEXPECTED_MESSAGE);
    const payload = frame.subarray(1);
    if (payload.length > DEFAULT_MAX_MESSAGE_BYTES) fail(ErrorCode.TOO_LARGE, 'message');
    const h = readHeader(payload);
    const sgId = bytesToUuid(h.sgId);
    const st = srv.groups.get(sgId);
    if (!st) fail(ErrorCode.NOT_FOUND, 'sgId');
    sender = pneIdentityOf(h.senderId);
    // Attribution: the GW checked the sender against the PNE's certificate; we check the PNE is its own.
    if (srv.pneAt.get(sender) !== conn.id || !conn.attached.has(sender))
      fail(ErrorCode.FORBIDDEN, 'senderId');
    if (!st.members.has(sender)) fail(ErrorCode.NOT_MEMBER, 'senderId');
    if (h.epoch !== st.epoch) {
      if (h.epoch > st.epoch) fail(ErrorCode.UNKNOWN_EPOCH, 'epoch');
      if (!(h.epoch === st.prevEpoch && Date.now() <= st.prevUntil)) fail(ErrorCode.EXPIRED_EPOCH, 'epoch');
    }
    mark(srv, sgId, h);
    fanOut(srv, st, frame, conn.id);
    srv.metrics.relayed(payload.length);
  } catch (e) {
    srv.metrics.decryptFailure(codeOf(e));
    // Names the sender so that its GW can tell the PNE (issue #8 §7); the GW learns nothing new by it.
    conn.control.sendError(codeOf(e), undefined, (e as CpnsError).field, sender);
  }
}

/** Relay high-water mark of a sender instance (replay anchors); refuses a counter already relayed. */
export function mark(srv: ServerState, sgId: string, h: GroupHeader): void {
  const mk = `${sgId}|${h.epoch}`;
  const sk = `${h.senderId.toString('hex')}|${h.instance.toString('hex')}`;
  let marks = srv.marks.get(mk);
  const prev = marks?.get(sk);
  if (prev !== undefined && h.counter <= prev) fail(ErrorCode.REPLAY, 'counter');
  if (!marks) {
    marks = new Map();
    srv.marks.set(mk, marks);
  }
  marks.set(sk, h.counter);
  srv.dirtyMarks.add(`${mk}|${sk}`);
}

/** Send a group frame to every GW with members of the SG, except the one it came from. */
export function fanOut(srv: ServerState, st: SgState, frame: Buffer, exceptGw: string | undefined): void {
  const out = new Set<string>();
  for (const m of st.members) {
    const gw = servingGw(srv, m);
    if (gw !== undefined && gw !== exceptGw) out.add(gw);
  }
  for (const gw of out) srv.gwConns.get(gw)?.session.send(frame);
}

export function anchors(
  srv: ServerState,
  sgId: string,
  epoch: number,
): { sender: Uint8Array; instance: Uint8Array; counter: number }[] | undefined {
  const m = srv.marks.get(`${sgId}|${epoch}`);
  if (!m || m.size === 0) return undefined;
  const out: { sender: Uint8Array; instance: Uint8Array; counter: number }[] = [];
  for (const [k, counter] of m) {
    const [s, i] = k.split('|') as [string, string];
    out.push({ sender: Buffer.from(s, 'hex'), instance: Buffer.from(i, 'hex'), counter });
    if (out.length >= SERVER_DEFAULTS.maxAnchors) break;
  }
  return out;
}

export async function flushMarks(srv: ServerState): Promise<void> {
  if (srv.dirtyMarks.size === 0) return;
  const keys = [...srv.dirtyMarks];
  srv.dirtyMarks.clear();
  for (const k of keys) {
    const [sgId, epochS, sender, instance] = k.split('|') as [string, string, string, string];
    const counter = srv.marks.get(`${sgId}|${epochS}`)?.get(`${sender}|${instance}`);
    if (counter === undefined || !srv.groups.has(sgId)) continue;
    await srv.store.upsertRelayMark({ sgId, epoch: Number(epochS), sender, instance, counter });
  }
}

/**
 * A message destined to the Service Group from the CPNS Server itself (seed §5.3.3: the Group Key MAC shows
 * a receiver the message comes "from SG member PNE or CPNS Server"). Protected with the current Group Key
 * under the nil sender id; returns the protected bytes.
 */
export async function sendToGroup(
  srv: ServerState,
  sgId: string,
  data: Uint8Array | string,
): Promise<Buffer> {
  const st = srv.groups.get(sgId);
  if (!st) fail(ErrorCode.NOT_FOUND, 'sgId');
  // Members of a source-authenticated SG accept only messages signed by a member.
  if (st.sourceAuth) fail(ErrorCode.SIGNATURE_REQUIRED, 'sgId');
  const k = await srv.store.getCurrentKey(sgId);
  if (!k) fail(ErrorCode.NOT_FOUND, 'sgId');
  const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const msg = srv.sender.protect(uuidToBytes(sgId), { epoch: k.epoch, key: k.key, suite: st.suite }, body);
  k.key.fill(0);
  mark(srv, sgId, readHeader(msg));
  fanOut(srv, st, encodeFrame({ kind: 'group', payload: msg }), undefined);
  srv.metrics.relayed(msg.length);
  return msg;
}
