/**
 * The CPNS Server role (docs/protocol.md): enrollment CA, PN registry, Service Groups, Group Key management
 * (CPNS TS §5.3.3 create / update / delete / deliver), relay of messages destined to a Service Group
 * (ciphertext only), revocation. State lives in the store it is given (`ServerOptions.store`: the composition root
 * chooses the backend, e.g. SQLite in a data directory via src/embed/server.ts); the in-memory maps of ServerState
 * are caches rebuilt from it at start, so a restart loses nothing.
 *
 * This class is the facade: it opens the listeners, composes the concern modules over one
 * ServerState, and exposes the public surface. The behaviour lives in the concern modules (one per concern).
 */
import { EventEmitter } from 'node:events';
import { CpnsMetrics } from '../metrics/index.js';
import { codeOf, type Logger, silentLogger } from '../protocol/control.js';
import type { Store } from '../store/store.js';
import { SecureServer } from '../transport/secure-server.js';
import type { Session } from '../transport/session.js';
import { makeAdmin } from './admin.js';
import { joinCluster, leaveCluster } from './cluster.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { onSession } from './gw-session.js';
import { sendToGroup } from './relay.js';
import { issueOwnCert, loadOrCreateCa, loadState, saveCleanShutdown } from './startup.js';
import { createState, isRevoked, type ServerState } from './state.js';
import type { ServerAdmin, ServerOptions } from './types.js';

export { SERVER_DEFAULTS } from './defaults.js';

export class CpnsServer {
  readonly caPem: string;
  readonly identity: string;
  readonly admin: ServerAdmin;
  readonly store: Store;
  /** `'change'` events (ChangeEvent: ids, epochs, reasons, online flags; never key material). */
  readonly events: EventEmitter;
  readonly metrics: CpnsMetrics;
  readonly #st: ServerState;
  readonly #enrollListener: SecureServer;

  private constructor(st: ServerState, enroll: SecureServer, identity: string) {
    this.#st = st;
    this.store = st.store;
    this.metrics = st.metrics;
    this.events = st.events;
    this.#enrollListener = enroll;
    this.identity = identity;
    this.caPem = st.ca.certPem;
    this.admin = makeAdmin(st);
  }

  /** Starts on `opts.store`, which the server then owns: it closes it on close() and when start fails. */
  static async start(opts: ServerOptions): Promise<CpnsServer> {
    const log = opts.logger ?? silentLogger;
    const store = opts.store;
    try {
      const ca = await loadOrCreateCa(store);
      const host = opts.host ?? SERVER_DEFAULTS.host;
      const sc = await issueOwnCert(ca, opts.serverName ?? SERVER_DEFAULTS.serverName, host);
      let self: CpnsServer | undefined;
      const { secure, enroll } = listeners(
        opts,
        host,
        sc,
        ca.certPem,
        (id, serial) => self?.isRevokedSync(id, serial) ?? true,
      );
      const events = new EventEmitter();
      events.setMaxListeners(0);
      const metrics = opts.metrics ?? new CpnsMetrics({ defaultMetrics: false });
      const st = createState({ opts, store, log, metrics, events, ca, secure });
      st.serverCert = { certPem: sc.certPem, keyPem: sc.keyPem };
      const server = new CpnsServer(st, enroll, sc.identity);
      self = server;
      await loadState(st);
      // Route sessions before accepting any: a GW that connects while the state loads (a slow store, a node
      // taking over) would otherwise get a session that nobody serves.
      serve(st, [secure, enroll], log);
      await openListeners(secure, enroll);
      if (opts.cluster) st.cluster = await joinCluster(st, opts.cluster);
      log.info({ url: server.url }, 'CPNS server listening');
      return server;
    } catch (e) {
      await store.close().catch(() => {});
      throw e;
    }
  }

  /** URL of the GW session listener (its port is known once listening, i.e. after start()). */
  get url(): string {
    return this.#st.secure.url;
  }

  /** URL of the anonymous enrollment listener. */
  get enrollUrl(): string {
    return this.#enrollListener.anonymousUrl ?? '';
  }

  /** The server's TLS certificate and key (issued by the CPNS CA at start), for the admin HTTPS listener. */
  adminTls(): { certPem: string; keyPem: string } {
    return { ...this.#st.serverCert };
  }

  isRevokedSync(identity: string, serialHex: string): boolean {
    return isRevoked(this.#st, identity, serialHex);
  }

  /** Number of open GW sessions (tests, metrics). */
  get gatewayCount(): number {
    return this.#st.gwConns.size;
  }

  /** Current epoch of an SG as the server sees it (tests, metrics). */
  currentEpoch(sgId: string): number | undefined {
    return this.#st.groups.get(sgId)?.epoch;
  }

  /**
   * A message destined to the Service Group from the CPNS Server itself (seed §5.3.3: the Group Key MAC shows
   * a receiver the message comes "from SG member PNE or CPNS Server"). Protected with the current Group Key
   * under the nil sender id; returns the protected bytes.
   */
  sendToGroup(sgId: string, data: Uint8Array | string): Promise<Buffer> {
    return sendToGroup(this.#st, sgId, data);
  }

  async close(): Promise<void> {
    const srv = this.#st;
    if (srv.closed) return;
    // Pending join updates run now: a joiner must not find the old epoch after a restart.
    await Promise.allSettled([...srv.groups.values()].map((st) => st.joinUpdate?.run()));
    srv.closed = true;
    if (srv.flushTimer) clearInterval(srv.flushTimer);
    for (const st of srv.groups.values()) if (st.timer) clearInterval(st.timer);
    for (const set of srv.tunnels.values()) for (const t of set) t.ms.destroy();
    await Promise.all([
      srv.secure.close(SERVER_DEFAULTS.closeSessionsMs),
      this.#enrollListener.close(SERVER_DEFAULTS.closeEnrollMs),
    ]);
    // Let handlers that are mid-flight finish before the store goes away.
    await Promise.allSettled([...srv.locks.values()]);
    await Promise.allSettled([...srv.gwConns.values()].map((c) => c.queue));
    // The acks still queued are written before the store closes (a failed batch is logged by the writer).
    await srv.deliveries.flush();
    if (srv.cluster) {
      // Announce what committed before going: the outbox is drained once more, then the bus is left.
      await srv.cluster.publisher.kick();
      await leaveCluster(srv.cluster).catch(() => {});
    }
    try {
      await saveCleanShutdown(srv);
    } catch (e) {
      srv.log.warn({ code: codeOf(e) }, 'could not flush relay marks');
    }
    await this.store.close();
  }
}

/** The two listeners: GW sessions (mTLS, role `gw`) and, on its own port, the anonymous enrollment surface. */
function listeners(
  opts: ServerOptions,
  host: string,
  sc: { certPem: string; keyPem: string },
  caPem: string,
  isRevokedFn: (identity: string, serialHex: string) => boolean,
): { secure: SecureServer; enroll: SecureServer } {
  const secure = new SecureServer({
    certPem: sc.certPem,
    keyPem: sc.keyPem,
    caPem,
    host,
    port: opts.port ?? SERVER_DEFAULTS.port,
    path: '/cpns',
    allowedRoles: ['gw'],
    heartbeat: opts.heartbeat,
    isRevoked: isRevokedFn,
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  // The anonymous surface on its own listener, with its own limits (docs/transport.md "Limits").
  const enroll = new SecureServer({
    mode: 'enrollment',
    certPem: sc.certPem,
    keyPem: sc.keyPem,
    caPem,
    host,
    port: opts.enrollPort ?? SERVER_DEFAULTS.enrollPort,
    heartbeat: false,
    ...(opts.enrollLimits ? { limits: opts.enrollLimits } : {}),
  });
  return { secure, enroll };
}

/** Opens both listeners, or neither. */
async function openListeners(secure: SecureServer, enroll: SecureServer): Promise<void> {
  await secure.listen();
  try {
    await enroll.listen();
  } catch (e) {
    await secure.close(0);
    throw e;
  }
}

/** Sessions of both listeners go to the one router (gw-session.ts); refusals are only logged. */
function serve(srv: ServerState, listeners: readonly SecureServer[], log: Logger): void {
  for (const l of listeners) {
    l.on('session', (s: Session) => onSession(srv, s));
    l.on('refused', (reason: string, address?: string) =>
      log.info({ reason, address }, 'connection refused'),
    );
  }
}
