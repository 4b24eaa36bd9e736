/** gw-session */

import type { ControlMessage } from '../core/codec/index.js';
import { CpnsError, ErrorCode } from '../core/errors.js';
import { DEFAULT_POLICY } from '../delivery/policy.js';
import { Control, fail, serveFrame } from '../roles/control.js';
import { CloseCode, type Session } from '../transport/session.js';
import { type TunnelStream, tunnelMuxFor } from '../transport/tunnel.js';
import { mayAckFor, onKeyAcked } from './acks.js';
import { catchUp, loseAttachment, pneAttach } from './attachment.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { enroll, onEnrollSession } from './enrollment.js';
import { countSession, emit } from './events.js';
import { rekeyGroupsOf } from './keys.js';
import { onTunnel } from './pne-tunnel.js';
import { relayGroupFrame } from './relay.js';
import type { GwConn, ServerState } from './state.js';
export function onSession(srv: ServerState, s: Session): void {
  if (srv.closed) {
    s.close(CloseCode.GOING_AWAY, 'closing');
    return;
  }
  if (s.anonymous || s.identity === null) onEnrollSession(srv, s);
  else onGwSession(srv, s);
}

export function onGwSession(srv: ServerState, session: Session): void {
  const id = session.identity!;
  const old = srv.gwConns.get(id);
  if (old) old.session.close(CloseCode.REPLACED, 'replaced by a newer session');
  const conn: GwConn = {
    id,
    session,
    control: Control.forSession(session),
    attached: new Set(),
    claims: new Map(),
    sent: new Map(),
    registered: false,
    queue: Promise.resolve(),
  };
  srv.gwConns.set(id, conn);
  countSession(srv, 'gw', true);
  srv.log.info({ gw: id }, 'GW session up');
  tunnelMuxFor(session, { maxTunnels: SERVER_DEFAULTS.maxTunnelsPerGwSession }).on(
    'tunnel',
    (stream: TunnelStream) => onTunnel(srv, conn, stream),
  );
  session.on('frame', (buf: Buffer) => onGwFrame(srv, conn, buf));
  session.once('close', () => {
    conn.control.failAll(new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'session closed'));
    countSession(srv, 'gw', false);
    if (srv.gwConns.get(id) !== conn) return;
    srv.gwConns.delete(id);
    srv.log.info({ gw: id }, 'GW session down');
    if (srv.closed) return;
    const attached = [...conn.attached];
    conn.queue = conn.queue.then(async () => {
      try {
        if (await srv.store.getGateway(id)) await srv.store.setOnline(id, false);
        for (const p of attached) if (srv.pneAt.get(p) === id) await srv.store.setOnline(p, false);
      } catch {}
      emit(srv, { kind: 'pn.change', gwId: id, online: false });
    });
  });
}

export function onGwFrame(srv: ServerState, conn: GwConn, buf: Buffer): void {
  serveFrame(
    conn,
    buf,
    (frame) => relayGroupFrame(srv, conn, frame),
    (m) => handleGw(srv, conn, m),
    srv.log,
    'GW',
  );
}

export async function handleGw(srv: ServerState, conn: GwConn, msg: ControlMessage): Promise<void> {
  if (srv.closed) return;
  if (!conn.registered && msg.t !== 'gw.register' && msg.t !== 'enroll.relay') {
    fail(ErrorCode.UNEXPECTED_MESSAGE);
  }
  switch (msg.t) {
    case 'gw.register': {
      await srv.store.registerGateway(conn.id);
      await srv.store.setOnline(conn.id, true);
      conn.registered = true;
      conn.control.send({ t: 'registered', id: msg.id, ok: true });
      conn.control.send({ t: 'gw.policy', ...(srv.opts.deliveryPolicy ?? DEFAULT_POLICY) });
      emit(srv, { kind: 'pn.change', gwId: conn.id, online: true });
      // PNEs whose tunnels came up before the registration: their catch-up now.
      for (const p of conn.attached) await catchUp(srv, p, conn.id, undefined);
      return;
    }
    case 'enroll.relay': {
      const r = await enroll(srv, msg.request);
      conn.control.send({ t: 'enroll.response', id: msg.id, ...r });
      return;
    }
    case 'pne.attach':
      return pneAttach(srv, conn, msg);
    case 'pne.status': {
      // Rule A3: only about a PNE proven here. "Offline" gives the PNE up (the GW can only hurt its own
      // service); "online" cannot be claimed: only the PNE's tunnel makes it so (rule A1).
      if (srv.pneAt.get(msg.pneId) !== conn.id || !conn.attached.has(msg.pneId))
        fail(ErrorCode.FORBIDDEN, 'pneId');
      if (!msg.online) await loseAttachment(srv, conn, msg.pneId, true);
      conn.control.sendOk(msg.id);
      return;
    }
    case 'pne.detach': {
      // Rule A4: a GW detaches only a PNE proven behind it.
      if (srv.pneAt.get(msg.pneId) !== conn.id || !conn.attached.has(msg.pneId))
        fail(ErrorCode.FORBIDDEN, 'pneId');
      await srv.store.detachPne(msg.pneId);
      srv.pneAt.delete(msg.pneId);
      conn.attached.delete(msg.pneId);
      await srv.store.appendAudit({ actor: conn.id, action: 'pne.detach', subject: msg.pneId });
      conn.control.sendOk(msg.id);
      emit(srv, { kind: 'pn.change', gwId: conn.id, pneId: msg.pneId, online: false });
      await rekeyGroupsOf(srv, [msg.pneId], 'detach', conn.id);
      return;
    }
    case 'gw.deregister': {
      const pnes = await srv.store.deregisterGateway(conn.id);
      for (const p of pnes) srv.pneAt.delete(p);
      conn.attached.clear();
      conn.registered = false;
      await srv.store.appendAudit({ actor: conn.id, action: 'gw.deregister', subject: conn.id });
      emit(srv, { kind: 'pn.change', gwId: conn.id, online: false });
      await rekeyGroupsOf(srv, pnes, 'detach', conn.id);
      for (const st of srv.groups.values()) st.targetGws.delete(conn.id);
      conn.control.sendOk(msg.id);
      setTimeout(
        () => conn.session.close(CloseCode.NORMAL, 'deregistered'),
        SERVER_DEFAULTS.deregisterCloseMs,
      ).unref();
      return;
    }
    case 'key.ack': {
      const st = srv.groups.get(msg.sgId);
      if (!st) fail(ErrorCode.NOT_FOUND, 'sgId');
      if (msg.epoch > st.epoch) fail(ErrorCode.UNKNOWN_EPOCH, 'epoch');
      // Rule K1: a GW acks only an (SG, epoch) it was sent; rule K2: for a PNE it was sent that epoch for.
      const targets = conn.sent.get(msg.sgId)?.get(msg.epoch);
      if (!targets) fail(ErrorCode.FORBIDDEN, 'epoch');
      if (msg.pneId !== undefined) {
        if (!mayAckFor(srv, conn, st, targets, msg.pneId)) fail(ErrorCode.FORBIDDEN, 'pneId');
        await srv.store.recordDelivery({
          sgId: msg.sgId,
          epoch: msg.epoch,
          pneId: msg.pneId,
          gwId: conn.id,
          method: msg.method ?? 'unicast',
        });
      } else {
        await srv.store.recordGatewayAck({ sgId: msg.sgId, epoch: msg.epoch, gwId: conn.id });
      }
      conn.control.sendOk(msg.id);
      await onKeyAcked(srv, msg.sgId, msg.epoch, conn.id, msg.pneId, msg.pneId !== undefined);
      return;
    }
    case 'key.delivery.report': {
      const st = srv.groups.get(msg.sgId);
      if (!st) fail(ErrorCode.NOT_FOUND, 'sgId');
      if (msg.epoch > st.epoch) fail(ErrorCode.UNKNOWN_EPOCH, 'epoch');
      // Rule K2, all or nothing: one entry the GW may not report refuses the whole report.
      const targets = conn.sent.get(msg.sgId)?.get(msg.epoch);
      if (!targets) fail(ErrorCode.FORBIDDEN, 'epoch');
      const acks = msg.entries
        .filter((e) => mayAckFor(srv, conn, st, targets, e.pneId))
        .map((e) => ({
          sgId: msg.sgId,
          epoch: msg.epoch,
          pneId: e.pneId,
          gwId: conn.id,
          method: e.method,
        }));
      if (acks.length !== msg.entries.length) fail(ErrorCode.FORBIDDEN, 'entries');
      await srv.store.recordDeliveries(acks);
      conn.control.sendOk(msg.id);
      await onKeyAcked(
        srv,
        msg.sgId,
        msg.epoch,
        conn.id,
        acks.length === 1 ? acks[0]?.pneId : undefined,
        acks.length > 0,
      );
      return;
    }
    default:
      fail(ErrorCode.UNEXPECTED_MESSAGE);
  }
}
