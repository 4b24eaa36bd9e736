/**
 * The PNE device SDK (docs/protocol.md): a secure session to its PN GW (unicast Group Key delivery, Service Group
 * messages as frame 0x05), and an end-to-end TLS session to the CPNS Server tunnelled through the GW (Service
 * Group management, key catch-up) that the GW cannot read.
 *
 * Broadcast Group Key delivery (seed §5.3.3, docs/broadcast.md): when the GW sends this PNE its GKDK
 * (`gkdk.issue`), the PNE listens on the broadcast media it supports (`media` in the connect options) and installs
 * the Group Key updates it can open for the SGs it already holds; datagrams it cannot open are counted by error
 * code (`broadcastDrops`).
 *
 * Events: 'message' {sgId, sender, epoch, plaintext}, 'key' {sgId, epoch, reason, method, medium?, activateAt?}
 * (activateAt: a key staged ahead of its activation), 'group-deleted' {sgId}, 'removed' {sgId}, 'drop' {code, sgId?}
 * (a message that failed to open, by error code), 'broadcast-drop' {code}, 'gkdk' {treeId, treeVersion, leaf},
 * 'disconnected' (close code), 'reconnecting' {attempt, delayMs} (before each try to reach the GW again),
 * 'reconnected', 'revoked' (the operator revoked this identity: no more reconnects).
 */

import type { KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ControlMessage, MessageOf } from '../core/codec/index.js';
import { Suite } from '../core/crypto/aead.js';
import { ed25519Generate, ed25519PublicFromRaw, ed25519PublicToRaw } from '../core/crypto/ed25519.js';
import { CpnsError, ErrorCode } from '../core/errors.js';
import { activationTime } from '../core/group/activation.js';
import { OFF } from '../core/group/header.js';
import { GroupKeyRing } from '../core/group/keyring.js';
import { GroupReceiver, type OpenedMessage } from '../core/group/receiver.js';
import { GroupSender } from '../core/group/sender.js';
import { type BroadcastKey, BroadcastKeyListener } from '../delivery/index.js';
import { type Credentials, enrollAt } from '../gateway/index.js';
import {
  bytesToUuid,
  Control,
  codeOf,
  decodeControl,
  fail,
  type Logger,
  readUpstreamFrame,
  senderIdentity,
  silentLogger,
  toPneIdentity,
  uuidOf,
  uuidToBytes,
} from '../roles/control.js';
import { encodeFrame } from '../transport/framing.js';
import { backoffDelay, CloseCode, connectSession, type Session } from '../transport/session.js';
import { MessageSocket, openTunnelTls } from '../transport/tunnel.js';
import { MAX_PENDING, PNE_DEFAULTS } from './defaults.js';
import type { CreateGroupOptions, GroupMessageEvent, PneConnectOptions, WireSuite } from './types.js';

const SUITE_OF: Record<WireSuite, Suite> = {
  'aes-256-gcm': Suite.AES_256_GCM,
  'chacha20-poly1305': Suite.CHACHA20_POLY1305,
};

export class PneClient extends EventEmitter {
  readonly identity: string;
  readonly #opts: PneConnectOptions;
  readonly #log: Logger;
  readonly #ring = new GroupKeyRing();
  /** Source authentication: signing keys of the members of source-authenticated SGs, by sender id (hex). */
  readonly #signers = new Map<string, KeyObject>();
  readonly #signing = ed25519Generate();
  readonly #receiver = new GroupReceiver({
    keyRing: this.#ring,
    senderPublicKey: (id) => this.#signers.get(id.toString('hex')),
  });
  readonly #sender: GroupSender;
  readonly #pending = new Map<string, Buffer[]>();
  readonly #fetching = new Set<string>();
  #session: Session | null = null;
  #gw: Control | null = null;
  #ms: MessageSocket | null = null;
  #srv: Control | null = null;
  #closing = false;
  #attempt = 0;
  #tunnelAttempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #listener: BroadcastKeyListener | undefined;
  /** GKDK installs and listener (re)opens, one after the other. */
  #bl: Promise<void> = Promise.resolve();
  readonly #broadcastDrops = new Map<string, number>();

  private constructor(opts: PneConnectOptions) {
    super();
    this.#opts = opts;
    this.identity = opts.credentials.identity;
    this.#log = opts.logger ?? silentLogger;
    this.#sender = new GroupSender({
      senderId: uuidToBytes(uuidOf(this.identity)),
      signingKey: this.#signing.privateKey,
    });
  }

  /** Enrolls a PNE with a one-time token through its GW (which relays to the server). */
  static enroll(o: { enrollUrl: string; caPem: string; token: string }): Promise<Credentials> {
    return enrollAt(o.enrollUrl, o.caPem, o.token, 'pne', 'gw');
  }

  static async connect(opts: PneConnectOptions): Promise<PneClient> {
    const c = new PneClient(opts);
    await c.#connect();
    return c;
  }

  /** True when both the GW session and the server tunnel are up. */
  get connected(): boolean {
    return this.#session?.isOpen === true && this.#srv !== null;
  }

  currentEpoch(sgId: string): number | undefined {
    return this.#ring.current(uuidToBytes(sgId))?.epoch;
  }

  /** Epoch staged for a later activation (periodic update distributed ahead), if any. */
  stagedEpoch(sgId: string): number | undefined {
    return this.#ring.staged(uuidToBytes(sgId));
  }

  /** Broadcast datagrams this PNE could not open, by error code (NOT_IN_COVER, STALE_EPOCH, BAD_SIGNATURE...). */
  get broadcastDrops(): ReadonlyMap<string, number> {
    return this.#broadcastDrops;
  }

  /** Media this PNE currently listens on for broadcast Group Key delivery (empty: unicast only). */
  get broadcastMedia(): string[] {
    return this.#listener?.mediaNames ?? [];
  }

  // ------------------------------------------------------------------------------------------- SG API

  async createGroup(o: CreateGroupOptions): Promise<{ sgId: string; epoch: number }> {
    const r = await (await this.#server()).request({
      t: 'sg.create',
      name: o.name,
      joinPolicy: o.joinPolicy ?? 'invite',
      suite: o.suite ?? 'aes-256-gcm',
      sourceAuth: o.sourceAuth ?? false,
      rekeyIntervalSec: o.rekeyIntervalSec,
    });
    if (r.t !== 'sg.created') fail(ErrorCode.UNEXPECTED_MESSAGE);
    await this.#waitKey(r.sgId, r.epoch);
    return { sgId: r.sgId, epoch: r.epoch };
  }

  async joinGroup(sgId: string): Promise<void> {
    await (await this.#server()).request({ t: 'sg.join', sgId });
    await this.#waitKey(sgId, 1);
  }

  async leaveGroup(sgId: string): Promise<void> {
    await (await this.#server()).request({ t: 'sg.leave', sgId });
    this.#forget(sgId);
  }

  async invite(sgId: string, pne: string): Promise<void> {
    await (await this.#server()).request({ t: 'sg.invite', sgId, pneId: toPneIdentity(pne) });
  }

  async removeMember(sgId: string, pne: string): Promise<void> {
    await (await this.#server()).request({ t: 'sg.remove', sgId, pneId: toPneIdentity(pne) });
  }

  async deleteGroup(sgId: string): Promise<void> {
    await (await this.#server()).request({ t: 'sg.delete', sgId });
    this.#forget(sgId);
  }

  /**
   * Resolves once a Group Key of `sgId` (epoch >= minEpoch) is installed; after `timeoutMs` without one it fetches
   * the current key over the tunnel (NOT_MEMBER / NOT_FOUND reject).
   */
  async waitForKey(sgId: string, minEpoch = 1, timeoutMs?: number): Promise<number> {
    await this.#waitKey(sgId, minEpoch, timeoutMs);
    return this.currentEpoch(sgId) ?? 0;
  }

  /** Asks the server for the current Group Key (catch-up: intermediate epochs are skipped). */
  async fetchKey(sgId: string): Promise<number> {
    const have = this.currentEpoch(sgId);
    const r = await (await this.#server()).request({ t: 'key.fetch', sgId, haveEpoch: have });
    if (r.t !== 'key.deliver') fail(ErrorCode.UNEXPECTED_MESSAGE);
    this.#install(r);
    return r.epoch;
  }

  /**
   * Protects `data` with the current Group Key of the SG and sends it to the GW (frame 0x05).
   * Returns the protected message (what travels on the wire).
   */
  send(sgId: string, data: Uint8Array | string): Buffer {
    const sg = uuidToBytes(sgId);
    const gk = this.#ring.current(sg);
    if (!gk) throw new CpnsError(ErrorCode.UNKNOWN_GROUP, 'no Group Key held for this Service Group', 'sgId');
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const payload = this.#sender.protect(sg, gk, bytes, { sign: this.#ring.sourceAuth(sg) });
    if (!this.#session?.isOpen) throw new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'not connected to the GW');
    this.#session.send(encodeFrame({ kind: 'group', payload }));
    return payload;
  }

  /** Tries to open a captured protected message with the keys this PNE holds (throws CpnsError on failure). */
  open(raw: Uint8Array): OpenedMessage {
    return this.#receiver.open(Buffer.from(raw));
  }

  /** Leaves the PN: the server detaches this PNE and updates the keys of its SGs; then closes. */
  async detach(): Promise<void> {
    if (this.#gw) await this.#gw.request({ t: 'pne.detach', pneId: this.identity });
    await this.close();
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#ms?.close();
    await this.#bl;
    const l = this.#listener;
    this.#listener = undefined;
    await l?.close();
    const s = this.#session;
    if (s?.isOpen) {
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      s.close(CloseCode.NORMAL, 'pne closing');
      await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
    }
  }

  // ------------------------------------------------------------------------------------------- connection

  async #connect(): Promise<void> {
    const c = this.#opts.credentials;
    const s = await connectSession(this.#opts.gwUrl, {
      certPem: c.certPem,
      keyPem: c.keyPem,
      caPem: c.caPem,
      expectedServerRole: 'gw',
      heartbeat: this.#opts.heartbeat,
    });
    const gw = Control.forSession(s);
    this.#session = s;
    this.#gw = gw;
    s.on('frame', (buf: Buffer) => this.#onGwFrame(gw, buf));
    s.once('close', (code: number) => this.#onSessionClose(s, gw, code));
    try {
      await gw.request({
        t: 'pne.attach',
        pneId: this.identity,
        media: this.#opts.media ?? [...PNE_DEFAULTS.media],
      });
      await this.#openTunnel(s);
    } catch (e) {
      this.#closing = true;
      s.close();
      throw e;
    }
  }

  async #openTunnel(s: Session): Promise<void> {
    const c = this.#opts.credentials;
    const t = await openTunnelTls(s, { certPem: c.certPem, keyPem: c.keyPem, caPem: c.caPem });
    const ms = new MessageSocket(t.socket, { maxMessage: PNE_DEFAULTS.maxTunnelMessage });
    const srv = new Control((p) => ms.send(p));
    this.#ms = ms;
    this.#srv = srv;
    this.#tunnelAttempt = 0;
    ms.on('message', (m: Buffer) => this.#onServerMessage(srv, m));
    // Our signing key for source-authenticated SGs, bound to our identity by this end-to-end TLS session.
    srv
      .request({ t: 'pne.signkey', key: ed25519PublicToRaw(this.#signing.publicKey) })
      .catch((e: unknown) => {
        // Happens when the tunnel closes first (e.g. a short-lived client); it is re-sent on the next tunnel.
        this.#log.debug({ code: codeOf(e) }, 'signing key not registered');
      });
    ms.once('close', () => {
      srv.failAll(new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'server tunnel closed'));
      if (this.#srv === srv) {
        this.#srv = null;
        this.#ms = null;
      }
      if (!this.#closing && s.isOpen && this.#session === s) this.#scheduleTunnel(s);
    });
    this.emit('tunnel');
  }

  #scheduleTunnel(s: Session): void {
    if (this.#opts.reconnect === false) return;
    const delay = backoffDelay(this.#tunnelAttempt++, this.#opts.reconnect ?? PNE_DEFAULTS.reconnect);
    const t = setTimeout(() => {
      if (this.#closing || !s.isOpen || this.#session !== s) return;
      this.#openTunnel(s).catch(() => this.#scheduleTunnel(s));
    }, delay);
    t.unref();
  }

  #onSessionClose(s: Session, gw: Control, code: number): void {
    gw.failAll(new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'GW session closed'));
    if (this.#session !== s) return;
    this.#session = null;
    this.#gw = null;
    this.emit('disconnected', code);
    if (code === CloseCode.REVOKED) {
      this.#closing = true;
      this.emit('revoked');
      return;
    }
    if (this.#closing || this.#opts.reconnect === false) return;
    const retry = (): void => {
      const delay = backoffDelay(this.#attempt++, this.#opts.reconnect || PNE_DEFAULTS.reconnect);
      this.#log.info(
        { attempt: this.#attempt, delayMs: delay },
        `GW unreachable, reconnecting in ${delay} ms`,
      );
      this.emit('reconnecting', { attempt: this.#attempt, delayMs: delay });
      this.#timer = setTimeout(() => {
        if (this.#closing) return;
        this.#connect().then(
          () => {
            this.#attempt = 0;
            this.#closing = false;
            this.emit('reconnected');
          },
          (e) => {
            if (codeOf(e) === ErrorCode.REVOKED) {
              this.emit('revoked');
              return;
            }
            this.#closing = false;
            retry();
          },
        );
      }, delay);
      this.#timer.unref();
    };
    retry();
  }

  async #server(timeoutMs: number = PNE_DEFAULTS.serverWaitMs): Promise<Control> {
    if (this.#srv) return this.#srv;
    if (this.#closing) fail(ErrorCode.UNEXPECTED_MESSAGE);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        this.off('tunnel', on);
        reject(new CpnsError(ErrorCode.UNEXPECTED_MESSAGE, 'no tunnel to the server'));
      }, timeoutMs);
      const on = (): void => {
        clearTimeout(t);
        resolve();
      };
      this.once('tunnel', on);
    });
    if (!this.#srv) fail(ErrorCode.UNEXPECTED_MESSAGE);
    return this.#srv;
  }

  // ------------------------------------------------------------------------------------------- inbound

  #onGwFrame(gw: Control, buf: Buffer): void {
    const msg = readUpstreamFrame(
      buf,
      gw,
      (_frame, payload) => this.#onGroupMessage(payload),
      this.#log,
      'the GW',
    );
    if (!msg) return;
    switch (msg.t) {
      case 'key.deliver':
        this.#install(msg);
        return;
      case 'gkdk.issue':
        this.#onGkdkIssue(msg);
        return;
      case 'sg.signers':
        for (const sgn of msg.signers) {
          try {
            this.#signers.set(uuidToBytes(uuidOf(sgn.pneId)).toString('hex'), ed25519PublicFromRaw(sgn.key));
          } catch {
            this.#log.warn('invalid signing key ignored');
          }
        }
        return;
      case 'sg.deleted':
        this.#forget(msg.sgId);
        this.emit('group-deleted', { sgId: msg.sgId });
        return;
      case 'error':
        this.emit('gw-error', { code: msg.code, field: msg.field });
        return;
      case 'ok':
        return;
      default:
        gw.sendError(ErrorCode.UNEXPECTED_MESSAGE, msg.id);
    }
  }

  #onServerMessage(srv: Control, m: Buffer): void {
    let msg: ControlMessage;
    try {
      msg = decodeControl(m);
    } catch (e) {
      this.#log.warn({ code: codeOf(e) }, 'bad message from the server');
      return;
    }
    if (srv.accept(msg)) return;
    switch (msg.t) {
      case 'sg.remove':
        if (msg.pneId !== this.identity) return;
        this.#forget(msg.sgId);
        this.emit('removed', { sgId: msg.sgId });
        return;
      case 'sg.deleted':
        this.#forget(msg.sgId);
        this.emit('group-deleted', { sgId: msg.sgId });
        return;
      case 'key.deliver':
        this.#install(msg);
        return;
      case 'error':
      case 'ok':
        return;
      default:
        srv.sendError(ErrorCode.UNEXPECTED_MESSAGE, msg.id);
    }
  }

  // ------------------------------------------------------------------------------------------- broadcast

  /**
   * The GW's GKDK for this PNE (on joining the PN, or after a tree rebuild): listen on the media named in it that
   * this PNE supports (reopening only if they changed), install the GKDK and ack it. A rebuilt tree's GKDK
   * replaces the old one, which can no longer open new broadcasts (WRONG_TREE).
   */
  #onGkdkIssue(msg: MessageOf<'gkdk.issue'>): void {
    if (this.#opts.noBroadcast) return;
    this.#opts.onGkdkIssue?.(msg);
    const supported = this.#opts.media ?? [...PNE_DEFAULTS.media];
    const wanted = msg.media.filter((m) => supported.includes(m.name));
    this.#bl = this.#bl.then(async () => {
      if (this.#closing) return;
      try {
        const have = this.#listener?.mediaNames.slice().sort().join(',');
        if (
          this.#listener === undefined ||
          have !==
            wanted
              .map((m) => m.name)
              .sort()
              .join(',')
        ) {
          await this.#listener?.close();
          this.#listener = await BroadcastKeyListener.open({
            media: wanted,
            supported,
            currentEpoch: (sgId) => this.currentEpoch(sgId),
            ...(this.#opts.broadcastInterface ? { interfaceAddress: this.#opts.broadcastInterface } : {}),
            ...(this.#opts.dropBroadcast
              ? { filter: (d: Buffer, m: string) => !this.#opts.dropBroadcast?.(d, m) }
              : {}),
          });
          this.#listener.on('key', (k: BroadcastKey) => this.#onBroadcastKey(k));
          this.#listener.on('drop', (code: string) => this.#countDrop(code));
        }
        this.#listener.setGkdk(msg);
        if (this.#listener.mediaNames.length === 0) return; // nothing to listen on: stay unicast-only
        this.#gw?.send({ t: 'gkdk.ack', treeId: msg.treeId, treeVersion: msg.treeVersion });
        this.emit('gkdk', { treeId: msg.treeId, treeVersion: msg.treeVersion, leaf: msg.leaf });
      } catch (e) {
        this.#log.warn({ code: codeOf(e) }, 'GKDK not installed: unicast delivery only');
      } finally {
        msg.gkdk.fill(0);
      }
    });
  }

  #countDrop(code: string): void {
    this.#broadcastDrops.set(code, (this.#broadcastDrops.get(code) ?? 0) + 1);
    this.emit('broadcast-drop', { code });
  }

  /**
   * A Group Key opened from a broadcast datagram. Installed only for an SG this PNE already holds (the suite
   * comes from its current key; the first key of an SG always comes by unicast).
   *
   * Grace and activation as in the unicast key.deliver of the same update: the GW signs the update's reason,
   * `graceSec` (0 after a leave: the previous epoch stops at once; the periodic grace otherwise) and `activateIn`
   * into the datagram (wire v2, docs/broadcast.md), so a periodic switch by broadcast drops no message sent just
   * before it under the previous epoch.
   */
  #onBroadcastKey(k: BroadcastKey): void {
    const sg = uuidToBytes(k.sgId);
    const cur = this.#ring.current(sg);
    if (!cur) {
      k.groupKey.fill(0);
      this.#countDrop('NOT_HELD');
      return;
    }
    let fresh = false;
    // The one activation rule (src/core/group/activation.ts); a datagram carries only the relative time.
    const activateAt = activationTime(k.activateIn, undefined, Date.now());
    try {
      fresh =
        activateAt !== undefined
          ? this.#ring.stage(sg, k.epoch, k.groupKey, cur.suite, activateAt, { graceMs: k.graceSec * 1000 })
          : this.#ring.install(sg, k.epoch, k.groupKey, cur.suite, { graceMs: k.graceSec * 1000 });
    } catch (e) {
      this.#log.warn({ code: codeOf(e) }, 'broadcast key not installed');
      return;
    } finally {
      k.groupKey.fill(0);
    }
    if (!fresh) return;
    try {
      this.#gw?.send({ t: 'key.ack', sgId: k.sgId, epoch: k.epoch, method: 'broadcast' });
    } catch {}
    this.#log.debug({ sgId: k.sgId, epoch: k.epoch, medium: k.medium }, 'group key installed (broadcast)');
    this.emit('key', {
      sgId: k.sgId,
      epoch: k.epoch,
      reason: k.reason,
      method: 'broadcast',
      medium: k.medium,
      ...(activateAt !== undefined ? { activateAt } : {}),
    });
    this.#flushPending(k.sgId);
  }

  // ------------------------------------------------------------------------------------------- keys

  #install(msg: MessageOf<'key.deliver'>): void {
    const sg = uuidToBytes(msg.sgId);
    let fresh = false;
    // A key distributed ahead of its activation: relative activation wins (converted to this device's clock,
    // which need not be synchronised); the absolute time is used only when no relative one is given.
    const now = Date.now();
    const activateAt = activationTime(msg.activateIn, msg.activateAt, now);
    const staged = activateAt !== undefined && activateAt > now && this.#ring.has(sg);
    try {
      fresh = staged
        ? this.#ring.stage(sg, msg.epoch, msg.key, SUITE_OF[msg.suite], activateAt, {
            graceMs: msg.graceSec * 1000,
          })
        : this.#ring.install(sg, msg.epoch, msg.key, SUITE_OF[msg.suite], {
            graceMs: msg.graceSec * 1000,
            sourceAuth: msg.sourceAuth ?? false,
          });
      for (const a of msg.senderAnchors ?? []) {
        this.#receiver.anchor(sg, msg.epoch, a.sender, a.instance, a.counter);
      }
    } catch (e) {
      this.#log.warn({ code: codeOf(e) }, 'key not installed');
      return;
    } finally {
      msg.key.fill(0);
    }
    try {
      this.#gw?.send({ t: 'key.ack', sgId: msg.sgId, epoch: msg.epoch });
    } catch {}
    if (fresh) {
      this.#log.debug(
        { sgId: msg.sgId, epoch: msg.epoch, reason: msg.reason, staged },
        'group key installed',
      );
      this.emit('key', {
        sgId: msg.sgId,
        epoch: msg.epoch,
        reason: msg.reason,
        method: 'unicast',
        ...(staged ? { activateAt } : {}),
      });
    }
    this.#flushPending(msg.sgId);
  }

  #flushPending(sgId: string): void {
    const pending = this.#pending.get(sgId);
    if (pending) {
      this.#pending.delete(sgId);
      for (const p of pending) this.#onGroupMessage(p, true);
    }
  }

  #onGroupMessage(payload: Buffer, retried = false): void {
    let opened: OpenedMessage;
    try {
      opened = this.#receiver.open(payload);
    } catch (e) {
      const code = codeOf(e);
      const sgId =
        payload.length >= OFF.sgId + 16 ? bytesToUuid(payload.subarray(OFF.sgId, OFF.sgId + 16)) : undefined;
      this.emit('drop', { code, sgId });
      if (code === ErrorCode.UNKNOWN_EPOCH && sgId !== undefined && !retried) {
        const list = this.#pending.get(sgId) ?? [];
        if (list.length < MAX_PENDING) list.push(payload);
        this.#pending.set(sgId, list);
        this.#fetch(sgId);
      }
      return;
    }
    const h = opened.header;
    const ev: GroupMessageEvent = {
      sgId: bytesToUuid(h.sgId),
      sender: senderIdentity(h.senderId),
      epoch: h.epoch,
      plaintext: opened.plaintext,
    };
    this.emit('message', ev);
  }

  /** UNKNOWN_EPOCH: fetch the current key over the tunnel (once at a time per SG). */
  #fetch(sgId: string): void {
    if (this.#fetching.has(sgId)) return;
    this.#fetching.add(sgId);
    this.fetchKey(sgId)
      .catch((e) => {
        this.#log.debug({ code: codeOf(e), sgId }, 'key fetch failed');
        this.#pending.delete(sgId);
      })
      .finally(() => this.#fetching.delete(sgId));
  }

  #forget(sgId: string): void {
    const sg = uuidToBytes(sgId);
    this.#ring.remove(sg);
    this.#sender.forget(sg);
    this.#pending.delete(sgId);
  }

  async #waitKey(sgId: string, minEpoch: number, timeoutMs?: number): Promise<void> {
    if ((this.currentEpoch(sgId) ?? 0) >= minEpoch) return;
    const got = await new Promise<boolean>((resolve) => {
      const t = setTimeout(
        () => {
          this.off('key', on);
          resolve(false);
        },
        timeoutMs ?? this.#opts.keyWaitMs ?? PNE_DEFAULTS.keyWaitMs,
      );
      const on = (e: { sgId: string; epoch: number }): void => {
        if (e.sgId === sgId && e.epoch >= minEpoch) {
          clearTimeout(t);
          this.off('key', on);
          resolve(true);
        }
      };
      this.on('key', on);
    });
    if (!got) await this.fetchKey(sgId);
  }
}
