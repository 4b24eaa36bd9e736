/**
 * The CPNS Server role (docs/protocol.md): enrollment CA, PN registry, Service Groups, Group Key management
 * (CPNS TS §5.3.3 create / update / delete / deliver), relay of messages destined to a Service Group
 * (ciphertext only), revocation. State lives in the store (SQLite in `dataDir`); the in-memory maps below are
 * caches rebuilt from it at start, so a restart loses nothing.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ControlMessage, MessageOf } from '../core/codec/index.js';
import { CpnsError, ErrorCode } from '../core/errors.js';
import { DEFAULT_POLICY } from '../delivery/policy.js';
import { CpnsMetrics } from '../metrics/index.js';
import {
  Control,
  codeOf,
  decodeControl,
  fail,
  handleInOrder,
  readEnrollRequest,
  serveFrame,
  silentLogger,
  toPneIdentity,
  uuidToBytes,
} from '../roles/control.js';
import { loadOrCreateMasterKey } from '../store/masterkey.js';
import { openSqliteStore } from '../store/sqlite/index.js';
import type { Role, Store } from '../store/store.js';
import { hashToken } from '../store/token.js';
import {
  certInfo,
  createCa,
  formatIdentity,
  issueFromCsr,
  issueServerCert,
  loadCa,
  parseIdentity,
} from '../transport/ca.js';
import { CloseCode, SecureServer, type Session } from '../transport/session.js';
import { acceptTunnelTls, MessageSocket, type TunnelStream, tunnelMuxFor } from '../transport/tunnel.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { countSession, emit } from './events.js';
import { pushSigners, rekeyGroupsOf, rekeyLocked, sendCurrentKey, startTimer } from './keys.js';
import { anchors, flushMarks, relayGroupFrame, sendToGroup } from './relay.js';
import {
  createState,
  type GwConn,
  groupOf,
  isRevoked,
  liveTunnel,
  OPERATOR,
  type PneTunnel,
  type ServerState,
  type SgState,
  servingGw,
  withSg,
} from './state.js';
import type { CreateGroupInput, GroupSummary, ServerAdmin, ServerOptions } from './types.js';
import { asDeliveryPolicy, SUITE_OF, WIRE_SUITE, wireReason } from './wire.js';

export { Control } from '../roles/control.js';
export type {
  CreateGroupInput,
  GroupPolicyPatch,
  GroupSummary,
  ServerAdmin,
  ServerOptions,
  WireSuite,
} from './types.js';

const SECRET_CA_CERT = 'ca.cert';
const SECRET_CA_KEY = 'ca.key';
/** Present only between a graceful close (relay marks flushed) and the next start. */
const SECRET_CLEAN = 'relay.clean-shutdown';

export class CpnsServer {
  readonly url: string;
  readonly enrollUrl: string;
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
    this.url = st.secure.url;
    this.enrollUrl = enroll.anonymousUrl ?? '';
    this.admin = this.#makeAdmin();
  }

  static async start(opts: ServerOptions): Promise<CpnsServer> {
    const log = opts.logger ?? silentLogger;
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    const mk = loadOrCreateMasterKey({ dataDir: opts.dataDir });
    const store = await openSqliteStore({ path: join(opts.dataDir, 'cpns.db'), masterKey: mk.key });
    mk.key.fill(0);
    try {
      let certPem = (await store.getSecret(SECRET_CA_CERT))?.toString('utf8');
      let keyPem = (await store.getSecret(SECRET_CA_KEY))?.toString('utf8');
      if (certPem === undefined || keyPem === undefined) {
        const pair = await createCa('CPNS CA');
        await store.putSecret(SECRET_CA_CERT, Buffer.from(pair.certPem));
        await store.putSecret(SECRET_CA_KEY, Buffer.from(pair.keyPem));
        await store.appendAudit({ actor: 'server', action: 'ca.create' });
        certPem = pair.certPem;
        keyPem = pair.keyPem;
      }
      const ca = await loadCa({ certPem, keyPem });
      const identity = formatIdentity('server', opts.serverName ?? SERVER_DEFAULTS.serverName);
      const host = opts.host ?? SERVER_DEFAULTS.host;
      const isIp = /^[0-9.]+$|:/.test(host);
      const sc = await issueServerCert(ca, identity, {
        ips: ['127.0.0.1', '::1', ...(isIp && host !== '0.0.0.0' ? [host] : [])],
        dnsNames: ['localhost', ...(isIp ? [] : [host])],
      });
      let self: CpnsServer | undefined;
      const secure = new SecureServer({
        certPem: sc.certPem,
        keyPem: sc.keyPem,
        caPem: ca.certPem,
        host,
        port: opts.port ?? SERVER_DEFAULTS.port,
        path: '/cpns',
        allowedRoles: ['gw'],
        heartbeat: opts.heartbeat,
        isRevoked: (id, serial) => self?.isRevokedSync(id, serial) ?? true,
        ...(opts.limits ? { limits: opts.limits } : {}),
      });
      // The anonymous surface on its own listener, with its own limits (issue #8 §3).
      const enroll = new SecureServer({
        mode: 'enrollment',
        certPem: sc.certPem,
        keyPem: sc.keyPem,
        caPem: ca.certPem,
        host,
        port: opts.enrollPort ?? SERVER_DEFAULTS.enrollPort,
        heartbeat: false,
        ...(opts.enrollLimits ? { limits: opts.enrollLimits } : {}),
      });
      await secure.listen();
      try {
        await enroll.listen();
      } catch (e) {
        await secure.close(0);
        throw e;
      }
      const events = new EventEmitter();
      events.setMaxListeners(0);
      const metrics = opts.metrics ?? new CpnsMetrics({ defaultMetrics: false });
      const st = createState({ opts, store, log, metrics, events, ca, secure });
      st.serverCert = sc;
      const server = new CpnsServer(st, enroll, identity);
      self = server;
      await server.#load();
      for (const srv of [secure, enroll]) {
        srv.on('session', (s: Session) => server.#onSession(s));
        srv.on('refused', (reason: string, address?: string) =>
          log.info({ reason, address }, 'connection refused'),
        );
      }
      log.info({ url: server.url }, 'CPNS server listening');
      return server;
    } catch (e) {
      await store.close().catch(() => {});
      throw e;
    }
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

  async close(): Promise<void> {
    if (this.#st.closed) return;
    // Pending join updates run now: a joiner must not find the old epoch after a restart.
    await Promise.allSettled([...this.#st.groups.values()].map((st) => st.joinUpdate?.run()));
    this.#st.closed = true;
    if (this.#st.flushTimer) clearInterval(this.#st.flushTimer);
    for (const st of this.#st.groups.values()) if (st.timer) clearInterval(st.timer);
    for (const set of this.#st.tunnels.values()) for (const t of set) t.ms.destroy();
    await Promise.all([
      this.#st.secure.close(SERVER_DEFAULTS.closeSessionsMs),
      this.#enrollListener.close(SERVER_DEFAULTS.closeEnrollMs),
    ]);
    // Let handlers that are mid-flight finish before the store goes away.
    await Promise.allSettled([...this.#st.locks.values()]);
    await Promise.allSettled([...this.#st.gwConns.values()].map((c) => c.queue));
    try {
      await flushMarks(this.#st);
      await this.store.putSecret(SECRET_CLEAN, Buffer.from([1]));
    } catch (e) {
      this.#st.log.warn({ code: codeOf(e) }, 'could not flush relay marks');
    }
    await this.store.close();
  }

  // ------------------------------------------------------------------------------------------- startup

  async #load(): Promise<void> {
    for (const idn of await this.store.listIdentities()) {
      if (idn.revokedAt !== null) {
        this.#st.revokedIds.add(idn.id);
        this.#st.revokedSerials.add(idn.certSerial);
      }
    }
    for (const pn of await this.store.listPns()) {
      for (const p of pn.pnes) this.#st.pneAt.set(p.pneId, pn.gwId);
      if (pn.online) await this.store.setOnline(pn.gwId, false);
      for (const p of pn.pnes) if (p.online) await this.store.setOnline(p.pneId, false);
    }
    for (const g of await this.store.listGroups()) {
      const members = new Set((await this.store.listMembers(g.sgId)).map((m) => m.pneId));
      const cur = await this.store.getCurrentKey(g.sgId);
      const epoch = cur?.epoch ?? 0;
      cur?.key.fill(0);
      const st: SgState = {
        sgId: g.sgId,
        suite: g.suite,
        ownerId: g.ownerId,
        joinPolicy: g.joinPolicy,
        rekeyIntervalSec: g.rekeyIntervalSec,
        members,
        epoch,
        prevEpoch: undefined,
        prevUntil: 0,
        timer: undefined,
        targetGws: new Set(),
        deliveryPolicy: asDeliveryPolicy(g.deliveryPolicy),
        sourceAuth: g.sourceAuth,
        updateOnJoin: g.updateOnJoin,
        pendingJoiners: new Set(),
        joinUpdate: undefined,
      };
      this.#st.groups.set(g.sgId, st);
      startTimer(this.#st, st);
    }
    const clean = await this.store.getSecret(SECRET_CLEAN);
    if (clean) {
      // Graceful restart: relay marks were flushed, so replay anchors survive; keep the epochs.
      await this.store.deleteSecret(SECRET_CLEAN);
      for (const st of this.#st.groups.values()) {
        const m = new Map<string, number>();
        for (const r of await this.store.listRelayMarks(st.sgId, st.epoch))
          m.set(`${r.sender}|${r.instance}`, r.counter);
        if (m.size > 0) this.#st.marks.set(`${st.sgId}|${st.epoch}`, m);
      }
      await this.store.appendAudit({ actor: 'server', action: 'server.start', reason: 'clean' });
    } else if (this.#st.groups.size > 0) {
      // Crash (or first start of an old database): relay marks may be stale, so rotate every SG's key once
      // (docs/group-messages.md "restart policy"): fresh epochs, fresh replay windows everywhere.
      await this.store.appendAudit({ actor: 'server', action: 'server.start', reason: 'unclean' });
      for (const st of this.#st.groups.values()) {
        await withSg(this.#st, st.sgId, () => rekeyLocked(this.#st, st, 'periodic', 'server', 'restart'));
      }
    }
    this.#st.flushTimer = setInterval(() => {
      flushMarks(this.#st).catch((e) => this.#st.log.warn({ code: codeOf(e) }, 'relay mark flush failed'));
    }, this.#st.opts.relayMarkFlushMs ?? SERVER_DEFAULTS.relayMarkFlushMs);
    this.#st.flushTimer.unref();
  }

  // ------------------------------------------------------------------------------------------- sessions

  #onSession(s: Session): void {
    if (this.#st.closed) {
      s.close(CloseCode.GOING_AWAY, 'closing');
      return;
    }
    if (s.anonymous || s.identity === null) this.#onEnrollSession(s);
    else this.#onGwSession(s);
  }

  #onEnrollSession(s: Session): void {
    const control = Control.forSession(s);
    const t = setTimeout(
      () => s.close(CloseCode.POLICY, 'enrollment timeout'),
      SERVER_DEFAULTS.enrollSessionMs,
    );
    t.unref();
    countSession(this.#st, 'enroll', true);
    s.once('close', () => {
      clearTimeout(t);
      countSession(this.#st, 'enroll', false);
    });
    let busy = false;
    s.on('frame', (buf: Buffer) => {
      const msg = readEnrollRequest(buf, s, control);
      if (!msg) return;
      if (busy) {
        control.sendError(ErrorCode.UNEXPECTED_MESSAGE, msg.id);
        return;
      }
      busy = true;
      this.#enroll(msg).then(
        (r) => {
          control.send({ t: 'enroll.response', id: msg.id, ...r });
          busy = false;
        },
        (e) => {
          control.sendError(codeOf(e), msg.id, (e as CpnsError).field);
          busy = false;
        },
      );
    });
  }

  async #enroll(req: {
    token: string;
    role: 'gw' | 'pne';
    csr: string;
  }): Promise<{ cert: string; caCert: string }> {
    // The one-time token first (issue #8 §3): without a valid token, no CSR parsing and no signing. A token
    // spent on a malformed CSR is gone (the device made its CSR itself; it asks the operator for a new one).
    const r = await this.store.consumeToken(hashToken(req.token), req.role as Role);
    if (!r.ok) {
      await this.store.appendAudit({ actor: 'server', action: 'enroll.refused', reason: r.reason });
      fail(ErrorCode.ENROLL_REFUSED, 'token');
    }
    const identity = formatIdentity(req.role, randomUUID());
    let cert: string;
    try {
      cert = await issueFromCsr(this.#st.ca, req.csr, identity, SERVER_DEFAULTS.certValidityDays);
    } catch {
      await this.store.appendAudit({ actor: 'server', action: 'enroll.refused', reason: 'csr' });
      throw new CpnsError(ErrorCode.ENROLL_REFUSED, 'enrollment refused', 'csr');
    }
    const info = certInfo(cert);
    await this.store.putIdentity({ id: identity, role: req.role, certSerial: info.serialHex, certPem: cert });
    await this.store.appendAudit({ actor: 'server', action: 'identity.enroll', subject: identity });
    this.#st.log.info({ identity }, 'enrolled');
    return { cert, caCert: this.#st.ca.certPem };
  }

  #onGwSession(session: Session): void {
    const id = session.identity!;
    const old = this.#st.gwConns.get(id);
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
    this.#st.gwConns.set(id, conn);
    countSession(this.#st, 'gw', true);
    this.#st.log.info({ gw: id }, 'GW session up');
    tunnelMuxFor(session, { maxTunnels: SERVER_DEFAULTS.maxTunnelsPerGwSession }).on(
      'tunnel',
      (stream: TunnelStream) => this.#onTunnel(conn, stream),
    );
    session.on('frame', (buf: Buffer) => this.#onGwFrame(conn, buf));
    session.once('close', () => {
      conn.control.failAll(new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'session closed'));
      countSession(this.#st, 'gw', false);
      if (this.#st.gwConns.get(id) !== conn) return;
      this.#st.gwConns.delete(id);
      this.#st.log.info({ gw: id }, 'GW session down');
      if (this.#st.closed) return;
      const attached = [...conn.attached];
      conn.queue = conn.queue.then(async () => {
        try {
          if (await this.store.getGateway(id)) await this.store.setOnline(id, false);
          for (const p of attached) if (this.#st.pneAt.get(p) === id) await this.store.setOnline(p, false);
        } catch {}
        emit(this.#st, { kind: 'pn.change', gwId: id, online: false });
      });
    });
  }

  #onGwFrame(conn: GwConn, buf: Buffer): void {
    serveFrame(
      conn,
      buf,
      (frame) => relayGroupFrame(this.#st, conn, frame),
      (m) => this.#handleGw(conn, m),
      this.#st.log,
      'GW',
    );
  }

  async #handleGw(conn: GwConn, msg: ControlMessage): Promise<void> {
    if (this.#st.closed) return;
    if (!conn.registered && msg.t !== 'gw.register' && msg.t !== 'enroll.relay') {
      fail(ErrorCode.UNEXPECTED_MESSAGE);
    }
    switch (msg.t) {
      case 'gw.register': {
        await this.store.registerGateway(conn.id);
        await this.store.setOnline(conn.id, true);
        conn.registered = true;
        conn.control.send({ t: 'registered', id: msg.id, ok: true });
        conn.control.send({ t: 'gw.policy', ...(this.#st.opts.deliveryPolicy ?? DEFAULT_POLICY) });
        emit(this.#st, { kind: 'pn.change', gwId: conn.id, online: true });
        // PNEs whose tunnels came up before the registration: their catch-up now.
        for (const p of conn.attached) await this.#catchUp(p, conn.id, undefined);
        return;
      }
      case 'enroll.relay': {
        const r = await this.#enroll(msg.request);
        conn.control.send({ t: 'enroll.response', id: msg.id, ...r });
        return;
      }
      case 'pne.attach':
        return this.#pneAttach(conn, msg);
      case 'pne.status': {
        // Rule A3: only about a PNE proven here. "Offline" gives the PNE up (the GW can only hurt its own
        // service); "online" cannot be claimed: only the PNE's tunnel makes it so (rule A1).
        if (this.#st.pneAt.get(msg.pneId) !== conn.id || !conn.attached.has(msg.pneId))
          fail(ErrorCode.FORBIDDEN, 'pneId');
        if (!msg.online) await this.#loseAttachment(conn, msg.pneId, true);
        conn.control.sendOk(msg.id);
        return;
      }
      case 'pne.detach': {
        // Rule A4: a GW detaches only a PNE proven behind it.
        if (this.#st.pneAt.get(msg.pneId) !== conn.id || !conn.attached.has(msg.pneId))
          fail(ErrorCode.FORBIDDEN, 'pneId');
        await this.store.detachPne(msg.pneId);
        this.#st.pneAt.delete(msg.pneId);
        conn.attached.delete(msg.pneId);
        await this.store.appendAudit({ actor: conn.id, action: 'pne.detach', subject: msg.pneId });
        conn.control.sendOk(msg.id);
        emit(this.#st, { kind: 'pn.change', gwId: conn.id, pneId: msg.pneId, online: false });
        await rekeyGroupsOf(this.#st, [msg.pneId], 'detach', conn.id);
        return;
      }
      case 'gw.deregister': {
        const pnes = await this.store.deregisterGateway(conn.id);
        for (const p of pnes) this.#st.pneAt.delete(p);
        conn.attached.clear();
        conn.registered = false;
        await this.store.appendAudit({ actor: conn.id, action: 'gw.deregister', subject: conn.id });
        emit(this.#st, { kind: 'pn.change', gwId: conn.id, online: false });
        await rekeyGroupsOf(this.#st, pnes, 'detach', conn.id);
        for (const st of this.#st.groups.values()) st.targetGws.delete(conn.id);
        conn.control.sendOk(msg.id);
        setTimeout(
          () => conn.session.close(CloseCode.NORMAL, 'deregistered'),
          SERVER_DEFAULTS.deregisterCloseMs,
        ).unref();
        return;
      }
      case 'key.ack': {
        const st = this.#st.groups.get(msg.sgId);
        if (!st) fail(ErrorCode.NOT_FOUND, 'sgId');
        if (msg.epoch > st.epoch) fail(ErrorCode.UNKNOWN_EPOCH, 'epoch');
        // Rule K1: a GW acks only an (SG, epoch) it was sent; rule K2: for a PNE it was sent that epoch for.
        const targets = conn.sent.get(msg.sgId)?.get(msg.epoch);
        if (!targets) fail(ErrorCode.FORBIDDEN, 'epoch');
        if (msg.pneId !== undefined) {
          if (!this.#mayAckFor(conn, st, targets, msg.pneId)) fail(ErrorCode.FORBIDDEN, 'pneId');
          await this.store.recordDelivery({
            sgId: msg.sgId,
            epoch: msg.epoch,
            pneId: msg.pneId,
            gwId: conn.id,
            method: msg.method ?? 'unicast',
          });
        } else {
          await this.store.recordGatewayAck({ sgId: msg.sgId, epoch: msg.epoch, gwId: conn.id });
        }
        conn.control.sendOk(msg.id);
        await this.#onKeyAcked(msg.sgId, msg.epoch, conn.id, msg.pneId, msg.pneId !== undefined);
        return;
      }
      case 'key.delivery.report': {
        const st = this.#st.groups.get(msg.sgId);
        if (!st) fail(ErrorCode.NOT_FOUND, 'sgId');
        if (msg.epoch > st.epoch) fail(ErrorCode.UNKNOWN_EPOCH, 'epoch');
        // Rule K2, all or nothing: one entry the GW may not report refuses the whole report.
        const targets = conn.sent.get(msg.sgId)?.get(msg.epoch);
        if (!targets) fail(ErrorCode.FORBIDDEN, 'epoch');
        const acks = msg.entries
          .filter((e) => this.#mayAckFor(conn, st, targets, e.pneId))
          .map((e) => ({
            sgId: msg.sgId,
            epoch: msg.epoch,
            pneId: e.pneId,
            gwId: conn.id,
            method: e.method,
          }));
        if (acks.length !== msg.entries.length) fail(ErrorCode.FORBIDDEN, 'entries');
        await this.store.recordDeliveries(acks);
        conn.control.sendOk(msg.id);
        await this.#onKeyAcked(
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

  /**
   * pne.attach from a GW is a claim (rule A2): it carries the PNE's media and lets the GW learn at once that a PNE
   * is revoked or unknown, but it grants nothing. The PNE is attached here only when its own tunnel proves it
   * (`#proveAttach`).
   */
  async #pneAttach(conn: GwConn, msg: MessageOf<'pne.attach'>): Promise<void> {
    const pneId = msg.pneId;
    if (this.#st.revokedIds.has(pneId)) fail(ErrorCode.REVOKED, 'pneId');
    const idn = await this.store.getIdentity(pneId);
    if (idn?.role !== 'pne') fail(ErrorCode.NOT_FOUND, 'pneId');
    if (idn.revokedAt !== null) fail(ErrorCode.REVOKED, 'pneId');
    const max = this.#st.opts.maxPnesPerGw ?? SERVER_DEFAULTS.maxPnesPerGw;
    if (!conn.claims.has(pneId) && conn.claims.size >= max) fail(ErrorCode.TOO_LARGE, 'pneId');
    const before = conn.claims.get(pneId);
    conn.claims.set(pneId, [...msg.media]);
    conn.control.sendOk(msg.id);
    // Already proven here (its tunnel came first): the media may have changed.
    if (
      conn.attached.has(pneId) &&
      this.#st.pneAt.get(pneId) === conn.id &&
      String(before) !== String(msg.media)
    )
      await this.store.attachPne(pneId, conn.id, msg.media);
  }

  /**
   * Rule A1: PNE `pneId` proved, by its own certificate on an end-to-end tunnel that runs through `conn`'s
   * session, that it is behind this GW. Only now is it recorded in the GW's PN, and only now does the GW get the
   * keys and signers of the PNE's Service Groups. A PNE has one place: any other GW loses it at once.
   */
  async #proveAttach(conn: GwConn, pt: PneTunnel): Promise<void> {
    const pneId = pt.identity;
    if (this.#st.closed || this.#st.gwConns.get(conn.id) !== conn || !liveTunnel(this.#st, pt)) return;
    if (this.#st.revokedIds.has(pneId)) {
      pt.ms.destroy();
      return;
    }
    const media = conn.claims.get(pneId) ?? (await this.store.getPne(pneId))?.media ?? [];
    const { previousGwId } = await this.store.attachPne(pneId, conn.id, media);
    const wasHere = conn.attached.has(pneId) && this.#st.pneAt.get(pneId) === conn.id;
    this.#st.pneAt.set(pneId, conn.id);
    conn.attached.add(pneId);
    // Its tunnels through other GWs are no proof any more: close them, and those GWs lose it.
    for (const other of this.#st.tunnels.get(pneId) ?? []) if (other.gw !== conn) other.ms.destroy();
    for (const c of this.#st.gwConns.values()) if (c !== conn) c.attached.delete(pneId);
    const moved = previousGwId !== null && previousGwId !== conn.id ? previousGwId : undefined;
    if (moved !== undefined) {
      await this.store.appendAudit({
        actor: pneId,
        action: 'pne.move',
        subject: pneId,
        detail: { from: moved },
      });
    }
    if (wasHere && moved === undefined) return;
    emit(this.#st, { kind: 'pn.change', gwId: conn.id, pneId, online: true });
    if (conn.registered) await this.#catchUp(pneId, conn.id, moved);
  }

  /** Catch-up: the current key (only) of every SG the PNE is a member of, with replay anchors. */
  async #catchUp(pneId: string, gwId: string, previousGwId: string | undefined): Promise<void> {
    for (const st of this.#st.groups.values()) {
      if (!st.members.has(pneId)) continue;
      await withSg(this.#st, st.sgId, async () => {
        if (!this.#st.groups.has(st.sgId)) return;
        await sendCurrentKey(this.#st, st, gwId);
        // The old GW gets the same epoch without the PNE in its targets: it stops serving it.
        if (previousGwId !== undefined) await sendCurrentKey(this.#st, st, previousGwId);
      });
    }
  }

  /** `conn` no longer serves `pneId` (its tunnel closed, or the GW said it went offline). */
  async #loseAttachment(conn: GwConn, pneId: string, closeTunnels: boolean): Promise<void> {
    if (!conn.attached.delete(pneId)) return;
    if (closeTunnels) for (const t of this.#st.tunnels.get(pneId) ?? []) if (t.gw === conn) t.ms.destroy();
    if (this.#st.pneAt.get(pneId) !== conn.id) return;
    try {
      await this.store.setOnline(pneId, false);
    } catch {}
    emit(this.#st, { kind: 'pn.change', gwId: conn.id, pneId, online: false });
  }

  /** Rule K2: `conn` may report `pneId`'s ack of an epoch whose delivery to it named `pneId`. */
  #mayAckFor(conn: GwConn, st: SgState, targets: ReadonlySet<string>, pneId: string): boolean {
    return targets.has(pneId) && this.#st.pneAt.get(pneId) === conn.id && st.members.has(pneId);
  }

  // ------------------------------------------------------------------------------------------- tunnels

  #onTunnel(conn: GwConn, stream: TunnelStream): void {
    acceptTunnelTls(stream, {
      certPem: this.#st.serverCert.certPem,
      keyPem: this.#st.serverCert.keyPem,
      caPem: this.#st.ca.certPem,
      allowedRoles: ['pne'],
      isRevoked: (id, serial) => this.isRevokedSync(id, serial),
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
        let set = this.#st.tunnels.get(pt.identity);
        if (!set) {
          set = new Set();
          this.#st.tunnels.set(pt.identity, set);
        }
        set.add(pt);
        countSession(this.#st, 'pne', true);
        ms.on('message', (m: Buffer) => this.#onTunnelMessage(pt, m));
        ms.once('close', () => {
          countSession(this.#st, 'pne', false);
          const s = this.#st.tunnels.get(pt.identity);
          s?.delete(pt);
          if (s?.size === 0) this.#st.tunnels.delete(pt.identity);
          // Its last tunnel through this GW is gone: the GW loses the PNE (rule A1).
          if ([...(s ?? [])].some((o) => o.gw === conn)) return;
          conn.queue = conn.queue.then(() => this.#loseAttachment(conn, pt.identity, false));
        });
        // The tunnel is the proof that this PNE is behind this GW (rule A1), handled in order with the GW's
        // own messages.
        conn.queue = conn.queue.then(() =>
          this.#proveAttach(conn, pt).catch((e) =>
            this.#st.log.warn({ code: codeOf(e), pne: pt.identity }, 'attachment not recorded'),
          ),
        );
      },
      (e) => this.#st.log.info({ code: (e as { code?: string }).code }, 'tunnel refused'),
    );
  }

  #onTunnelMessage(pt: PneTunnel, m: Buffer): void {
    let msg: ControlMessage;
    try {
      msg = decodeControl(m);
    } catch (e) {
      pt.control.sendError(codeOf(e), undefined, (e as CpnsError).field);
      return;
    }
    if (pt.control.accept(msg)) return;
    handleInOrder(pt, pt.control, msg, (x) => this.#handlePne(pt, x), this.#st.log, 'PNE');
  }

  async #handlePne(pt: PneTunnel, msg: ControlMessage): Promise<void> {
    if (this.#st.closed) return;
    if (this.#st.revokedIds.has(pt.identity)) {
      pt.ms.destroy();
      return;
    }
    const me = pt.identity;
    switch (msg.t) {
      case 'sg.create': {
        const r = await this.#createGroup(
          {
            name: msg.name,
            joinPolicy: msg.joinPolicy,
            suite: msg.suite,
            sourceAuth: msg.sourceAuth,
            rekeyIntervalSec: msg.rekeyIntervalSec,
            members: [me],
          },
          me,
        );
        pt.control.send({ t: 'sg.created', id: msg.id, sgId: r.sgId, epoch: r.epoch });
        return;
      }
      case 'sg.delete': {
        const st = groupOf(this.#st, msg.sgId);
        if (st.ownerId !== me) fail(ErrorCode.FORBIDDEN, 'sgId');
        await this.#deleteGroup(msg.sgId, me);
        pt.control.sendOk(msg.id);
        return;
      }
      case 'sg.join': {
        const st = groupOf(this.#st, msg.sgId);
        if (st.members.has(me)) fail(ErrorCode.ALREADY_MEMBER, 'sgId');
        if (st.joinPolicy === 'invite' && st.ownerId !== me && !(await this.store.hasInvite(msg.sgId, me))) {
          fail(ErrorCode.FORBIDDEN, 'sgId');
        }
        await this.#addMember(msg.sgId, me, me);
        pt.control.sendOk(msg.id);
        return;
      }
      case 'sg.invite': {
        const st = groupOf(this.#st, msg.sgId);
        if (st.ownerId !== me) fail(ErrorCode.FORBIDDEN, 'sgId');
        if (st.members.has(msg.pneId)) fail(ErrorCode.ALREADY_MEMBER, 'pneId');
        await this.store.invite(msg.sgId, msg.pneId);
        await this.store.appendAudit({
          actor: me,
          action: 'member.invite',
          sgId: msg.sgId,
          subject: msg.pneId,
        });
        pt.control.sendOk(msg.id);
        return;
      }
      case 'sg.leave': {
        await this.#removeMember(msg.sgId, me, 'leave', me);
        pt.control.sendOk(msg.id);
        return;
      }
      case 'sg.remove': {
        const st = groupOf(this.#st, msg.sgId);
        if (st.ownerId !== me && msg.pneId !== me) fail(ErrorCode.FORBIDDEN, 'pneId');
        await this.#removeMember(msg.sgId, msg.pneId, msg.pneId === me ? 'leave' : 'remove', me);
        pt.control.sendOk(msg.id);
        return;
      }
      case 'pne.signkey': {
        this.#st.signKeys.set(me, Buffer.from(msg.key));
        pt.control.sendOk(msg.id);
        for (const st of this.#st.groups.values()) if (st.members.has(me)) pushSigners(this.#st, st);
        return;
      }
      case 'key.fetch': {
        const joining = groupOf(this.#st, msg.sgId);
        if (joining.pendingJoiners.has(me)) await joining.joinUpdate?.done;
        // Under the SG's lock: a join update queued before this fetch runs first, so a joiner never fetches
        // the key of an epoch from before its join (backward secrecy on join).
        const { st, k } = await withSg(this.#st, msg.sgId, async () => {
          const st = groupOf(this.#st, msg.sgId);
          if (!st.members.has(me)) fail(ErrorCode.NOT_MEMBER, 'sgId');
          const k = await this.store.getCurrentKey(msg.sgId);
          if (!k) fail(ErrorCode.NOT_FOUND, 'sgId');
          return { st, k };
        });
        try {
          pt.control.send({
            t: 'key.deliver',
            id: msg.id,
            sgId: msg.sgId,
            epoch: k.epoch,
            key: k.key,
            suite: WIRE_SUITE[st.suite],
            reason: wireReason(k.reason),
            graceSec: 0,
            senderAnchors: anchors(this.#st, st.sgId, k.epoch),
            ...(st.sourceAuth ? { sourceAuth: true } : {}),
          });
        } finally {
          k.key.fill(0);
        }
        await this.store.appendAudit({ actor: me, action: 'key.fetch', sgId: st.sgId, epoch: k.epoch });
        return;
      }
      default:
        fail(ErrorCode.UNEXPECTED_MESSAGE);
    }
  }

  // ------------------------------------------------------------------------------------------- relay

  /**
   * A message destined to the Service Group from the CPNS Server itself (seed §5.3.3: the Group Key MAC shows
   * a receiver the message comes "from SG member PNE or CPNS Server"). Protected with the current Group Key
   * under the nil sender id; returns the protected bytes.
   */
  sendToGroup(sgId: string, data: Uint8Array | string): Promise<Buffer> {
    return sendToGroup(this.#st, sgId, data);
  }

  // ------------------------------------------------------------------------------------------- groups & keys

  async #createGroup(o: CreateGroupInput, actor: string): Promise<{ sgId: string; epoch: number }> {
    const suiteName = o.suite ?? 'aes-256-gcm';
    const suite = SUITE_OF[suiteName];
    if (suite === undefined) fail(ErrorCode.UNSUPPORTED_SUITE, 'suite');
    const members = [...new Set((o.members ?? []).map(toPneIdentity))];
    for (const m of members) await this.#requireEnrolledPne(m);
    const g = await this.store.createGroup(
      {
        name: o.name,
        ownerId: actor === OPERATOR ? OPERATOR : actor,
        joinPolicy: o.joinPolicy ?? 'invite',
        suite,
        sourceAuth: o.sourceAuth ?? false,
        updateOnJoin: o.updateOnJoin ?? true,
        rekeyIntervalSec: o.rekeyIntervalSec ?? null,
        deliveryPolicy: o.deliveryPolicy ? { ...o.deliveryPolicy } : null,
        members,
      },
      {
        // In the group's transaction (docs/store.md "Audit atomicity").
        audit: [
          { actor, action: 'group.create', detail: { name: o.name } },
          ...members.map((m) => ({ actor, action: 'member.add', subject: m })),
        ],
      },
    );
    const st: SgState = {
      sgId: g.sgId,
      suite,
      ownerId: g.ownerId,
      joinPolicy: g.joinPolicy,
      rekeyIntervalSec: g.rekeyIntervalSec,
      members: new Set(members),
      epoch: 0,
      prevEpoch: undefined,
      prevUntil: 0,
      timer: undefined,
      targetGws: new Set(),
      deliveryPolicy: o.deliveryPolicy,
      sourceAuth: o.sourceAuth ?? false,
      updateOnJoin: g.updateOnJoin,
      pendingJoiners: new Set(),
      joinUpdate: undefined,
    };
    this.#st.groups.set(g.sgId, st);
    const epoch = await withSg(this.#st, g.sgId, () => rekeyLocked(this.#st, st, 'create', actor));
    startTimer(this.#st, st);
    emit(this.#st, { kind: 'sg.create', sgId: g.sgId, epoch });
    return { sgId: g.sgId, epoch };
  }

  async #deleteGroup(sgId: string, actor: string): Promise<void> {
    await withSg(this.#st, sgId, async () => {
      const st = groupOf(this.#st, sgId);
      const gws = new Set(st.targetGws);
      for (const m of st.members) {
        const gw = this.#st.pneAt.get(m);
        if (gw !== undefined) gws.add(gw);
      }
      await this.store.deleteGroup(sgId, {
        audit: [
          { actor, action: 'key.delete', epoch: st.epoch },
          { actor, action: 'group.delete' },
        ],
      });
      if (st.timer) clearInterval(st.timer);
      this.#st.groups.delete(sgId);
      for (const k of [...this.#st.marks.keys()]) if (k.startsWith(`${sgId}|`)) this.#st.marks.delete(k);
      for (const k of this.#st.rotatedAt.keys()) if (k.startsWith(`${sgId}|`)) this.#st.rotatedAt.delete(k);
      emit(this.#st, { kind: 'sg.delete', sgId });
      for (const gw of gws) {
        try {
          this.#st.gwConns.get(gw)?.control.send({ t: 'sg.deleted', sgId });
        } catch {}
      }
    });
  }

  async #addMember(sgId: string, pne: string, actor: string): Promise<void> {
    await this.#addMembers(sgId, [pne], actor);
  }

  /**
   * Adds members. With update on join (issue #8 §8, docs/protocol.md "Backward secrecy on join"), a joiner never
   * gets the current key: one update (reason `join`) follows, shared by every join queued before it runs — so a
   * batch, or joins that arrive together, cost one update. Without it, a joiner gets the current key (it can read
   * what was sent earlier in this epoch).
   */
  async #addMembers(sgId: string, pnes: readonly string[], actor: string): Promise<void> {
    await withSg(this.#st, sgId, async () => {
      const st = groupOf(this.#st, sgId);
      const fresh = [...new Set(pnes)];
      if (fresh.some((p) => st.members.has(p))) fail(ErrorCode.ALREADY_MEMBER, 'pneId');
      for (const p of fresh) await this.#requireEnrolledPne(p);
      for (const p of fresh) {
        await this.store.addMember(sgId, p);
        st.members.add(p);
        await this.store.appendAudit({ actor, action: 'member.add', sgId, subject: p });
        emit(this.#st, { kind: 'member.add', sgId, pneId: p });
      }
      if (fresh.length === 0) return;
      if (st.updateOnJoin) {
        for (const p of fresh) st.pendingJoiners.add(p);
        this.#scheduleJoinUpdate(st, actor);
        return;
      }
      for (const gw of new Set(fresh.map((p) => servingGw(this.#st, p)))) {
        if (gw !== undefined) await sendCurrentKey(this.#st, st, gw);
      }
      pushSigners(this.#st, st); // the other members learn the newcomers' signing keys
    });
  }

  /**
   * One join update per window: joins within `joinUpdateDelayMs` of the first share it. Any new epoch in between
   * (a leave, an operator update) serves the joiners too, and then this one is skipped.
   */
  #scheduleJoinUpdate(st: SgState, actor: string): void {
    if (st.joinUpdate) return;
    let resolve: () => void = () => {};
    const done = new Promise<void>((r) => {
      resolve = r;
    });
    const run = async (): Promise<void> => {
      if (st.joinUpdate?.run !== run) return;
      clearTimeout(st.joinUpdate.timer);
      st.joinUpdate = undefined;
      try {
        await withSg(this.#st, st.sgId, async () => {
          if (this.#st.groups.get(st.sgId) === st && st.pendingJoiners.size > 0)
            await rekeyLocked(this.#st, st, 'join', actor);
        });
      } catch (e) {
        this.#st.log.warn({ code: codeOf(e), sgId: st.sgId }, 'join update failed');
      } finally {
        resolve();
      }
    };
    const timer = setTimeout(
      () => void run(),
      this.#st.opts.joinUpdateDelayMs ?? SERVER_DEFAULTS.joinUpdateDelayMs,
    );
    timer.unref();
    st.joinUpdate = { timer, run, done };
  }

  /** Only an enrolled, unrevoked PNE can be a member (a never-enrolled id would be a ghost that rekeys on leave). */
  async #requireEnrolledPne(pne: string): Promise<void> {
    if (this.#st.revokedIds.has(pne)) fail(ErrorCode.REVOKED, 'pneId');
    const idn = await this.store.getIdentity(pne);
    if (idn?.role !== 'pne') fail(ErrorCode.NOT_FOUND, 'pneId');
    if (idn.revokedAt !== null) fail(ErrorCode.REVOKED, 'pneId');
  }

  async #removeMember(
    sgId: string,
    pne: string,
    reason: 'leave' | 'remove' | 'revoke',
    actor: string,
  ): Promise<void> {
    await withSg(this.#st, sgId, async () => {
      const st = groupOf(this.#st, sgId);
      if (!st.members.has(pne)) fail(ErrorCode.NOT_MEMBER, 'pneId');
      await this.store.removeMember(sgId, pne, {
        audit: [{ actor, action: 'member.remove', subject: pne, reason }],
      });
      st.members.delete(pne);
      emit(this.#st, { kind: 'member.remove', sgId, pneId: pne, reason });
      await rekeyLocked(this.#st, st, reason, actor);
    });
    if (reason !== 'leave') {
      for (const t of this.#st.tunnels.get(pne) ?? []) {
        try {
          t.control.send({ t: 'sg.remove', sgId, pneId: pne });
        } catch {}
      }
    }
  }

  async #revoke(identity: string): Promise<void> {
    let role: string;
    try {
      role = parseIdentity(identity).role;
    } catch {
      fail(ErrorCode.INVALID_ARGUMENT, 'identity');
    }
    const idn = await this.store.getIdentity(identity);
    if (!idn) fail(ErrorCode.NOT_FOUND, 'identity');
    await this.store.revokeIdentity(identity);
    this.#st.revokedIds.add(identity);
    this.#st.revokedSerials.add(idn.certSerial);
    await this.store.appendAudit({ actor: OPERATOR, action: 'identity.revoke', subject: identity });
    emit(this.#st, { kind: 'identity.revoke', identity });
    this.#st.log.warn({ identity }, 'identity revoked');
    if (role === 'gw') {
      this.#st.secure.closeSessionsOf(identity, CloseCode.REVOKED, 'revoked');
      const pnes = await this.store.deregisterGateway(identity);
      for (const p of pnes) this.#st.pneAt.delete(p);
      await rekeyGroupsOf(this.#st, pnes, 'revoke', OPERATOR);
      return;
    }
    for (const t of this.#st.tunnels.get(identity) ?? []) t.ms.destroy();
    const gw = this.#st.pneAt.get(identity);
    if (gw !== undefined) {
      // Server -> GW pne.detach: "drop this PNE and refuse it" (docs/protocol.md, Revocation).
      try {
        this.#st.gwConns.get(gw)?.control.send({ t: 'pne.detach', pneId: identity });
      } catch {}
      this.#st.gwConns.get(gw)?.attached.delete(identity);
      await this.store.detachPne(identity);
      this.#st.pneAt.delete(identity);
    }
    for (const st of [...this.#st.groups.values()]) {
      if (st.members.has(identity)) await this.#removeMember(st.sgId, identity, 'revoke', OPERATOR);
    }
  }

  // ------------------------------------------------------------------------------------------- events & metrics

  /** After a PNE ack: event, and the ack latency once every online member of the SG has this epoch. */
  async #onKeyAcked(
    sgId: string,
    epoch: number,
    gwId: string,
    pneId: string | undefined,
    memberAck: boolean,
  ): Promise<void> {
    emit(this.#st, { kind: 'key.ack', sgId, epoch, gwId, ...(pneId !== undefined ? { pneId } : {}) });
    const k = `${sgId}|${epoch}`;
    const t0 = this.#st.rotatedAt.get(k);
    if (t0 === undefined || !memberAck) return;
    const st = await this.store.deliveryStatus(sgId);
    // A staged periodic epoch (activation ahead) is acked before it becomes current: still counts.
    if (epoch < st.currentEpoch) return;
    const online = st.members.filter((m) => m.online);
    if (online.length === 0 || online.some((m) => (m.ackedEpoch ?? 0) < epoch)) return;
    this.#st.rotatedAt.delete(k);
    this.metrics.ackLatency((Date.now() - t0) / 1000);
  }

  // ------------------------------------------------------------------------------------------- admin

  #makeAdmin(): ServerAdmin {
    return {
      createToken: async (role, ttlSec = SERVER_DEFAULTS.tokenTtlSec) => {
        if (role !== 'gw' && role !== 'pne') fail(ErrorCode.INVALID_ARGUMENT, 'role');
        const token = randomBytes(24).toString('base64url');
        await this.store.createToken({ tokenHash: hashToken(token), role, ttlSec });
        await this.store.appendAudit({ actor: OPERATOR, action: 'token.create', subject: role });
        return token;
      },
      revoke: (identity) => this.#revoke(identity),
      createGroup: (o) => this.#createGroup(o, OPERATOR),
      deleteGroup: (sgId) => this.#deleteGroup(sgId, OPERATOR),
      updatePolicy: (sgId, patch) =>
        withSg(this.#st, sgId, async () => {
          const st = groupOf(this.#st, sgId);
          const { deliveryPolicy, ...rest } = patch;
          await this.store.updateGroup(sgId, {
            ...rest,
            ...(deliveryPolicy !== undefined
              ? { deliveryPolicy: deliveryPolicy ? { ...deliveryPolicy } : null }
              : {}),
          });
          if (patch.joinPolicy !== undefined) st.joinPolicy = patch.joinPolicy;
          // Applies from the next key delivery (devices learn the SG's policy with its key).
          if (patch.sourceAuth !== undefined) st.sourceAuth = patch.sourceAuth;
          if (patch.updateOnJoin !== undefined) st.updateOnJoin = patch.updateOnJoin;
          if (patch.deliveryPolicy !== undefined) st.deliveryPolicy = patch.deliveryPolicy ?? undefined;
          if (patch.rekeyIntervalSec !== undefined) {
            st.rekeyIntervalSec = patch.rekeyIntervalSec;
            startTimer(this.#st, st);
          }
          await this.store.appendAudit({
            actor: OPERATOR,
            action: 'sg.policy',
            sgId,
            detail: { ...patch },
          });
          emit(this.#st, { kind: 'sg.policy', sgId });
        }),
      addMember: (sgId, pne) => this.#addMember(sgId, toPneIdentity(pne), OPERATOR),
      addMembers: (sgId, pnes) => this.#addMembers(sgId, pnes.map(toPneIdentity), OPERATOR),
      removeMember: (sgId, pne) => this.#removeMember(sgId, toPneIdentity(pne), 'remove', OPERATOR),
      rekey: async (sgId) => {
        const epoch = await withSg(this.#st, sgId, () =>
          rekeyLocked(this.#st, groupOf(this.#st, sgId), 'operator', OPERATOR),
        );
        return { epoch };
      },
      listPns: () => this.store.listPns(),
      listGroups: async () => {
        const out: GroupSummary[] = [];
        for (const g of await this.store.listGroups()) {
          const st = this.#st.groups.get(g.sgId);
          out.push({ ...g, currentEpoch: st?.epoch ?? 0, members: [...(st?.members ?? [])].sort() });
        }
        return out;
      },
      groupStatus: async (sgId) => {
        groupOf(this.#st, sgId);
        return this.store.deliveryStatus(sgId);
      },
    };
  }
}

export { uuidToBytes };
