/**
 * The secure session to the PN GW: connect and attach (pne.attach, then the server tunnel), reconnect with
 * backoff after a loss ('disconnected', 'reconnecting', 'reconnected'), stop for good on revocation ('revoked'),
 * detach and close.
 */
import { CpnsError, ErrorCode } from '../core/errors.js';
import { Control, codeOf } from '../protocol/control.js';
import { backoffDelay } from '../transport/backoff.js';
import { connectSession } from '../transport/connect-session.js';
import { CloseCode, type Session } from '../transport/session.js';
import { closeBroadcast } from './broadcast.js';
import { PNE_DEFAULTS } from './defaults.js';
import { onGwFrame } from './gw-messages.js';
import type { PneState } from './state.js';
import { openTunnel } from './tunnel.js';

/** Opens the GW session, attaches this PNE and opens the server tunnel; on failure, closes what it opened. */
export async function connect(st: PneState): Promise<void> {
  const c = st.opts.credentials;
  const s = await connectSession(st.opts.gwUrl, {
    certPem: c.certPem,
    keyPem: c.keyPem,
    caPem: c.caPem,
    expectedServerRole: 'gw',
    heartbeat: st.opts.heartbeat,
  });
  const gw = Control.forSession(s);
  st.link.session = s;
  st.link.gw = gw;
  s.on('frame', (buf: Buffer) => onGwFrame(st, gw, buf));
  s.once('close', (code: number) => onSessionClose(st, s, gw, code));
  try {
    await gw.request({
      t: 'pne.attach',
      pneId: st.identity,
      media: st.opts.media ?? [...PNE_DEFAULTS.media],
    });
    await openTunnel(st, s);
  } catch (e) {
    st.link.closing = true;
    s.close();
    throw e;
  }
}

function onSessionClose(st: PneState, s: Session, gw: Control, code: number): void {
  gw.failAll(new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'GW session closed'));
  const link = st.link;
  if (link.session !== s) return;
  link.session = null;
  link.gw = null;
  st.events.emit('disconnected', code);
  if (code === CloseCode.REVOKED) {
    link.closing = true;
    st.events.emit('revoked');
    return;
  }
  if (link.closing || st.opts.reconnect === false) return;
  const retry = (): void => {
    const delay = backoffDelay(link.attempt++, st.opts.reconnect || PNE_DEFAULTS.reconnect);
    st.log.info({ attempt: link.attempt, delayMs: delay }, `GW unreachable, reconnecting in ${delay} ms`);
    st.events.emit('reconnecting', { attempt: link.attempt, delayMs: delay });
    link.timer = setTimeout(() => {
      if (link.closing) return;
      connect(st).then(
        () => {
          link.attempt = 0;
          link.closing = false;
          st.events.emit('reconnected');
        },
        (e) => {
          if (codeOf(e) === ErrorCode.REVOKED) {
            st.events.emit('revoked');
            return;
          }
          link.closing = false;
          retry();
        },
      );
    }, delay);
    link.timer.unref();
  };
  retry();
}

/** Leaves the PN: the server detaches this PNE and updates the keys of its SGs; then closes. */
export async function detach(st: PneState): Promise<void> {
  if (st.link.gw) await st.link.gw.request({ t: 'pne.detach', pneId: st.identity });
  await close(st);
}

export async function close(st: PneState): Promise<void> {
  st.link.closing = true;
  if (st.link.timer) clearTimeout(st.link.timer);
  st.tunnel.ms?.close();
  await closeBroadcast(st);
  const s = st.link.session;
  if (s?.isOpen) {
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.close(CloseCode.NORMAL, 'pne closing');
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
  }
}
