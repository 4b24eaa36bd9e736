/**
 * Relay of messages destined to a Service Group (docs/protocol.md rule R1; ciphertext only): admission of a
 * group frame from a GW (the rule itself is `admitRelay`, decisions.ts), the relay marks (highest counter per
 * sender instance, the replay anchors given with a key), fan-out to the GWs that serve members, and the server's
 * own messages to an SG.
 */
import { type CpnsError, ErrorCode } from '../core/errors.js';
import { type GroupHeader, readHeader } from '../core/group/header.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../core/group/receiver.js';
import { bytesToUuid, LastHeaderBytes, pneIdentityOf } from '../core/ids.js';
import { codeOf, fail, uuidToBytes } from '../protocol/control.js';
import { encodeFrame } from '../transport/framing.js';
import { admitRelay, isReplay, provenAt, relayEnvelope, relayGws, SERVER_SENDER } from './decisions.js';
import { SERVER_DEFAULTS } from './defaults.js';
import type { GwConn, ServerState, SgState } from './state.js';

export function relayGroupFrame(srv: ServerState, conn: GwConn, frame: Buffer): void {
  let sender: string | undefined;
  try {
    const payload = frame.subarray(1);
    const envelope = relayEnvelope(conn.registered, payload.length, DEFAULT_MAX_MESSAGE_BYTES);
    if (envelope) fail(envelope.code, envelope.field);
    const h = readHeader(payload); // the header is checked once at this hop
    const ids = srv.relayIds.of(payload, h);
    const sgId = ids.sgId;
    const st = srv.groups.get(sgId);
    if (st) sender = ids.sender;
    // Attribution: the GW checked the sender against the PNE's certificate; we check the PNE is its own.
    const refusal = admitRelay({
      group: st,
      sender,
      senderProvenHere: sender !== undefined && provenAt(srv.pneAt, sender, conn.id, conn.attached),
      epoch: h.epoch,
      counter: h.counter,
      relayMark: srv.marks.get(ids.mk)?.get(ids.sk),
      now: Date.now(),
    });
    if (refusal) fail(refusal.code, refusal.field);
    setMarkAt(srv, ids, h.counter);
    fanOut(srv, st!, frame, conn.id); // admitted, so the SG exists
    toOtherNodes(srv, payload);
    srv.metrics.relayed(payload.length);
  } catch (e) {
    srv.metrics.relayRefused(codeOf(e));
    // Names the sender so that its GW can tell the PNE (error.pneId, docs/codec.md); the GW learns nothing new by it.
    conn.control.sendError(codeOf(e), undefined, (e as CpnsError).field, sender);
  }
}

/** In a cluster: the admitted message goes to the other nodes too, for the members behind the GWs they hold. */
function toOtherNodes(srv: ServerState, payload: Buffer): void {
  const c = srv.cluster;
  if (!c) return;
  try {
    c.bus.relay(c.nodeId, payload);
  } catch (e) {
    srv.log.warn({ code: codeOf(e) }, 'group message not relayed to the other nodes');
  }
}

/**
 * A group message another node admitted (docs/cluster.md "Relay across nodes"). That node proved the sender is
 * behind the GW it came from (rule A1); this node checks the rest of rule R1 against its own view and marks —
 * the SG, the sender's membership, the epoch, the counter against its relay mark — so a message replayed through
 * a GW of either node is fanned out at most once per node. Then to the GWs this node holds (never back to the
 * bus). A refusal is counted, never answered: there is no GW to tell.
 */
export function relayFromNode(srv: ServerState, data: Uint8Array): void {
  try {
    if (srv.closed) return;
    if (data.length > DEFAULT_MAX_MESSAGE_BYTES) fail(ErrorCode.TOO_LARGE, 'payload');
    const payload = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const h = readHeader(payload);
    const sgId = bytesToUuid(h.sgId);
    const st = srv.groups.get(sgId);
    const now = Date.now();
    const mark = relayMarkOf(srv, sgId, h);
    // The nil sender is the CPNS Server itself (sendToGroup on another node).
    const server = h.senderId.every((b) => b === 0);
    const refusal = admitRelay({
      group: st,
      sender: server ? SERVER_SENDER : st ? pneIdentityOf(h.senderId) : undefined,
      senderProvenHere: true,
      epoch: h.epoch,
      counter: h.counter,
      relayMark: mark,
      now,
    });
    if (refusal) fail(refusal.code, refusal.field);
    setMark(srv, sgId, h);
    fanOut(srv, st!, encodeFrame({ kind: 'group', payload }), undefined);
    srv.metrics.relayed(payload.length);
  } catch (e) {
    srv.metrics.relayRefused(codeOf(e));
  }
}

/**
 * The text a relayed header maps to, formatted once for a run of messages of one sender instance (header bytes
 * 4..48: epoch, SG, sender, instance): the SG id, the sender's PNE identity, and its relay-mark keys (`markKeys`).
 */
export class RelayIds {
  readonly #last = new LastHeaderBytes(4, 48);
  sgId = '';
  sender = '';
  mk = '';
  sk = '';

  /** `h` is the validated header of `msg`. */
  of(msg: Buffer, h: GroupHeader): this {
    if (this.#last.same(msg)) return this;
    try {
      this.sgId = bytesToUuid(h.sgId);
      this.sender = pneIdentityOf(h.senderId);
      const k = markKeys(this.sgId, h);
      this.mk = k.mk;
      this.sk = k.sk;
    } catch (e) {
      this.#last.forget();
      throw e;
    }
    return this;
  }
}

function markKeys(sgId: string, h: GroupHeader): { mk: string; sk: string } {
  return { mk: `${sgId}|${h.epoch}`, sk: `${h.senderId.toString('hex')}|${h.instance.toString('hex')}` };
}

/** The relay mark of the header's sender instance in its epoch, if any. */
function relayMarkOf(srv: ServerState, sgId: string, h: GroupHeader): number | undefined {
  const { mk, sk } = markKeys(sgId, h);
  return srv.marks.get(mk)?.get(sk);
}

function setMark(srv: ServerState, sgId: string, h: GroupHeader): void {
  setMarkAt(srv, markKeys(sgId, h), h.counter);
}

function setMarkAt(srv: ServerState, { mk, sk }: { mk: string; sk: string }, counter: number): void {
  let marks = srv.marks.get(mk);
  if (!marks) {
    marks = new Map();
    srv.marks.set(mk, marks);
  }
  marks.set(sk, counter);
  srv.dirtyMarks.add(`${mk}|${sk}`);
}

/** Relay high-water mark of a sender instance (replay anchors); refuses a counter already relayed. */
export function mark(srv: ServerState, sgId: string, h: GroupHeader): void {
  if (isReplay(h.counter, relayMarkOf(srv, sgId, h))) fail(ErrorCode.REPLAY, 'counter');
  setMark(srv, sgId, h);
}

/** Send a group frame to every GW with members of the SG, except the one it came from. */
export function fanOut(srv: ServerState, st: SgState, frame: Buffer, exceptGw: string | undefined): void {
  for (const gw of relayGws(st.members, srv, exceptGw)) srv.gwConns.get(gw)?.session.send(frame);
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
  toOtherNodes(srv, msg);
  srv.metrics.relayed(msg.length);
  return msg;
}
