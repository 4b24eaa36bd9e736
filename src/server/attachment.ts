/**
 * Where a PNE is (docs/protocol.md "Authorization", rules A1–A4): a GW's pne.attach is only a claim (A2); the
 * PNE's own tunnel through a GW session proves it is behind that GW (A1), and only then does that GW get the
 * PNE's keys (catch-up), signers and relay. A GW can give up (A3) or detach (A4) only a PNE proven behind it.
 */

import type { MessageOf } from '../core/codec/index.js';
import { ErrorCode } from '../core/errors.js';
import { fail } from '../protocol/control.js';
import { announce, published } from './announce.js';
import { provenAt } from './decisions.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { emit } from './events.js';
import { rekeyGroupsOf, sendCurrentKey } from './keys.js';
import { type GwConn, liveTunnel, type PneTunnel, type ServerState, withSg } from './state.js';

/**
 * pne.attach from a GW is a claim (rule A2): it carries the PNE's media and lets the GW learn at once that a PNE
 * is revoked or unknown, but it grants nothing. The PNE is attached here only when its own tunnel proves it
 * (`#proveAttach`).
 */
export async function pneAttach(srv: ServerState, conn: GwConn, msg: MessageOf<'pne.attach'>): Promise<void> {
  const pneId = msg.pneId;
  if (srv.revokedIds.has(pneId)) fail(ErrorCode.REVOKED, 'pneId');
  const idn = await srv.store.getIdentity(pneId);
  if (idn?.role !== 'pne') fail(ErrorCode.NOT_FOUND, 'pneId');
  if (idn.revokedAt !== null) fail(ErrorCode.REVOKED, 'pneId');
  const max = srv.opts.maxPnesPerGw ?? SERVER_DEFAULTS.maxPnesPerGw;
  if (!conn.claims.has(pneId) && conn.claims.size >= max) fail(ErrorCode.TOO_LARGE, 'pneId');
  const before = conn.claims.get(pneId);
  conn.claims.set(pneId, [...msg.media]);
  conn.control.sendOk(msg.id);
  // Already proven here (its tunnel came first): the media may have changed.
  if (provenAt(srv.pneAt, pneId, conn.id, conn.attached) && String(before) !== String(msg.media))
    await srv.store.attachPne(pneId, conn.id, msg.media);
}

/**
 * Rule A1: PNE `pneId` proved, by its own certificate on an end-to-end tunnel that runs through `conn`'s
 * session, that it is behind this GW. Only now is it recorded in the GW's PN, and only now does the GW get the
 * keys and signers of the PNE's Service Groups. A PNE has one place: any other GW loses it at once.
 */
export async function proveAttach(srv: ServerState, conn: GwConn, pt: PneTunnel): Promise<void> {
  const pneId = pt.identity;
  if (srv.closed || srv.gwConns.get(conn.id) !== conn || !liveTunnel(srv, pt)) return;
  if (srv.revokedIds.has(pneId)) {
    pt.ms.destroy();
    return;
  }
  const media = conn.claims.get(pneId) ?? (await srv.store.getPne(pneId))?.media ?? [];
  const { previousGwId } = await srv.store.attachPne(
    pneId,
    conn.id,
    media,
    undefined,
    announce(srv, 'pne.attached', { pneId, gwId: conn.id }),
  );
  published(srv);
  const wasHere = provenAt(srv.pneAt, pneId, conn.id, conn.attached);
  srv.pneAt.set(pneId, conn.id);
  conn.attached.add(pneId);
  // Online here again: where an ack found it away, it holds the ack latency up again (acks.ts).
  srv.acks.online(pneId);
  // Its tunnels through other GWs are no proof any more: close them, and those GWs lose it.
  for (const other of srv.tunnels.get(pneId) ?? []) if (other.gw !== conn) other.ms.destroy();
  for (const c of srv.gwConns.values()) if (c !== conn) c.attached.delete(pneId);
  const moved = previousGwId !== null && previousGwId !== conn.id ? previousGwId : undefined;
  if (moved !== undefined) {
    await srv.store.appendAudit({
      actor: pneId,
      action: 'pne.move',
      subject: pneId,
      detail: { from: moved },
    });
  }
  if (wasHere && moved === undefined) return;
  emit(srv, { kind: 'pn.change', gwId: conn.id, pneId, online: true });
  if (conn.registered) await catchUp(srv, pneId, conn.id, moved);
}

/** Catch-up: the current key (only) of every SG the PNE is a member of, with replay anchors. */
export async function catchUp(
  srv: ServerState,
  pneId: string,
  gwId: string,
  previousGwId: string | undefined,
): Promise<void> {
  for (const st of srv.groups.values()) {
    if (!st.members.has(pneId)) continue;
    await withSg(srv, st.sgId, async () => {
      if (!srv.groups.has(st.sgId)) return;
      await sendCurrentKey(srv, st, gwId);
      // The old GW gets the same epoch without the PNE in its targets: it stops serving it.
      if (previousGwId !== undefined) await sendCurrentKey(srv, st, previousGwId);
    });
  }
}

/** `conn` no longer serves `pneId` (its tunnel closed, or the GW said it went offline). */
export async function loseAttachment(
  srv: ServerState,
  conn: GwConn,
  pneId: string,
  closeTunnels: boolean,
): Promise<void> {
  if (!conn.attached.delete(pneId)) return;
  if (closeTunnels) for (const t of srv.tunnels.get(pneId) ?? []) if (t.gw === conn) t.ms.destroy();
  if (srv.pneAt.get(pneId) !== conn.id) return;
  try {
    await srv.store.setOnline(pneId, false);
  } catch {}
  emit(srv, { kind: 'pn.change', gwId: conn.id, pneId, online: false });
}

/** Rules A3, A4: `pneId` is in `conn`'s PN and proven there now (rule A1); else FORBIDDEN. */
function requireProvenHere(srv: ServerState, conn: GwConn, pneId: string): void {
  if (!provenAt(srv.pneAt, pneId, conn.id, conn.attached)) fail(ErrorCode.FORBIDDEN, 'pneId');
}

export async function pneStatus(srv: ServerState, conn: GwConn, msg: MessageOf<'pne.status'>): Promise<void> {
  // Rule A3: only about a PNE proven here. "Offline" gives the PNE up (the GW can only hurt its own
  // service); "online" cannot be claimed: only the PNE's tunnel makes it so (rule A1).
  requireProvenHere(srv, conn, msg.pneId);
  if (!msg.online) await loseAttachment(srv, conn, msg.pneId, true);
  conn.control.sendOk(msg.id);
}

export async function pneDetach(srv: ServerState, conn: GwConn, msg: MessageOf<'pne.detach'>): Promise<void> {
  // Rule A4: a GW detaches only a PNE proven behind it.
  requireProvenHere(srv, conn, msg.pneId);
  await srv.store.detachPne(msg.pneId);
  srv.pneAt.delete(msg.pneId);
  conn.attached.delete(msg.pneId);
  await srv.store.appendAudit({ actor: conn.id, action: 'pne.detach', subject: msg.pneId });
  conn.control.sendOk(msg.id);
  emit(srv, { kind: 'pn.change', gwId: conn.id, pneId: msg.pneId, online: false });
  await rekeyGroupsOf(srv, [msg.pneId], 'detach', conn.id);
}
