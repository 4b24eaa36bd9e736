/**
 * The end-to-end TLS session to the CPNS Server, tunnelled through the GW session (the GW relays it and cannot
 * read it): open it (and register this PNE's signing key over it), reopen it with backoff while the GW session
 * stays up, wait for it (serverControl), and the messages the server sends over it unsolicited (one authorization
 * table, docs/protocol.md "Authorization", "At the PNE, over its tunnel to the CPNS Server").
 */
import type { ControlMessage, MessageOf } from '../core/codec/index.js';
import { ed25519PublicToRaw } from '../core/crypto/ed25519.js';
import { CpnsError, ErrorCode } from '../core/errors.js';
import { type AuthzRow, rowOf } from '../protocol/authz.js';
import { Control, codeOf, decodeControl, fail } from '../protocol/control.js';
import { backoffDelay } from '../transport/backoff.js';
import { MessageSocket } from '../transport/message-socket.js';
import type { Session } from '../transport/session.js';
import { openTunnelTls } from '../transport/tunnel-tls.js';
import { PNE_DEFAULTS } from './defaults.js';
import { groupDeleted, installKey, removed } from './keys.js';
import { isCurrentSession, linkClosed, type PneState } from './state.js';

type ServerMessageType = 'sg.remove' | 'sg.deleted' | 'key.deliver' | 'error' | 'ok';

export type ServerRule = 'T1' | 'T2' | 'T3' | 'T4';

export type ServerMessageRule<T extends ServerMessageType> = AuthzRow<
  ServerRule,
  (st: PneState, msg: MessageOf<T>) => void
>;

/**
 * What the server may send this PNE over the tunnel, unsolicited (answers to requests are matched by Control
 * first). Only the server can be at the other end: the tunnel's TLS authenticates it. Anything else is refused.
 */
export const SERVER_MESSAGES: { readonly [T in ServerMessageType]: ServerMessageRule<T> } = {
  'sg.remove': {
    who: 'the server (this PNE was removed; other PNEs ignored)',
    claims: [
      {
        claim: '`sgId`, `pneId`: "P was removed from the SG"',
        check: "P = this PNE's identity (else ignored); the SG's keys are forgotten",
        refused: [],
      },
    ],
    rules: ['T1'],
    handler: removed,
  },
  'sg.deleted': {
    who: 'the server',
    claims: [{ claim: '`sgId`: "the SG is gone"', check: "none: the SG's keys are forgotten", refused: [] }],
    rules: ['T2'],
    handler: groupDeleted,
  },
  'key.deliver': {
    who: 'the server',
    claims: [
      {
        claim:
          '`sgId`, `epoch`, `key`, `suite`, `graceSec`, `senderAnchors`: a Group Key epoch (a late key.fetch answer)',
        check: 'as from the GW (W1): only a newer epoch is installed',
        refused: [],
      },
    ],
    rules: ['T3'],
    handler: installKey,
  },
  error: { who: 'the server (ignored)', claims: [], rules: ['T4'], handler: () => {} },
  ok: { who: 'the server (ignored)', claims: [], rules: ['T4'], handler: () => {} },
};

export async function openTunnel(st: PneState, s: Session): Promise<void> {
  const c = st.opts.credentials;
  const t = await openTunnelTls(s, { certPem: c.certPem, keyPem: c.keyPem, caPem: c.caPem });
  const ms = new MessageSocket(t.socket, { maxMessage: PNE_DEFAULTS.maxTunnelMessage });
  const srv = new Control((p) => ms.send(p));
  st.tunnel.ms = ms;
  st.tunnel.srv = srv;
  st.tunnel.attempt = 0;
  ms.on('message', (m: Buffer) => onServerMessage(st, srv, m));
  // Our signing key for source-authenticated SGs, bound to our identity by this end-to-end TLS session.
  srv.request({ t: 'pne.signkey', key: ed25519PublicToRaw(st.signing.publicKey) }).catch((e: unknown) => {
    // Happens when the tunnel closes first (e.g. a short-lived client); it is re-sent on the next tunnel.
    st.log.debug({ code: codeOf(e) }, 'signing key not registered');
  });
  ms.once('close', () => {
    srv.failAll(new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'server tunnel closed'));
    if (st.tunnel.srv === srv) {
      st.tunnel.srv = null;
      st.tunnel.ms = null;
    }
    if (isCurrentSession(st, s)) scheduleTunnel(st, s);
  });
  st.events.emit('tunnel');
}

/** The tunnel closed while the GW session is up: reopen it over the same session, with backoff. */
function scheduleTunnel(st: PneState, s: Session): void {
  if (st.opts.reconnect === false) return;
  const delay = backoffDelay(st.tunnel.attempt++, st.opts.reconnect ?? PNE_DEFAULTS.reconnect);
  const t = setTimeout(() => {
    if (!isCurrentSession(st, s)) return;
    openTunnel(st, s).catch(() => scheduleTunnel(st, s));
  }, delay);
  t.unref();
}

/** The control channel to the server, waiting up to `timeoutMs` for the tunnel to come up. */
export async function serverControl(
  st: PneState,
  timeoutMs: number = PNE_DEFAULTS.serverWaitMs,
): Promise<Control> {
  if (st.tunnel.srv) return st.tunnel.srv;
  if (linkClosed(st)) fail(ErrorCode.UNEXPECTED_MESSAGE);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      st.events.off('tunnel', on);
      reject(new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'no tunnel to the server'));
    }, timeoutMs);
    const on = (): void => {
      clearTimeout(t);
      resolve();
    };
    st.events.once('tunnel', on);
  });
  if (!st.tunnel.srv) fail(ErrorCode.UNEXPECTED_MESSAGE);
  return st.tunnel.srv;
}

/** One message over the tunnel: a reply to a request of ours, else its SERVER_MESSAGES row, else refused. */
export function onServerMessage(st: PneState, srv: Control, m: Buffer): void {
  let msg: ControlMessage;
  try {
    msg = decodeControl(m);
  } catch (e) {
    st.log.warn({ code: codeOf(e) }, 'bad message from the server');
    return;
  }
  if (srv.accept(msg)) return;
  const rule = rowOf(SERVER_MESSAGES, msg.t);
  if (!rule) {
    srv.sendError(ErrorCode.UNEXPECTED_MESSAGE, msg.id);
    return;
  }
  (rule.handler as (st: PneState, msg: ControlMessage) => void)(st, msg);
}
