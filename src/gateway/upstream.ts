/**
 * The GW's session up to the CPNS Server (reconnecting, failing over between the nodes of `serverUrls`): on every
 * new session, whichever node it reached, the tunnel relay is (re)pointed at
 * it, the GW registers (gw.register with its capabilities), and then re-attaches its attached PNEs (pne.attach).
 */
import type { Medium } from '../core/codec/index.js';
import { CpnsError, ErrorCode } from '../core/errors.js';
import { Control, codeOf } from '../protocol/control.js';
import { CloseCode, type Session } from '../transport/session.js';
import { TunnelRelay } from '../transport/tunnel-relay.js';
import { GATEWAY_DEFAULTS } from './defaults.js';
import { newUpstreamSession } from './reports.js';
import type { GatewayState, PneConn } from './state.js';
import { onUpstreamFrame } from './upstream-messages.js';

export function onUpstream(st: GatewayState, s: Session, url: string): void {
  st.up = s;
  st.upUrl = url;
  st.registered = false;
  newUpstreamSession(st);
  const control = Control.forSession(s);
  st.upControl = control;
  if (!st.relay) {
    st.relay = new TunnelRelay(s, {
      maxTunnelsPerPne: GATEWAY_DEFAULTS.maxTunnelsPerPne,
      tap: st.opts.relayTap,
    });
    for (const p of st.pnes.values()) st.relay.attach(p.session);
  } else {
    st.relay.setUpstream(s);
  }
  s.on('frame', (buf: Buffer) => onUpstreamFrame(st, control, buf));
  s.once('close', (code: number) => {
    control.failAll(new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'server session closed'));
    if (st.up === s) {
      st.up = null;
      st.upUrl = null;
      st.upControl = null;
      st.registered = false;
    }
    st.log.info({ code, server: url }, 'server session down');
  });
  control
    .request({
      t: 'gw.register',
      capabilities: {
        media: st.opts.media ?? (st.broadcaster ? (st.broadcaster.mediaNames as Medium[]) : ['wifi']),
        broadcast: st.broadcaster !== undefined,
      },
    })
    .then(async () => {
      if (st.up !== s) return;
      st.registered = true;
      st.log.info({ server: url, node: s.identity }, 'registered with the server');
      st.events.emit('registered');
      for (const p of st.pnes.values()) if (p.phase === 'attached') await attachUp(st, p);
    })
    .catch((e) => st.log.warn({ code: codeOf(e) }, 'registration failed'));
}

/**
 * Claims the PNE at the server (pne.attach, rule A2 there) while registered. A PNE the server refuses (revoked,
 * unknown, not allowed) loses its session once the typed error reply has gone out; the error is rethrown.
 */
export async function attachUp(st: GatewayState, p: PneConn): Promise<void> {
  const up = st.upControl;
  if (!up || !st.registered) return;
  try {
    await up.request({ t: 'pne.attach', pneId: p.id, media: p.media });
  } catch (e) {
    const code = codeOf(e);
    if (code === ErrorCode.REVOKED || code === ErrorCode.NOT_FOUND || code === ErrorCode.FORBIDDEN) {
      if (code === ErrorCode.REVOKED) st.revoked.add(p.id);
      // After the typed error reply has gone out (the caller sends it).
      const t = setTimeout(
        () => p.session.close(code === ErrorCode.REVOKED ? CloseCode.REVOKED : CloseCode.POLICY, 'refused'),
        20,
      );
      t.unref();
    }
    throw e;
  }
}
