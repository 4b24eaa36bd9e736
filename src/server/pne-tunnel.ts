/**
 * PNE tunnels at the server: a PNE's own TLS session, end to end through its GW's session (rule A1). Accepting
 * one proves the PNE is behind that GW; its control messages go, in order, to the authorization table in
 * pne-messages.ts; its last tunnel through a GW closing means that GW no longer serves it.
 */
import type { ControlMessage } from '../core/codec/index.js';
import type { CpnsError } from '../core/errors.js';
import { Control, codeOf, decodeControl, handleInOrder } from '../protocol/control.js';
import { MessageSocket } from '../transport/message-socket.js';
import type { TunnelStream } from '../transport/tunnel-stream.js';
import { acceptTunnelTls, type TunnelTlsContext, tunnelTlsContext } from '../transport/tunnel-tls.js';
import { loseAttachment, proveAttach } from './attachment.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { countSession } from './events.js';
import { handlePne } from './pne-messages.js';
import { type GwConn, isRevoked, type PneTunnel, type ServerState } from './state.js';

/** One TLS context for all the server's tunnels, remade if its certificate changes (tunnel-tls.ts). */
const contexts = new WeakMap<ServerState['serverCert'], TunnelTlsContext>();

function contextOf(srv: ServerState): TunnelTlsContext {
  let ctx = contexts.get(srv.serverCert);
  if (!ctx) {
    ctx = tunnelTlsContext({ ...srv.serverCert, caPem: srv.ca.certPem });
    contexts.set(srv.serverCert, ctx);
  }
  return ctx;
}

export function onTunnel(srv: ServerState, conn: GwConn, stream: TunnelStream): void {
  acceptTunnelTls(stream, {
    certPem: srv.serverCert.certPem,
    keyPem: srv.serverCert.keyPem,
    caPem: srv.ca.certPem,
    context: contextOf(srv),
    allowedRoles: ['pne'],
    isRevoked: (id, serial) => isRevoked(srv, id, serial),
  }).then(
    (t) => {
      const ms = new MessageSocket(t.socket, { maxMessage: SERVER_DEFAULTS.tunnelMaxMessageBytes });
      const pt: PneTunnel = {
        identity: t.peer.identity,
        ms,
        control: new Control((p) => ms.send(p)),
        gw: conn,
        queue: Promise.resolve(),
      };
      let set = srv.tunnels.get(pt.identity);
      if (!set) {
        set = new Set();
        srv.tunnels.set(pt.identity, set);
      }
      set.add(pt);
      countSession(srv, 'pne', true);
      ms.on('message', (m: Buffer) => onTunnelMessage(srv, pt, m));
      ms.once('close', () => {
        countSession(srv, 'pne', false);
        const s = srv.tunnels.get(pt.identity);
        s?.delete(pt);
        if (s?.size === 0) srv.tunnels.delete(pt.identity);
        // Its last tunnel through this GW is gone: the GW loses the PNE (rule A1).
        if ([...(s ?? [])].some((o) => o.gw === conn)) return;
        conn.queue = conn.queue.then(() => loseAttachment(srv, conn, pt.identity, false));
      });
      // The tunnel is the proof that this PNE is behind this GW (rule A1), handled in order with the GW's
      // own messages.
      conn.queue = conn.queue.then(() =>
        proveAttach(srv, conn, pt).catch((e) =>
          srv.log.warn({ code: codeOf(e), pne: pt.identity }, 'attachment not recorded'),
        ),
      );
    },
    (e) => srv.log.info({ code: (e as { code?: string }).code }, 'tunnel refused'),
  );
}

export function onTunnelMessage(srv: ServerState, pt: PneTunnel, m: Buffer): void {
  let msg: ControlMessage;
  try {
    msg = decodeControl(m);
  } catch (e) {
    pt.control.sendError(codeOf(e), undefined, (e as CpnsError).field);
    return;
  }
  if (pt.control.accept(msg)) return;
  handleInOrder(pt, pt.control, msg, (x) => handlePne(srv, pt, x), srv.log, 'PNE');
}
