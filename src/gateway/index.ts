/**
 * The PN Gateway role (docs/protocol.md): one secure session up to the CPNS Server (reconnecting), one secure
 * session to each PNE of its PN, unicast Group Key delivery to the member PNEs of its PN (CPNS TS §5.3.3
 * "deliver Group Key"), local fan-out and upstream forwarding of messages destined to a Service Group, and the
 * relay of the PNE ↔ server end-to-end TLS tunnels (bytes it cannot read).
 */
import { EventEmitter } from 'node:events';
import type { ControlMessage, Medium, MessageOf } from '../core/codec/index.js';
import { CpnsError, ErrorCode, isCpnsError } from '../core/errors.js';
import { activationTime } from '../core/group/activation.js';
import { readHeader } from '../core/group/header.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../core/group/receiver.js';
import { bytesToUuid } from '../core/ids.js';
import {
  DEFAULT_POLICY,
  type DeliveryPolicy,
  GatewayBroadcaster,
  GatewayBroadcastState,
  type GkdkIssue,
  type MemberInfo,
} from '../delivery/index.js';
import {
  Control,
  codeOf,
  decodeControl,
  fail,
  type Logger,
  readEnrollRequest,
  readUpstreamFrame,
  senderIdentity,
  serveFrame,
  silentLogger,
  uuidOf,
  uuidToBytes,
} from '../roles/control.js';
import { generateKeyAndCsr, identityFromCert } from '../transport/ca.js';
import { decodeFrame } from '../transport/framing.js';
import {
  type BackoffOptions,
  CloseCode,
  type ConnectionLimits,
  connectAnonymousSession,
  type HeartbeatOptions,
  ReconnectingClient,
  SecureServer,
  type Session,
} from '../transport/session.js';
import { TunnelRelay, type TunnelRelayOptions } from '../transport/tunnel.js';
import { BroadcastMedium } from '../transport/udp.js';

export interface Credentials {
  identity: string;
  certPem: string;
  keyPem: string;
  caPem: string;
}

export interface GatewayOptions {
  serverUrl: string;
  credentials: Credentials;
  /** Listen address for PNEs. Default 127.0.0.1. */
  host?: string;
  /** Port of the PNE session listener (mTLS: PNE certificates of the CPNS CA only). Default 0 (ephemeral). */
  port?: number;
  /** Port of the PNE enrollment listener (anonymous TLS, relayed to the server). Default 0 (ephemeral). */
  enrollPort?: number;
  /** Limits on not-yet-authenticated connections of the session listener (docs/transport.md "Limits"). */
  limits?: Partial<ConnectionLimits>;
  /** The same for the enrollment listener. */
  enrollLimits?: Partial<ConnectionLimits>;
  logger?: Logger;
  reconnect?: BackoffOptions;
  heartbeat?: HeartbeatOptions | false;
  /** Media this GW offers its PNEs (reported in gw.register). Default ['wifi']. */
  media?: Medium[];
  /** Tests only: observe (or tamper with) the relayed tunnel bytes. */
  relayTap?: TunnelRelayOptions['tap'];
  /** How long start() waits for the first registration with the server (ms). Default 15 000. */
  startTimeoutMs?: number;
  /**
   * The GW's own data directory: its broadcast state (Subset-Difference tree, leaf assignments, broadcast-signing
   * key) is kept there, encrypted at rest, so GKDKs survive a GW restart. Broadcast delivery is off without it.
   */
  dataDir?: string;
  /**
   * Broadcast media (one UDP multicast group per medium) for broadcast Group Key delivery, e.g.
   * `[{ name: 'wifi', group: '239.255.77.1', port: 47701 }, { name: 'bt', group: '239.255.77.2', port: 47702 }]`.
   * Needs `dataDir`. Their names are also reported to the server as media unless `media` is given.
   */
  broadcastMedia?: BroadcastMediumConfig[];
  /** Interface to send multicast on. Default 127.0.0.1 (loopback). */
  broadcastInterface?: string;
  /** Leaves of the broadcast tree (power of two, 2..65536). Default 1024. Used when the tree is created. */
  broadcastCapacity?: number;
  /** Rebuild the tree once this many leaves are spent (departed PNEs). Default capacity / 4. */
  maxSpentLeaves?: number;
  /** Delivery policy until the server pushes one (gw.policy). Default DEFAULT_POLICY. */
  deliveryPolicy?: DeliveryPolicy;
}

export interface BroadcastMediumConfig {
  name: Medium;
  group: string;
  port: number;
}

type DeliveryEntry = MessageOf<'key.delivery.report'>['entries'][number];
/**
 * Every default and limit of a PN GW in one place (issue #9; the options above document each one). Limits on
 * unauthenticated connections are the transport's (DEFAULT_CONNECTION_LIMITS, docs/transport.md "Limits").
 */
export const GATEWAY_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  /** Ephemeral by default; `cpns gateway --port` fixes it. */
  port: 0,
  enrollPort: 0,
  /** How long start() waits for the first registration with the server (ms). */
  startTimeoutMs: 15_000,
  /** Leaves of a new broadcast tree. */
  broadcastCapacity: 1024,
  /** An anonymous enrollment session lives at most this long (ms). */
  enrollSessionMs: 30_000,
  /** How long a relayed enrollment (and the device side of enrollment) waits for the server (ms). */
  enrollRelayTimeoutMs: 15_000,
  /** End-to-end tunnels one PNE session may have open through this GW at once. */
  maxTunnelsPerPne: 4,
  /** Per-PNE delivery reports wait at most this long (ms), or until this many entries, before going upstream. */
  reportBatchMs: 10,
  reportBatchMax: 1024,
});
const REPORT_BATCH_MS = GATEWAY_DEFAULTS.reportBatchMs;
const REPORT_BATCH_MAX = GATEWAY_DEFAULTS.reportBatchMax;

interface KeyEntry {
  epoch: number;
  key: Buffer;
  suite: MessageOf<'key.deliver'>['suite'];
  reason: MessageOf<'key.deliver'>['reason'];
  graceSec: number;
  previousEpoch: number | undefined;
  anchors: MessageOf<'key.deliver'>['senderAnchors'];
  activateAt: number | undefined;
  /** Local time (this GW's clock) at which a key distributed ahead of its activation becomes active. */
  activateBy: number | undefined;
  targets: Set<string>;
  /** The SG's own delivery policy (from the server), overriding the GW-wide one. */
  policy: DeliveryPolicy | undefined;
  /** The SG requires signed messages (passed on to the member PNEs with the key). */
  sourceAuth: boolean;
}

interface PneConn {
  readonly id: string;
  readonly session: Session;
  readonly control: Control;
  /** Highest epoch sent to this PNE per SG (on this session). */
  readonly sent: Map<string, number>;
  media: Medium[];
  /** Highest epoch the PNE acked per SG (it holds the SG: later updates may go by broadcast). */
  readonly acked: Map<string, number>;
  /** Highest epoch reported to the server per SG (one report per PNE and epoch). */
  readonly reported: Map<string, number>;
  /** Epoch per SG this PNE was sent by broadcast / by unicast fallback (how its ack is reported). */
  readonly broadcastEpoch: Map<string, number>;
  readonly fallbackEpoch: Map<string, number>;
  /** Tree (id:version) of the GKDK the PNE acked; broadcast-capable only while it matches the current tree. */
  gkdkTree: string | undefined;
  /** The PNE said hello (pne.attach); it is attached upstream whenever the GW is registered. */
  attached: boolean;
  detached: boolean;
  queue: Promise<void>;
}

/**
 * Device side of enrollment on an anonymous session to an endpoint's enrollment listener (`enrollUrl` of the
 * server or the GW: its own port, docs/transport.md); `expectedRole` is the role of the endpoint's certificate.
 */
export async function enrollAt(
  enrollUrl: string,
  caPem: string,
  token: string,
  role: 'gw' | 'pne',
  expectedRole: 'server' | 'gw',
): Promise<Credentials> {
  const { keyPem, csrPem } = await generateKeyAndCsr(`cpns-${role}`);
  const s = await connectAnonymousSession(enrollUrl, {
    caPem,
    expectedServerRole: expectedRole,
    heartbeat: false,
  });
  const control = Control.forSession(s);
  s.on('frame', (buf: Buffer) => {
    try {
      const f = decodeFrame(buf, { maxFrame: s.maxPayload });
      if (f.kind === 'control') control.accept(decodeControl(f.payload));
    } catch {}
  });
  s.once('close', () => control.failAll(new CpnsError(ErrorCode.ENROLL_REFUSED, 'enrollment refused')));
  try {
    const r = await control.request(
      { t: 'enroll.request', token, role, csr: csrPem },
      GATEWAY_DEFAULTS.enrollRelayTimeoutMs,
    );
    if (r.t !== 'enroll.response') fail(ErrorCode.UNEXPECTED_MESSAGE);
    const identity = identityFromCert(r.cert);
    if (!identity.startsWith(`urn:cpns:${role}:`)) fail(ErrorCode.ENROLL_REFUSED);
    return { identity, certPem: r.cert, keyPem, caPem };
  } finally {
    s.close();
  }
}

/**
 * Events: 'registered', 'key' {sgId, epoch, targets}, 'revoked', 'delivery' {sgId, epoch, broadcast[], unicast[],
 * datagrams, bytes} (one per Group Key delivery in this PN), 'gkdk' {pneId, treeId, treeVersion} (a PNE acked its
 * GKDK), 'policy' (DeliveryPolicy pushed by the server).
 */
export class PnGateway extends EventEmitter {
  readonly identity: string;
  readonly #opts: GatewayOptions;
  readonly #log: Logger;
  readonly #pneServer: SecureServer;
  /** The anonymous surface: its own listener and limits (issue #8 §3). */
  readonly #enrollServer: SecureServer;
  readonly #client: ReconnectingClient;
  readonly #pnes = new Map<string, PneConn>();
  readonly #keys = new Map<string, KeyEntry>();
  readonly #revoked = new Set<string>();
  readonly #broadcaster: GatewayBroadcaster | undefined;
  readonly #media: BroadcastMedium[];
  /** Broadcast sends, one after the other (datagrams of successive epochs leave in order). */
  #bq: Promise<void> = Promise.resolve();
  readonly #reports = new Map<string, { sgId: string; epoch: number; entries: DeliveryEntry[] }>();
  #reportTimer: NodeJS.Timeout | undefined;
  #relay: TunnelRelay | null = null;
  #up: Session | null = null;
  #upControl: Control | null = null;
  #registered = false;
  #closed = false;

  private constructor(
    opts: GatewayOptions,
    pneServer: SecureServer,
    enrollServer: SecureServer,
    client: ReconnectingClient,
    broadcaster: GatewayBroadcaster | undefined,
    media: BroadcastMedium[],
  ) {
    super();
    this.#opts = opts;
    this.identity = opts.credentials.identity;
    this.#log = opts.logger ?? silentLogger;
    this.#pneServer = pneServer;
    this.#enrollServer = enrollServer;
    this.#client = client;
    this.#broadcaster = broadcaster;
    this.#media = media;
    if (broadcaster) {
      broadcaster.on('fallback', (sgId: string, epoch: number, pnes: string[]) =>
        this.#onFallback(sgId, epoch, pnes),
      );
      broadcaster.on('reissue', (pnes: string[]) => this.#onReissue(pnes));
    }
  }

  /** Enrolls a GW with a one-time token at the server's enrollment listener (`CpnsServer.enrollUrl`). */
  static enroll(o: { enrollUrl: string; caPem: string; token: string }): Promise<Credentials> {
    return enrollAt(o.enrollUrl, o.caPem, o.token, 'gw', 'server');
  }

  static async start(opts: GatewayOptions): Promise<PnGateway> {
    const c = opts.credentials;
    let self: PnGateway | undefined;
    const pneServer = new SecureServer({
      certPem: c.certPem,
      keyPem: c.keyPem,
      caPem: c.caPem,
      host: opts.host ?? GATEWAY_DEFAULTS.host,
      port: opts.port ?? GATEWAY_DEFAULTS.port,
      path: '/cpns',
      allowedRoles: ['pne'],
      heartbeat: opts.heartbeat,
      isRevoked: (id) => (self ? self.#revoked.has(id) : false),
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
    const client = new ReconnectingClient(
      opts.serverUrl,
      {
        certPem: c.certPem,
        keyPem: c.keyPem,
        caPem: c.caPem,
        expectedServerRole: 'server',
        heartbeat: opts.heartbeat,
      },
      opts.reconnect,
    );
    const { broadcaster, media } = await PnGateway.#openBroadcast(opts);
    const gw = new PnGateway(opts, pneServer, enrollServer, client, broadcaster, media);
    self = gw;
    pneServer.on('session', (s: Session) => gw.#onPneSession(s));
    enrollServer.on('session', (s: Session) => gw.#onPneSession(s));
    for (const srv of [pneServer, enrollServer]) {
      srv.on('refused', (reason: string, address?: string) =>
        gw.#log.info({ reason, address }, 'PNE connection refused'),
      );
    }
    await pneServer.listen();
    await enrollServer.listen();
    client.on('session', (s: Session) => gw.#onUpstream(s));
    client.on('connect-error', (err: Error & { code?: string }) =>
      gw.#log.debug({ code: err.code }, 'server connect failed'),
    );
    const registered = new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new CpnsError(ErrorCode.TIMEOUT, 'could not register with the server in time')),
        opts.startTimeoutMs ?? GATEWAY_DEFAULTS.startTimeoutMs,
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
    client.on('fatal', (err: Error & { code?: string }) => {
      gw.#log.error({ code: err.code }, 'server refused this GW');
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

  static async #openBroadcast(
    opts: GatewayOptions,
  ): Promise<{ broadcaster: GatewayBroadcaster | undefined; media: BroadcastMedium[] }> {
    const cfg = opts.broadcastMedia ?? [];
    if (opts.dataDir === undefined || cfg.length === 0) return { broadcaster: undefined, media: [] };
    const state = GatewayBroadcastState.open(
      opts.dataDir,
      uuidToBytes(uuidOf(opts.credentials.identity)),
      opts.broadcastCapacity ?? GATEWAY_DEFAULTS.broadcastCapacity,
    );
    const media: BroadcastMedium[] = [];
    try {
      for (const m of cfg) {
        media.push(
          await BroadcastMedium.open({
            name: m.name,
            group: m.group,
            port: m.port,
            listen: false,
            ...(opts.broadcastInterface ? { interfaceAddress: opts.broadcastInterface } : {}),
          }),
        );
      }
    } catch (e) {
      for (const m of media) m.close();
      throw e;
    }
    const broadcaster = new GatewayBroadcaster({
      state,
      media,
      policy: opts.deliveryPolicy ?? DEFAULT_POLICY,
      ...(opts.maxSpentLeaves !== undefined ? { maxSpentLeaves: opts.maxSpentLeaves } : {}),
    });
    return { broadcaster, media };
  }

  get url(): string {
    return this.#pneServer.url;
  }

  /** The delivery policy in force (the server's, once pushed), or undefined when broadcast is not set up. */
  get deliveryPolicy(): DeliveryPolicy | undefined {
    return this.#broadcaster?.policy;
  }

  /** Current broadcast tree (id, version), or undefined when broadcast is not set up. */
  get broadcastTree(): { treeId: string; treeVersion: number } | undefined {
    return this.#broadcaster?.tree;
  }

  /** Connected PNEs that acked a GKDK of the current tree (tests, status). */
  get broadcastCapable(): string[] {
    const t = this.#treeTag();
    return [...this.#pnes.values()].filter((c) => t !== undefined && c.gkdkTree === t).map((c) => c.id);
  }

  get enrollUrl(): string {
    return this.#enrollServer.anonymousUrl ?? '';
  }

  get connected(): boolean {
    return this.#registered && this.#up?.isOpen === true;
  }

  /** Connected PNE identities (tests, status). */
  get pnes(): string[] {
    return [...this.#pnes.keys()];
  }

  /** Epoch of the Group Key this GW holds for an SG (tests, status). */
  keyEpoch(sgId: string): number | undefined {
    return this.#keys.get(sgId)?.epoch;
  }

  /** Orderly removal of this PN: the server detaches its PNEs (and updates their SGs' keys). */
  async deregister(): Promise<void> {
    if (this.#upControl && this.#registered) {
      await this.#upControl.request({ t: 'gw.deregister' });
    }
    await this.close();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flushReports();
    this.#closed = true;
    this.#client.stop(CloseCode.GOING_AWAY, 'gateway stopping');
    await Promise.all([this.#pneServer.close(300), this.#enrollServer.close(300)]);
    this.#broadcaster?.close();
    await this.#bq;
    for (const m of this.#media) m.close();
    for (const k of this.#keys.values()) k.key.fill(0);
    this.#keys.clear();
  }

  // ------------------------------------------------------------------------------------------- upstream

  #onUpstream(s: Session): void {
    this.#up = s;
    this.#registered = false;
    const control = Control.forSession(s);
    this.#upControl = control;
    if (!this.#relay) {
      this.#relay = new TunnelRelay(s, {
        maxTunnelsPerPne: GATEWAY_DEFAULTS.maxTunnelsPerPne,
        tap: this.#opts.relayTap,
      });
      for (const p of this.#pnes.values()) this.#relay.attach(p.session);
    } else {
      this.#relay.setUpstream(s);
    }
    s.on('frame', (buf: Buffer) => this.#onUpstreamFrame(control, buf));
    s.once('close', (code: number) => {
      control.failAll(new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'server session closed'));
      if (this.#up === s) {
        this.#up = null;
        this.#upControl = null;
        this.#registered = false;
      }
      this.#log.info({ code }, 'server session down');
    });
    control
      .request({
        t: 'gw.register',
        capabilities: {
          media:
            this.#opts.media ?? (this.#broadcaster ? (this.#broadcaster.mediaNames as Medium[]) : ['wifi']),
          broadcast: this.#broadcaster !== undefined,
        },
      })
      .then(async () => {
        if (this.#up !== s) return;
        this.#registered = true;
        this.#log.info('registered with the server');
        this.emit('registered');
        for (const p of this.#pnes.values()) if (p.attached && !p.detached) await this.#attachUp(p);
      })
      .catch((e) => this.#log.warn({ code: codeOf(e) }, 'registration failed'));
  }

  #onUpstreamFrame(control: Control, buf: Buffer): void {
    const msg = readUpstreamFrame(
      buf,
      control,
      (frame, payload) => this.#deliverLocal(frame, payload, undefined),
      this.#log,
      'the server',
    );
    if (!msg) return;
    switch (msg.t) {
      case 'key.deliver':
        this.#onKeyDeliver(msg);
        return;
      case 'sg.deleted': {
        const e = this.#keys.get(msg.sgId);
        if (!e) return;
        for (const p of e.targets) {
          try {
            this.#pnes.get(p)?.control.send({ t: 'sg.deleted', sgId: msg.sgId });
          } catch {}
        }
        e.key.fill(0);
        this.#keys.delete(msg.sgId);
        return;
      }
      case 'sg.signers': {
        // Source authentication: the members' signing keys, passed on to this PN's member PNEs.
        const e = this.#keys.get(msg.sgId);
        if (!e) return;
        for (const p of e.targets) {
          const c = this.#pnes.get(p);
          if (!c?.attached) continue;
          try {
            c.control.send({ t: 'sg.signers', sgId: msg.sgId, signers: msg.signers });
          } catch {}
        }
        return;
      }
      case 'gw.policy': {
        const p: DeliveryPolicy = {
          broadcast: msg.broadcast,
          broadcastThreshold: msg.broadcastThreshold,
          ackTimeoutMs: msg.ackTimeoutMs,
        };
        if (this.#broadcaster) this.#broadcaster.policy = p;
        this.#log.info(p, 'delivery policy');
        this.emit('policy', p);
        return;
      }
      case 'pne.detach': {
        // The server revoked this PNE: drop its session at once and refuse it from now on.
        this.#revoked.add(msg.pneId);
        this.#broadcaster?.release(msg.pneId);
        for (const e of this.#keys.values()) e.targets.delete(msg.pneId);
        this.#pneServer.closeSessionsOf(msg.pneId, CloseCode.REVOKED, 'revoked');
        return;
      }
      case 'error': {
        // The server refused a group message of one of our PNEs: that PNE gets the typed error.
        const c = msg.ref === undefined && msg.pneId !== undefined ? this.#pnes.get(msg.pneId) : undefined;
        if (c) c.control.sendError(msg.code, undefined, msg.field);
        this.#log.debug({ code: msg.code, pne: msg.pneId }, 'server refused a message');
        return;
      }
      case 'ok':
        return;
      default:
        control.sendError(ErrorCode.UNEXPECTED_MESSAGE, msg.id);
    }
  }

  #onKeyDeliver(msg: MessageOf<'key.deliver'>): void {
    if (msg.targets === undefined) return;
    const old = this.#keys.get(msg.sgId);
    if (old && msg.epoch < old.epoch) return; // keys only move forward
    if (msg.targets.length === 0) {
      old?.key.fill(0);
      this.#keys.delete(msg.sgId);
      this.emit('key', { sgId: msg.sgId, epoch: msg.epoch, targets: [] });
      return;
    }
    if (old && old.epoch !== msg.epoch) old.key.fill(0);
    const e: KeyEntry = {
      epoch: msg.epoch,
      key: old && old.epoch === msg.epoch ? old.key : Buffer.from(msg.key),
      suite: msg.suite,
      reason: msg.reason,
      graceSec: msg.graceSec,
      previousEpoch: msg.previousEpoch,
      anchors: msg.senderAnchors ?? (old && old.epoch === msg.epoch ? old.anchors : undefined),
      activateAt: msg.activateAt,
      // Relative activation wins (one rule, src/core/group/activation.ts): converted to this GW's clock.
      activateBy: activationTime(msg.activateIn, msg.activateAt, Date.now()),
      targets: new Set(msg.targets),
      policy: msg.policy,
      sourceAuth: msg.sourceAuth ?? false,
    };
    this.#keys.set(msg.sgId, e);
    const online: PneConn[] = [];
    for (const p of e.targets) {
      const c = this.#pnes.get(p);
      if (c?.attached) online.push(c);
    }
    this.#distribute(msg.sgId, e, online);
    try {
      this.#upControl?.send({ t: 'key.ack', sgId: msg.sgId, epoch: msg.epoch });
    } catch {}
    this.emit('key', { sgId: msg.sgId, epoch: msg.epoch, targets: msg.targets });
  }

  /**
   * Group Key delivery to the online member PNEs of this PN that still need epoch `e.epoch` (seed §5.3.3
   * "deliver Group Key"): the GW chooses broadcast or unicast per PNE under the operator policy.
   *
   * - A PNE's first key of an SG (on this session) always goes by unicast: it needs the suite, grace, replay
   *   anchors and policy that only the unicast message carries; a broadcast datagram carries sgId, epoch, reason,
   *   grace and the wrapped key only. Broadcast is for updates of SGs the PNE already holds.
   * - A key distributed ahead of its activation (periodic update with activateIn/activateAt) goes by unicast:
   *   the datagram cannot carry the activation time.
   * - Otherwise `planDelivery`: broadcast to members that hold a GKDK of the current tree and listen on one of
   *   this GW's media, when there are at least `broadcastThreshold` of them; unicast for the rest. Broadcast
   *   members that do not ack within `ackTimeoutMs` get the key by unicast ('fallback').
   */
  #distribute(sgId: string, e: KeyEntry, conns: readonly PneConn[]): void {
    const epoch = e.epoch;
    const todo = conns.filter(
      (c) =>
        (c.sent.get(sgId) ?? -1) < epoch &&
        (c.acked.get(sgId) ?? -1) < epoch &&
        c.broadcastEpoch.get(sgId) !== epoch,
    );
    const b = this.#broadcaster;
    if (!b || e.activateBy !== undefined) {
      for (const c of todo) this.#sendKey(c, sgId, e);
      return;
    }
    const tag = this.#treeTag();
    const members: MemberInfo[] = [];
    for (const c of todo) {
      if (!c.acked.has(sgId)) this.#sendKey(c, sgId, e);
      else members.push({ pneId: c.id, media: c.media, hasGkdk: c.gkdkTree === tag });
    }
    if (members.length === 0) return;
    this.#bq = this.#bq.then(async () => {
      const cur = this.#keys.get(sgId);
      if (this.#closed || !cur || cur.epoch !== epoch) return; // superseded: the newer epoch is delivered
      const live = members.filter((m) => {
        const c = this.#pnes.get(m.pneId);
        return (
          c?.attached === true &&
          cur.targets.has(c.id) &&
          (c.sent.get(sgId) ?? -1) < epoch &&
          (c.acked.get(sgId) ?? -1) < epoch
        );
      });
      if (live.length === 0) return;
      let r: { broadcast: string[]; unicast: string[]; datagrams: number; bytes: number };
      try {
        r = await b.deliver({
          sgId,
          epoch,
          key: cur.key,
          members: live,
          ...(cur.policy ? { policy: cur.policy } : {}),
          // Signed into the datagram: the PNE installs it with the same grace as the unicast key.deliver.
          reason: cur.reason,
          graceSec: cur.graceSec,
        });
      } catch (err) {
        this.#log.warn({ code: codeOf(err), sgId, epoch }, 'broadcast delivery failed; unicast instead');
        r = { broadcast: [], unicast: live.map((m) => m.pneId), datagrams: 0, bytes: 0 };
      }
      for (const id of r.broadcast) this.#pnes.get(id)?.broadcastEpoch.set(sgId, epoch);
      for (const id of r.unicast) {
        const c = this.#pnes.get(id);
        if (c) this.#sendKey(c, sgId, cur);
      }
      this.#log.debug(
        { sgId, epoch, broadcast: r.broadcast.length, unicast: r.unicast.length, datagrams: r.datagrams },
        'group key delivery',
      );
      this.emit('delivery', { sgId, epoch, ...r });
    });
  }

  /** Broadcast members that did not ack in time: unicast, reported as 'fallback' once they ack. */
  #onFallback(sgId: string, epoch: number, pnes: readonly string[]): void {
    const e = this.#keys.get(sgId);
    if (!e || e.epoch !== epoch) return;
    for (const id of pnes) {
      const c = this.#pnes.get(id);
      if (!c?.attached || !e.targets.has(id) || (c.acked.get(sgId) ?? -1) >= epoch) continue;
      c.fallbackEpoch.set(sgId, epoch);
      this.#sendKey(c, sgId, e);
    }
    this.#log.debug({ sgId, epoch, pnes: pnes.length }, 'broadcast not acked: unicast fallback');
  }

  /** The tree was rebuilt: every connected holder gets its new GKDK by unicast; old ones no longer open. */
  #onReissue(_pnes: readonly string[]): void {
    const b = this.#broadcaster;
    if (!b) return;
    for (const [id, issue] of b.issueAll()) {
      const c = this.#pnes.get(id);
      if (c?.attached) this.#sendGkdk(c, issue);
    }
  }

  #sendGkdk(c: PneConn, issue: GkdkIssue): void {
    c.gkdkTree = undefined; // broadcast-capable again once it acks this one
    try {
      c.control.send({
        t: 'gkdk.issue',
        gwId: this.identity,
        ...issue,
        media: issue.media as BroadcastMediumConfig[], // names come from this GW's BroadcastMediumConfig
      });
    } catch (err) {
      this.#log.warn({ code: codeOf(err) }, 'GKDK issue to PNE failed');
    } finally {
      issue.gkdk.fill(0);
    }
  }

  #treeTag(): string | undefined {
    const t = this.#broadcaster?.tree;
    return t ? `${t.treeId}:${t.treeVersion}` : undefined;
  }

  /** Unicast Group Key delivery over the PNE's secure session (mandatory mode, §5.3.3). */
  #sendKey(c: PneConn, sgId: string, e: KeyEntry): void {
    if ((c.sent.get(sgId) ?? -1) >= e.epoch) return;
    const now = Date.now();
    const ahead = e.activateBy !== undefined && e.activateBy > now;
    try {
      c.control.send({
        t: 'key.deliver',
        sgId,
        epoch: e.epoch,
        key: e.key,
        suite: e.suite,
        reason: e.reason,
        graceSec: e.graceSec,
        previousEpoch: e.previousEpoch,
        senderAnchors: e.anchors,
        ...(e.sourceAuth ? { sourceAuth: true } : {}),
        ...(ahead
          ? {
              activateIn: Math.ceil(((e.activateBy as number) - now) / 1000),
              ...(e.activateAt !== undefined ? { activateAt: e.activateAt } : {}),
            }
          : {}),
      });
      c.sent.set(sgId, e.epoch);
    } catch (err) {
      this.#log.warn({ code: codeOf(err) }, 'key delivery to PNE failed');
    }
  }

  async #attachUp(p: PneConn): Promise<void> {
    const up = this.#upControl;
    if (!up || !this.#registered) return;
    try {
      await up.request({ t: 'pne.attach', pneId: p.id, media: p.media });
    } catch (e) {
      const code = codeOf(e);
      if (code === ErrorCode.REVOKED || code === ErrorCode.NOT_FOUND || code === ErrorCode.FORBIDDEN) {
        if (code === ErrorCode.REVOKED) this.#revoked.add(p.id);
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

  // ------------------------------------------------------------------------------------------- PNE side

  #onPneSession(s: Session): void {
    if (this.#closed) {
      s.close(CloseCode.GOING_AWAY, 'closing');
      return;
    }
    if (s.anonymous || s.identity === null) {
      this.#onEnrollSession(s);
      return;
    }
    const id = s.identity;
    if (this.#revoked.has(id)) {
      s.close(CloseCode.REVOKED, 'revoked');
      return;
    }
    const old = this.#pnes.get(id);
    if (old) old.session.close(CloseCode.REPLACED, 'replaced by a newer session');
    const c: PneConn = {
      id,
      session: s,
      control: Control.forSession(s),
      sent: new Map(),
      acked: new Map(),
      reported: new Map(),
      broadcastEpoch: new Map(),
      fallbackEpoch: new Map(),
      gkdkTree: undefined,
      media: [],
      attached: false,
      detached: false,
      queue: Promise.resolve(),
    };
    this.#pnes.set(id, c);
    this.#relay?.attach(s);
    s.on('frame', (buf: Buffer) => this.#onPneFrame(c, buf));
    s.once('close', () => {
      if (this.#pnes.get(id) !== c) return;
      this.#pnes.delete(id);
      if (c.attached && !c.detached && this.#registered && !this.#closed) {
        this.#upControl?.request({ t: 'pne.status', pneId: id, online: false }).catch(() => {});
      }
    });
  }

  /**
   * Per-PNE delivery reports are batched per (SG, epoch) for a few milliseconds, so a rekey acked by many PNEs
   * costs the server one store transaction per batch instead of one per PNE.
   */
  #report(sgId: string, epoch: number, entry: DeliveryEntry): void {
    const k = `${sgId}|${epoch}`;
    const r = this.#reports.get(k) ?? { sgId, epoch, entries: [] };
    this.#reports.set(k, r);
    r.entries.push(entry);
    if (r.entries.length >= REPORT_BATCH_MAX) this.#flushReports();
    else this.#reportTimer ??= setTimeout(() => this.#flushReports(), REPORT_BATCH_MS).unref();
  }

  #flushReports(): void {
    if (this.#reportTimer) clearTimeout(this.#reportTimer);
    this.#reportTimer = undefined;
    for (const r of this.#reports.values()) {
      try {
        this.#upControl?.send({ t: 'key.delivery.report', sgId: r.sgId, epoch: r.epoch, entries: r.entries });
      } catch (err) {
        this.#log.debug({ code: codeOf(err) }, 'delivery report not sent');
      }
    }
    this.#reports.clear();
  }

  #onPneFrame(c: PneConn, buf: Buffer): void {
    serveFrame(
      c,
      buf,
      (frame, payload) => this.#fromPne(c, frame, payload),
      (m) => this.#handlePne(c, m),
      this.#log,
      'PNE',
    );
  }

  async #handlePne(c: PneConn, msg: ControlMessage): Promise<void> {
    switch (msg.t) {
      case 'pne.attach': {
        if (msg.pneId !== c.id) fail(ErrorCode.FORBIDDEN, 'pneId');
        c.media = msg.media;
        c.attached = true;
        c.detached = false;
        if (this.#registered) await this.#attachUp(c);
        c.control.sendOk(msg.id);
        // Broadcast-capable PNE (shares a medium with this GW): its leaf and GKDK, over this session.
        if (this.#broadcaster) {
          try {
            const issue = this.#broadcaster.issueFor(c.id, c.media);
            if (issue) this.#sendGkdk(c, issue);
          } catch (err) {
            this.#log.warn({ code: codeOf(err), pne: c.id }, 'no GKDK for this PNE: unicast delivery only');
          }
        }
        // Keys this GW already holds for the PNE (the server's catch-up may also bring newer ones).
        for (const [sgId, e] of this.#keys) if (e.targets.has(c.id)) this.#sendKey(c, sgId, e);
        return;
      }
      case 'gkdk.ack': {
        const t = this.#broadcaster?.tree;
        if (!t || !this.#broadcaster?.hasLeaf(c.id)) fail(ErrorCode.UNEXPECTED_MESSAGE);
        // An ack for an older tree (a rebuild crossed it) does not count: the new GKDK is on its way.
        if (msg.treeId === t.treeId && msg.treeVersion === t.treeVersion) {
          c.gkdkTree = `${t.treeId}:${t.treeVersion}`;
          this.emit('gkdk', { pneId: c.id, treeId: t.treeId, treeVersion: t.treeVersion });
        }
        c.control.sendOk(msg.id);
        return;
      }
      case 'key.ack': {
        const sgId = msg.sgId;
        const e = this.#keys.get(sgId);
        if (!e?.targets.has(c.id)) fail(ErrorCode.NOT_MEMBER, 'sgId');
        if (msg.pneId !== undefined && msg.pneId !== c.id) fail(ErrorCode.FORBIDDEN, 'pneId');
        if (msg.epoch > e.epoch) fail(ErrorCode.UNKNOWN_EPOCH, 'epoch');
        if ((c.acked.get(sgId) ?? -1) < msg.epoch) c.acked.set(sgId, msg.epoch);
        const pendingBroadcast = this.#broadcaster?.ack(sgId, msg.epoch, c.id) === 'broadcast';
        // How the PNE got it: broadcast only if the GW broadcast it this epoch AND the PNE says it opened a
        // datagram; 'fallback' if the GW re-sent it by unicast after the ack timeout; else unicast.
        const method =
          msg.method === 'broadcast' && (pendingBroadcast || c.broadcastEpoch.get(sgId) === msg.epoch)
            ? 'broadcast'
            : c.fallbackEpoch.get(sgId) === msg.epoch
              ? 'fallback'
              : 'unicast';
        if ((c.reported.get(sgId) ?? -1) < msg.epoch) {
          c.reported.set(sgId, msg.epoch);
          this.#report(sgId, msg.epoch, { pneId: c.id, method, ackedAt: Date.now() });
        }
        c.control.sendOk(msg.id);
        return;
      }
      case 'pne.detach': {
        if (msg.pneId !== c.id) fail(ErrorCode.FORBIDDEN, 'pneId');
        if (!this.#upControl || !this.#registered) fail(ErrorCode.UNEXPECTED_MESSAGE);
        await this.#upControl.request({ t: 'pne.detach', pneId: c.id });
        c.detached = true;
        c.attached = false;
        // It left the PN: its leaf is excluded from every later broadcast of this tree (it keeps its labels).
        this.#broadcaster?.release(c.id);
        c.gkdkTree = undefined;
        for (const e of this.#keys.values()) e.targets.delete(c.id);
        c.control.sendOk(msg.id);
        setTimeout(() => c.session.close(CloseCode.NORMAL, 'detached'), 50).unref();
        return;
      }
      default:
        fail(ErrorCode.UNEXPECTED_MESSAGE);
    }
  }

  /** A message destined to a Service Group, from one of our PNEs. */
  #fromPne(c: PneConn, frame: Buffer, payload: Buffer): void {
    try {
      if (!c.attached) fail(ErrorCode.UNEXPECTED_MESSAGE);
      if (payload.length > DEFAULT_MAX_MESSAGE_BYTES) fail(ErrorCode.TOO_LARGE, 'message');
      const h = readHeader(payload);
      // Attribution: the header's sender must be this PNE as named in its certificate.
      if (!h.senderId.equals(uuidToBytes(uuidOf(c.id)))) fail(ErrorCode.FORBIDDEN, 'senderId');
      const sgId = bytesToUuid(h.sgId);
      const e = this.#keys.get(sgId);
      if (!e?.targets.has(c.id)) fail(ErrorCode.NOT_MEMBER, 'sgId');
      if (h.epoch > e.epoch) fail(ErrorCode.UNKNOWN_EPOCH, 'epoch');
      this.#deliverLocal(frame, payload, c.id, sgId);
      if (!this.#up?.isOpen || !this.#registered) return; // upstream down: local delivery only
      this.#up.send(frame);
    } catch (err) {
      if (!isCpnsError(err)) this.#log.error({ err }, 'group message handling failed');
      c.control.sendError(codeOf(err), undefined, (err as CpnsError).field);
    }
  }

  #deliverLocal(frame: Buffer, payload: Buffer, exclude: string | undefined, sgIdKnown?: string): void {
    let sgId = sgIdKnown;
    let sender = exclude;
    if (sgId === undefined) {
      try {
        const h = readHeader(payload);
        sgId = bytesToUuid(h.sgId);
        sender = senderIdentity(h.senderId);
      } catch {
        return;
      }
    }
    const e = this.#keys.get(sgId);
    if (!e) return;
    for (const p of e.targets) {
      if (p === sender) continue;
      const c = this.#pnes.get(p);
      if (c?.attached) c.session.send(frame);
    }
  }

  #onEnrollSession(s: Session): void {
    const control = Control.forSession(s);
    const t = setTimeout(
      () => s.close(CloseCode.POLICY, 'enrollment timeout'),
      GATEWAY_DEFAULTS.enrollSessionMs,
    );
    t.unref();
    s.once('close', () => clearTimeout(t));
    s.on('frame', (buf: Buffer) => {
      const msg = readEnrollRequest(buf, s, control);
      if (!msg) return;
      if (msg.role !== 'pne' || !this.#upControl || !this.#registered) {
        control.sendError(ErrorCode.ENROLL_REFUSED, msg.id);
        return;
      }
      const { id: _id, v: _v, t: _t, ...request } = msg;
      this.#upControl.request({ t: 'enroll.relay', request }, GATEWAY_DEFAULTS.enrollRelayTimeoutMs).then(
        (r) => {
          if (r.t !== 'enroll.response') return control.sendError(ErrorCode.ENROLL_REFUSED, msg.id);
          // Passed through unchanged: the GW cannot forge it (it never holds the PNE's key).
          control.send({ t: 'enroll.response', id: msg.id, cert: r.cert, caCert: r.caCert });
        },
        (e) => control.sendError(codeOf(e), msg.id),
      );
    });
  }
}
