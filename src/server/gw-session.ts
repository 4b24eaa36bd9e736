/**
 * GW session lifecycle at the server: the session router (enrollment vs GW), one GwConn per GW session (a newer
 * session replaces an older one), its tunnel mux, its frames (group frames to the relay, control messages to the
 * authorization table in gw-messages.ts), and what its close means for the GW's PN.
 */

import { CpnsError, ErrorCode } from '../core/errors.js';
import { Control, serveFrame } from '../protocol/control.js';
import { CloseCode, type Session } from '../transport/session.js';
import { tunnelMuxFor } from '../transport/tunnel-mux.js';
import type { TunnelStream } from '../transport/tunnel-stream.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { onEnrollSession } from './enrollment.js';
import { countSession, emit } from './events.js';
import { handleGw } from './gw-messages.js';
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
    lease: undefined,
    superseded: false,
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
    // A stale session (the GW is now held by another node) says nothing about the PN being offline.
    if (srv.closed || conn.superseded) return;
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
