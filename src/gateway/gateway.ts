/**
 * The PN Gateway role (docs/protocol.md): one secure session up to the CPNS Server (reconnecting), one secure
 * session to each PNE of its PN, unicast Group Key delivery to the member PNEs of its PN (CPNS TS §5.3.3
 * "deliver Group Key"), local fan-out and upstream forwarding of messages destined to a Service Group, and the
 * relay of the PNE ↔ server end-to-end TLS tunnels (bytes it cannot read).
 *
 * This class is the facade: it opens the listeners and the upstream client, composes the concern modules over
 * one GatewayState (state.ts), and exposes the public surface. The behaviour lives in the concern modules.
 */
import { EventEmitter } from 'node:events';
import { CpnsError, ErrorCode } from '../core/errors.js';
import { silentLogger } from '../protocol/control.js';
import { enrollAt } from '../protocol/enroll-client.js';
import type { DeliveryPolicy, GatewayBroadcaster } from '../protocol/index.js';
import { MAX_RECONNECT_URLS } from '../transport/limits.js';
import { ReconnectingClient } from '../transport/reconnecting-client.js';
import { SecureServer } from '../transport/secure-server.js';
import { CloseCode, type Session } from '../transport/session.js';
import type { BroadcastMedium } from '../transport/udp.js';
import { openBroadcast } from './broadcast.js';
import { GATEWAY_DEFAULTS } from './defaults.js';
import { onFallback, onReissue, wipeKeys } from './keys.js';
import { onPneSession } from './pne-session.js';
import { flushReports } from './reports.js';
import { createState, type GatewayState, treeTag } from './state.js';
import type { Credentials, GatewayOptions, GatewayStats } from './types.js';
import { onUpstream } from './upstream.js';

/**
 * Events: 'registered', 'key' {sgId, epoch, targets}, 'revoked', 'delivery' {sgId, epoch, broadcast[], unicast[],
 * datagrams, bytes} (one per Group Key delivery in this PN), 'gkdk' {pneId, treeId, treeVersion} (a PNE acked its
 * GKDK), 'policy' (DeliveryPolicy pushed by the server).
 */
export class PnGateway extends EventEmitter {
  readonly identity: string;
  readonly #st: GatewayState;

  private constructor(
    opts: GatewayOptions,
    pneServer: SecureServer,
    enrollServer: SecureServer,
    client: ReconnectingClient,
    broadcaster: GatewayBroadcaster | undefined,
    media: BroadcastMedium[],
  ) {
    super();
    const st = createState({
      opts,
      log: opts.logger ?? silentLogger,
      events: this,
      pneServer,
      enrollServer,
      client,
      broadcaster,
      media,
    });
    this.#st = st;
    this.identity = st.identity;
    if (broadcaster) {
      broadcaster.on('fallback', (sgId: string, epoch: number, pnes: string[]) =>
        onFallback(st, sgId, epoch, pnes),
      );
      broadcaster.on('reissue', (pnes: string[]) => onReissue(st, pnes));
    }
  }

  /** Enrolls a GW with a one-time token at the server's enrollment listener (`CpnsServer.enrollUrl`). */
  static enroll(o: { enrollUrl: string; caPem: string; token: string }): Promise<Credentials> {
    return enrollAt(o.enrollUrl, o.caPem, o.token, 'gw', 'server');
  }

  static async start(opts: GatewayOptions): Promise<PnGateway> {
    let self: PnGateway | undefined;
    const serverUrls = serverUrlsOf(opts);
    const { pneServer, enrollServer } = listeners(opts, (id) => (self ? self.#st.revoked.has(id) : false));
    const client = upstreamClient(opts, serverUrls);
    const { broadcaster, media } = await openBroadcast(opts);
    const gw = new PnGateway(opts, pneServer, enrollServer, client, broadcaster, media);
    self = gw;
    const st = gw.#st;
    pneServer.on('session', (s: Session) => onPneSession(st, s));
    enrollServer.on('session', (s: Session) => onPneSession(st, s));
    for (const srv of [pneServer, enrollServer]) {
      srv.on('refused', (reason: string, address?: string) =>
        st.log.info({ reason, address }, 'PNE connection refused'),
      );
    }
    await pneServer.listen();
    await enrollServer.listen();
    client.on('session', (s: Session, url: string) => onUpstream(st, s, url));
    // At info: a GW waiting for its server says so (and why: UNREACHABLE, TLS_REFUSED...) at each attempt.
    client.on('connect-error', (err: Error & { code?: string }, delayMs: number, url: string) =>
      st.log.info(
        { code: err.code, server: url, delayMs },
        `CPNS Server not reachable, retrying in ${delayMs} ms`,
      ),
    );
    client.on('excluded', (err: Error & { code?: string }, url: string) =>
      st.log.error(
        { code: err.code, server: url },
        'not a node of this CPNS Server: dropped from the server list',
      ),
    );
    const registered = registration(gw, client, opts.startTimeoutMs ?? GATEWAY_DEFAULTS.startTimeoutMs);
    client.on('fatal', (err: Error & { code?: string }) => {
      st.log.error({ code: err.code }, 'server refused this GW');
      if (err.code === 'REVOKED') gw.emit('revoked');
    });
    client.start();
    try {
      await registered;
    } catch (e) {
      await gw.close();
      throw e;
    }
    return gw;
  }

  get url(): string {
    return this.#st.pneServer.url;
  }

  /** URL of the server node this GW is registered with (undefined while it is not). */
  get serverUrl(): string | undefined {
    const st = this.#st;
    return st.registered && st.up?.isOpen === true ? (st.upUrl ?? undefined) : undefined;
  }

  /** The delivery policy in force (the server's, once pushed), or undefined when broadcast is not set up. */
  get deliveryPolicy(): DeliveryPolicy | undefined {
    return this.#st.broadcaster?.policy;
  }

  /** Current broadcast tree (id, version), or undefined when broadcast is not set up. */
  get broadcastTree(): { treeId: string; treeVersion: number } | undefined {
    return this.#st.broadcaster?.tree;
  }

  /** Connected PNEs that acked a GKDK of the current tree (tests, status). */
  get broadcastCapable(): string[] {
    const t = treeTag(this.#st);
    return [...this.#st.pnes.values()].filter((c) => t !== undefined && c.gkdkTree === t).map((c) => c.id);
  }

  get enrollUrl(): string {
    return this.#st.enrollServer.anonymousUrl ?? '';
  }

  get connected(): boolean {
    return this.#st.registered && this.#st.up?.isOpen === true;
  }

  /** Connected PNE identities (tests, status). */
  get pnes(): string[] {
    return [...this.#st.pnes.keys()];
  }

  /**
   * What this GW did and has open, as plain counts (docs/operator.md "PN GW metrics"): sessions by kind, Group Key
   * broadcasts and their datagrams, unicast fallbacks, dropped group messages by error code. `cpns gateway
   * --metrics-port` serves them to Prometheus (src/metrics `GatewayMetrics`).
   */
  stats(): GatewayStats {
    const st = this.#st;
    const c = st.counters;
    return {
      sessions: { pne: st.pnes.size, enroll: c.enrollSessions, server: this.connected ? 1 : 0 },
      broadcasts: c.broadcasts,
      broadcastDatagrams: c.broadcastDatagrams,
      fallbacks: c.fallbacks,
      drops: Object.fromEntries(c.drops),
    };
  }

  /** Epoch of the Group Key this GW holds for an SG (tests, status). */
  keyEpoch(sgId: string): number | undefined {
    return this.#st.keys.get(sgId)?.epoch;
  }

  /**
   * The newest epoch of `sgId` each attached PNE acked on its current session (PNEs that acked none are absent).
   * A PNE's first key on a session goes by unicast (docs/broadcast.md "Per delivery"); broadcast needs this ack.
   */
  ackedEpochs(sgId: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const c of this.#st.pnes.values()) {
      const acked = c.sgs.get(sgId)?.acked;
      if (acked !== undefined) out.set(c.id, acked);
    }
    return out;
  }

  /** Orderly removal of this PN: the server detaches its PNEs (and updates their SGs' keys). */
  async deregister(): Promise<void> {
    const st = this.#st;
    if (st.upControl && st.registered) {
      await st.upControl.request({ t: 'gw.deregister' });
    }
    await this.close();
  }

  async close(): Promise<void> {
    const st = this.#st;
    if (st.closed) return;
    flushReports(st);
    st.closed = true;
    st.client.stop(CloseCode.GOING_AWAY, 'gateway stopping');
    await Promise.all([st.pneServer.close(300), st.enrollServer.close(300)]);
    st.broadcaster?.close();
    await st.bq;
    for (const m of st.media) m.close();
    wipeKeys(st);
  }
}

/** The PNE session listener (mTLS, PNE certificates of the CPNS CA) and the anonymous enrollment listener. */
function listeners(
  opts: GatewayOptions,
  isRevoked: (identity: string) => boolean,
): { pneServer: SecureServer; enrollServer: SecureServer } {
  const c = opts.credentials;
  const pneServer = new SecureServer({
    certPem: c.certPem,
    keyPem: c.keyPem,
    caPem: c.caPem,
    host: opts.host ?? GATEWAY_DEFAULTS.host,
    port: opts.port ?? GATEWAY_DEFAULTS.port,
    path: '/cpns',
    allowedRoles: ['pne'],
    heartbeat: opts.heartbeat,
    isRevoked,
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  const enrollServer = new SecureServer({
    mode: 'enrollment',
    certPem: c.certPem,
    keyPem: c.keyPem,
    caPem: c.caPem,
    host: opts.host ?? GATEWAY_DEFAULTS.host,
    port: opts.enrollPort ?? GATEWAY_DEFAULTS.enrollPort,
    heartbeat: false,
    ...(opts.enrollLimits ? { limits: opts.enrollLimits } : {}),
  });
  return { pneServer, enrollServer };
}

/** `serverUrls`, or `serverUrl` as a one-element list; exactly one of them (INVALID_ARGUMENT otherwise). */
function serverUrlsOf(opts: GatewayOptions): string[] {
  if (opts.serverUrl !== undefined && opts.serverUrls !== undefined)
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'give serverUrl or serverUrls, not both', 'serverUrls');
  const urls = opts.serverUrls ?? (opts.serverUrl !== undefined ? [opts.serverUrl] : []);
  if (urls.length === 0 || urls.some((u) => u === ''))
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'a GW needs serverUrl or serverUrls', 'serverUrls');
  if (urls.length > MAX_RECONNECT_URLS)
    throw new CpnsError(
      ErrorCode.INVALID_ARGUMENT,
      `at most ${MAX_RECONNECT_URLS} server URLs`,
      'serverUrls',
    );
  return urls;
}

/** The one session up to the CPNS Server (one node of its list), kept up by the transport's ReconnectingClient. */
function upstreamClient(opts: GatewayOptions, serverUrls: string[]): ReconnectingClient {
  const c = opts.credentials;
  return new ReconnectingClient(
    serverUrls,
    {
      certPem: c.certPem,
      keyPem: c.keyPem,
      caPem: c.caPem,
      expectedServerRole: 'server',
      heartbeat: opts.heartbeat,
    },
    opts.reconnect,
  );
}

/** Resolves on the first 'registered'; rejects on a fatal refusal or after `timeoutMs` (TIMEOUT). */
function registration(gw: PnGateway, client: ReconnectingClient, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new CpnsError(ErrorCode.TIMEOUT, 'could not register with the server in time')),
      timeoutMs,
    );
    gw.once('registered', () => {
      clearTimeout(t);
      resolve();
    });
    client.once('fatal', (err: Error) => {
      clearTimeout(t);
      reject(err);
    });
  });
}
