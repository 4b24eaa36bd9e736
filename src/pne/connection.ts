/**
 * The secure session to the PN GW: connect and attach (pne.attach, then the server tunnel), reconnect with
 * backoff after a loss ('disconnected', 'reconnecting', 'reconnected'), stop for good on revocation ('revoked')
 * or on an identity the peer never accepts ('refused'), detach and close. The lifecycle is `GwLinkPhase`
 * (state.ts); the reconnect loop is the transport's ReconnectingClient, the same one the PN GW uses upstream.
 */
import { CpnsError, ErrorCode } from '../core/errors.js';
import { Control, codeOf } from '../protocol/control.js';
import { MAX_RECONNECT_URLS } from '../transport/limits.js';
import { ReconnectingClient } from '../transport/reconnecting-client.js';
import { CloseCode, type Session } from '../transport/session.js';
import { closeBroadcast } from './broadcast.js';
import { PNE_DEFAULTS } from './defaults.js';
import { onGwFrame } from './gw-messages.js';
import { liveLink, type PneState } from './state.js';
import { openTunnel } from './tunnel.js';

/**
 * The first connect: resolves once attached with the server tunnel open, rejects with the typed error otherwise
 * (and then nothing keeps running). Later losses are retried in the background unless `reconnect` is false.
 */
export async function connect(st: PneState): Promise<void> {
  const c = st.opts.credentials;
  const client = new ReconnectingClient(
    gwUrlsOf(st),
    {
      certPem: c.certPem,
      keyPem: c.keyPem,
      caPem: c.caPem,
      expectedServerRole: 'gw',
      heartbeat: st.opts.heartbeat,
    },
    st.opts.reconnect || PNE_DEFAULTS.reconnect,
    (s) => establish(st, s),
  );
  st.link.client = client;
  client.on('session', (s: Session) => onSession(st, s));
  client.on('established', (s: Session, reconnected: boolean, gw: string) => {
    st.log.info({ gw, reconnected }, 'attached to the GW');
    onEstablished(st, s, reconnected);
  });
  client.on('disconnected', (code: number) => onDisconnected(st, client, code));
  client.on('retry', (attempt: number, delayMs: number, gw: string) => {
    st.log.info({ attempt, delayMs, gw }, `GW unreachable, reconnecting in ${delayMs} ms`);
    st.events.emit('reconnecting', { attempt, delayMs, gwUrl: gw });
  });
  client.on('connect-error', (e: unknown, _delayMs: number, gw: string) =>
    st.log.debug({ code: codeOf(e), gw }, 'GW connect failed'),
  );
  client.on('excluded', (e: unknown, gw: string) =>
    st.log.error({ code: codeOf(e), gw }, 'not a GW of this CPNS Service: dropped from the GW list'),
  );
  client.on('fatal', (e: unknown) => onFatal(st, e));
  try {
    if (st.opts.waitForGw) await firstEstablished(client.start());
    else await client.open();
  } catch (e) {
    if (st.link.state.phase !== 'closed') st.link.state = { phase: 'closed', reason: 'refused' };
    throw e;
  }
}

/** `gwUrls`, or `gwUrl` as a one-element list; exactly one of them (INVALID_ARGUMENT otherwise). */
function gwUrlsOf(st: PneState): string[] {
  const o = st.opts;
  if (o.gwUrl !== undefined && o.gwUrls !== undefined)
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'give gwUrl or gwUrls, not both', 'gwUrls');
  const urls = o.gwUrls ?? (o.gwUrl !== undefined ? [o.gwUrl] : []);
  if (urls.length === 0 || urls.some((u) => u === ''))
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'a PNE needs gwUrl or gwUrls', 'gwUrls');
  if (urls.length > MAX_RECONNECT_URLS)
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, `at most ${MAX_RECONNECT_URLS} GW URLs`, 'gwUrls');
  return urls;
}

/** Resolves on the first established session; rejects on a fatal refusal (the client then has stopped). */
function firstEstablished(client: ReconnectingClient): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = (): void => {
      client.off('fatal', ko);
      resolve();
    };
    const ko = (e: unknown): void => {
      client.off('established', ok);
      reject(e);
    };
    client.once('established', ok);
    client.once('fatal', ko);
  });
}

/** A new session: wire the frame handler and fail what was pending on it when it closes. */
function onSession(st: PneState, s: Session): void {
  const gw = Control.forSession(s);
  st.link.state = { phase: 'attaching', session: s, gw };
  s.on('frame', (buf: Buffer) => onGwFrame(st, gw, buf));
  s.once('close', () => {
    gw.failAll(new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'GW session closed'));
    if (liveLink(st)?.session === s) st.link.state = { phase: 'connecting' };
  });
}

/** What makes a session count as up: the GW claims this PNE at the server, and the server tunnel opens. */
async function establish(st: PneState, s: Session): Promise<void> {
  const link = liveLink(st);
  if (!link || link.session !== s) throw new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'GW session closed');
  await link.gw.request({
    t: 'pne.attach',
    pneId: st.identity,
    media: st.opts.media ?? [...PNE_DEFAULTS.media],
  });
  await openTunnel(st, s);
}

function onEstablished(st: PneState, s: Session, reconnected: boolean): void {
  const link = liveLink(st);
  if (!link || link.session !== s) return;
  st.link.state = { phase: 'attached', session: s, gw: link.gw };
  if (reconnected) st.events.emit('reconnected');
}

function onDisconnected(st: PneState, client: ReconnectingClient, code: number): void {
  st.events.emit('disconnected', code);
  if (code !== CloseCode.REVOKED && st.opts.reconnect === false) {
    client.stop();
    if (st.link.state.phase !== 'closed') st.link.state = { phase: 'closed', reason: 'closed' };
  }
}

function onFatal(st: PneState, e: unknown): void {
  const revoked = codeOf(e) === ErrorCode.REVOKED;
  st.link.state = { phase: 'closed', reason: revoked ? 'revoked' : 'refused' };
  if (revoked) {
    st.events.emit('revoked');
    return;
  }
  st.log.error({ code: codeOf(e) }, 'the GW refuses this identity: not reconnecting');
  st.events.emit('refused', codeOf(e));
}

/** Leaves the PN: the server detaches this PNE and updates the keys of its SGs; then closes. */
export async function detach(st: PneState): Promise<void> {
  const link = liveLink(st);
  if (link) await link.gw.request({ t: 'pne.detach', pneId: st.identity });
  await close(st);
}

export async function close(st: PneState): Promise<void> {
  const s = liveLink(st)?.session;
  if (st.link.state.phase !== 'closed') st.link.state = { phase: 'closed', reason: 'closed' };
  st.tunnel.ms?.close();
  await closeBroadcast(st);
  if (s?.isOpen) {
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    st.link.client?.stop(CloseCode.NORMAL, 'pne closing');
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
  } else {
    st.link.client?.stop(CloseCode.NORMAL, 'pne closing');
  }
}
