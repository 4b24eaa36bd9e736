/**
 * The persistence interface of the CPNS Server. One interface, several backends: SQLite (src/store/sqlite,
 * embedded default) and later PostgreSQL (src/store/postgres, same file names, same schema, same test suite).
 *
 * Conventions:
 * - Every method returns a Promise (PostgreSQL is asynchronous), even where the SQLite backend is synchronous.
 * - Times are integer milliseconds since the Unix epoch. Methods that record a time take it from the store's
 *   clock unless an explicit `at` / `now` is given.
 * - Ids are validated before any query: `urn:cpns:gw:<uuid>`, `urn:cpns:pne:<uuid>` and Service Group ids are
 *   lowercase UUIDs. Bad input rejects with `CpnsError(INVALID_ARGUMENT, message, field)`.
 * - State errors reject with `StoreError` (src/store/errors.ts): NOT_FOUND, CONFLICT, GROUP_RETIRED, ...
 * - Every method is atomic on its own (one transaction). There is no cross-call transaction API on purpose:
 *   the operations that must be atomic (epoch allocation + key write + its audit row, single-use token, group
 *   delete cascade) are single methods. State changes that are audited take their audit entries as an option
 *   (`audit`) and write them in the same transaction: a crash never leaves a change without its audit row, or
 *   an audit row for a change that did not commit.
 * - Secrets (Group Keys, `secrets`) are encrypted at rest under the master key; getters return fresh Buffers
 *   the caller owns (and should wipe when done).
 */
import type { Suite } from '../core/crypto/aead.js';

// ---------------------------------------------------------------- identities & enrollment

export type Role = 'gw' | 'pne';

export interface Identity {
  /** `urn:cpns:gw:<uuid>` or `urn:cpns:pne:<uuid>`; its prefix must agree with `role`. */
  readonly id: string;
  readonly role: Role;
  /** Serial number of the current certificate: hex, normalized to lowercase without leading zeros. */
  readonly certSerial: string;
  readonly certPem: string;
  readonly createdAt: number;
  readonly revokedAt: number | null;
}

export interface NewIdentity {
  readonly id: string;
  readonly role: Role;
  readonly certSerial: string;
  readonly certPem: string;
  readonly createdAt?: number;
}

export interface NewEnrollmentToken {
  /** SHA-256 of the token, 64 lowercase hex digits (see `hashToken`). The token itself is never stored. */
  readonly tokenHash: string;
  readonly role: Role;
  /** Lifetime in seconds, 1 .. 30 days. */
  readonly ttlSec: number;
  /** Free operator label (e.g. "living-room tv"), at most 128 characters. */
  readonly label?: string;
  readonly now?: number;
}

export interface EnrollmentToken {
  readonly tokenHash: string;
  readonly role: Role;
  readonly label: string | null;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly usedAt: number | null;
}

export type ConsumeTokenResult =
  | { readonly ok: true; readonly token: EnrollmentToken }
  | { readonly ok: false; readonly reason: 'unknown' | 'expired' | 'used' | 'wrong_role' };

// ---------------------------------------------------------------- PN inventory

export interface Gateway {
  readonly gwId: string;
  readonly registeredAt: number;
  readonly lastSeen: number;
  readonly online: boolean;
}

export interface Pne {
  readonly pneId: string;
  /** PN GW of the PN the PNE is currently attached to, or null when detached. */
  readonly gwId: string | null;
  /** Media the PNE reaches its GW over (e.g. ["wifi", "ble"]); up to 16 tokens `[a-z0-9_-]{1,32}`. */
  readonly media: readonly string[];
  readonly online: boolean;
  readonly lastSeen: number;
}

export interface PersonalNetwork extends Gateway {
  readonly pnes: readonly Pne[];
}

// ---------------------------------------------------------------- Service Groups

export type JoinPolicy = 'open' | 'invite';
/** JSON object (at most 4 KiB serialized), interpreted by the server (e.g. unicast/broadcast thresholds). */
export type JsonObject = { readonly [k: string]: unknown };

export interface NewServiceGroup {
  /** Lowercase UUID; generated when absent. */
  readonly sgId?: string;
  readonly name: string;
  /** `urn:cpns:pne:<uuid>` of the creating PNE, or 'operator'. */
  readonly ownerId: string;
  readonly joinPolicy: JoinPolicy;
  readonly suite: Suite;
  readonly sourceAuth: boolean;
  /** Update the Group Key when a member joins (backward secrecy). Default true. */
  readonly updateOnJoin?: boolean;
  readonly rekeyIntervalSec?: number | null;
  readonly deliveryPolicy?: JsonObject | null;
  readonly createdAt?: number;
  /** Initial members (`urn:cpns:pne:<uuid>`, at most MAX_INITIAL_MEMBERS), added in the same transaction. */
  readonly members?: readonly string[];
}

export interface ServiceGroup {
  readonly sgId: string;
  readonly name: string;
  readonly ownerId: string;
  readonly joinPolicy: JoinPolicy;
  readonly suite: Suite;
  readonly sourceAuth: boolean;
  /** A joining member gets a fresh Group Key, so it cannot open what was sent before it joined. */
  readonly updateOnJoin: boolean;
  readonly rekeyIntervalSec: number | null;
  readonly deliveryPolicy: JsonObject | null;
  readonly createdAt: number;
  /** Highest epoch ever allocated for this group (0 before the first key). Never decreases. */
  readonly epochHighWater: number;
}

export interface ServiceGroupPatch {
  readonly name?: string;
  readonly joinPolicy?: JoinPolicy;
  readonly sourceAuth?: boolean;
  readonly updateOnJoin?: boolean;
  readonly rekeyIntervalSec?: number | null;
  readonly deliveryPolicy?: JsonObject | null;
}

export interface Member {
  readonly sgId: string;
  readonly pneId: string;
  readonly joinedAt: number;
}

export interface DeletedGroup {
  readonly sgId: string;
  /** PNE ids that were members, so the caller can notify them. */
  readonly members: readonly string[];
  /** Last epoch allocated; the id is retired with it. */
  readonly epochHighWater: number;
}

// ---------------------------------------------------------------- Group Keys

export interface RotateOptions {
  /**
   * The key's audit entry, written in the same transaction as the key row and the epoch high-water mark, so
   * every committed epoch has exactly one audit row and a failed rotation has none. Mandatory on purpose.
   */
  readonly audit: KeyAudit;
  /** Key becomes current at this time (pre-distribution of a periodic update); default: at once. */
  readonly activateAt?: number | null;
  /** Time of the key (created_at) and of its audit row. */
  readonly at?: number;
  /**
   * Also write an outbox row `key.epoch` {sgId, epoch, reason} in the same transaction, for the other server
   * nodes (docs/cluster.md): a committed epoch is announced at least once, however the node crashes. Default
   * false (one node: nobody would take the rows).
   */
  readonly outbox?: boolean;
  /**
   * The cluster node committing the rotation, written into the outbox row (`node`): whichever node later publishes
   * the row, the event names the node that made the change (docs/cluster.md "Events").
   */
  readonly node?: string;
  /** The key update's id (a lowercase UUID), carried in the outbox row for the other nodes' logs. */
  readonly updateId?: string;
}

/** A committed change waiting to be published to the other server nodes (docs/cluster.md). Never key material. */
export interface OutboxEntry {
  /** Increasing; also the idempotency id of the publication (a re-publish after a crash is deduplicated). */
  readonly seq: number;
  readonly at: number;
  /** e.g. 'key.epoch'. */
  readonly kind: string;
  readonly body: JsonObject;
}

/** Audit entry of a key rotation; the store fills in sgId, epoch (the allocated one) and at (the key's time). */
export interface KeyAudit {
  /** Who (as NewAuditEntry.actor). */
  readonly actor: string;
  /** 'key.create' for a group's first key, 'key.update' for every later one. */
  readonly action: 'key.create' | 'key.update';
  /** Why (as NewAuditEntry.reason, free text up to 256 chars), e.g. 'member_left', 'restart'. */
  readonly reason?: string | null;
  readonly subject?: string | null;
  readonly detail?: JsonObject | null;
}

/**
 * An audit entry written by a state-changing method (createGroup, deleteGroup, removeMember) in the same
 * transaction as its change; the store fills in sgId (the group's, also a generated one) and at (the store's
 * clock, or the method's time when it takes one).
 */
export type GroupAudit = Omit<NewAuditEntry, 'sgId' | 'at'>;

export interface GroupAuditOptions {
  /** Written in the change's transaction, in this order; none when the change is a no-op (removeMember false). */
  readonly audit?: readonly GroupAudit[];
  /**
   * Outbox rows for the other server nodes (docs/cluster.md), written in the same transaction as the change, so
   * that a committed change is announced at least once however the node crashes; none when it is a no-op.
   */
  readonly outbox?: readonly OutboxWrite[];
}

/** An outbox row to write in a change's transaction: an event kind and its body. Never key material. */
export interface OutboxWrite {
  /** e.g. 'membership.changed' (`[a-z][a-z0-9_.-]*`, up to 64 chars). */
  readonly kind: string;
  /** The event's fields (a JSON object of at most 16 KiB encoded). */
  readonly body: JsonObject;
}

/**
 * Which server node holds a GW's session (docs/cluster.md "GW session lease"). The generation increases by one
 * at every acquisition, decided under the lease row's lock: a node whose generation is not the current one
 * holds a stale session and must close it.
 */
export interface GwLease {
  readonly gwId: string;
  /** The server node (its cluster node id). */
  readonly nodeId: string;
  readonly generation: number;
  readonly acquiredAt: number;
}

export interface KeyMeta {
  readonly sgId: string;
  readonly epoch: number;
  readonly createdAt: number;
  /** Why the key was created: 'create', 'member_left', 'periodic', 'manual', ... (1..64 chars `[a-z0-9_.:-]`). */
  readonly reason: string;
  readonly activateAt: number | null;
}

export interface GroupKey extends KeyMeta {
  /** The 32-byte Group Key (fresh copy owned by the caller). */
  readonly key: Buffer;
}

// ---------------------------------------------------------------- delivery tracking & relay

export type DeliveryMethod = 'unicast' | 'broadcast' | 'fallback';

export interface DeliveryAck {
  readonly sgId: string;
  readonly epoch: number;
  readonly pneId: string;
  /** GW that delivered the key to the PNE. */
  readonly gwId: string;
  readonly method: DeliveryMethod;
  readonly ackedAt?: number;
}

export interface GatewayAck {
  readonly sgId: string;
  readonly epoch: number;
  readonly gwId: string;
  readonly ackedAt?: number;
}

export interface MemberDeliveryStatus {
  readonly pneId: string;
  /** Current GW of the PNE (inventory), else the GW of its last delivery, else null. */
  readonly gwId: string | null;
  readonly online: boolean;
  /** Highest epoch the PNE confirmed, or null if none. */
  readonly ackedEpoch: number | null;
  readonly ackedAt: number | null;
  readonly method: DeliveryMethod | null;
  /** currentEpoch - (ackedEpoch ?? 0), never below 0. */
  readonly lag: number;
}

export interface GatewayDeliveryStatus {
  readonly gwId: string;
  readonly online: boolean;
  readonly ackedEpoch: number | null;
  readonly ackedAt: number | null;
  readonly lag: number;
}

export interface DeliveryStatus {
  readonly sgId: string;
  /** Epoch of the current (active) key, 0 if none. */
  readonly currentEpoch: number;
  readonly members: readonly MemberDeliveryStatus[];
  /** GWs that serve at least one member (inventory) or that acked a key of this group. */
  readonly gateways: readonly GatewayDeliveryStatus[];
}

export interface RelayMark {
  readonly sgId: string;
  readonly epoch: number;
  /** Sender id, 16 bytes as 32 lowercase hex digits (nil UUID = the CPNS Server). */
  readonly sender: string;
  /** Sender instance, 8 bytes as 16 lowercase hex digits. */
  readonly instance: string;
  /** Highest counter relayed, 0 .. 2^48 - 1. */
  readonly counter: number;
}

// ---------------------------------------------------------------- audit

/**
 * Admin API tokens (docs/operator.md "Admin tokens"): named, with a scope, stored as SHA-256 only. Names are never
 * reused, so an audit entry's actor (`operator:<name>`) names one token for ever.
 */
export type AdminScope = 'read' | 'operator' | 'admin';

export interface NewAdminToken {
  /** `[a-z0-9][a-z0-9._-]{0,62}`: shown as the audit actor `operator:<name>`. */
  readonly name: string;
  readonly scope: AdminScope;
  /** SHA-256 of the token, 64 lowercase hex digits (see `hashToken`). */
  readonly tokenHash: string;
  readonly now?: number;
}

export interface AdminToken {
  readonly name: string;
  readonly scope: AdminScope;
  readonly createdAt: number;
  readonly revokedAt: number | null;
}

export interface NewAuditEntry {
  /** Who: an identity urn, 'operator:<name>', 'server', 'scheduler'... (1..256 printable chars). */
  readonly actor: string;
  /** What: e.g. 'group.create', 'key.rotate', 'member.remove', 'identity.revoke' (`[a-z][a-z0-9_.:-]{0,63}`). */
  readonly action: string;
  readonly sgId?: string | null;
  readonly subject?: string | null;
  readonly epoch?: number | null;
  readonly reason?: string | null;
  /** Extra JSON (at most 8 KiB). Binary values and secret-named fields (key, secret, token...) are refused. */
  readonly detail?: JsonObject | null;
  readonly at?: number;
}

export interface AuditEntry {
  readonly seq: number;
  readonly at: number;
  readonly actor: string;
  readonly action: string;
  readonly sgId: string | null;
  readonly subject: string | null;
  readonly epoch: number | null;
  readonly reason: string | null;
  readonly detail: JsonObject | null;
}

export interface AuditQuery {
  readonly sgId?: string;
  readonly action?: string;
  /** Exact actor, e.g. `operator:root`, a device's identity, `server`. */
  readonly actor?: string;
  /** Exact subject (the identity, role or token name an entry is about). */
  readonly subject?: string;
  /** Return entries with seq > afterSeq (the cursor of oldest-first paging). */
  readonly afterSeq?: number;
  /** Return entries with seq < beforeSeq (the cursor of newest-first paging). */
  readonly beforeSeq?: number;
  /** 'asc' (default): oldest first; 'desc': newest first. */
  readonly order?: 'asc' | 'desc';
  /** 1..1000, default 100. */
  readonly limit?: number;
}

export interface AuditPage {
  readonly entries: readonly AuditEntry[];
  /** Oldest first: pass as `afterSeq` to get the next page; null when this page is the last (and newest first). */
  readonly nextAfterSeq: number | null;
  /** Newest first: pass as `beforeSeq` to get the next (older) page; null when this page is the last (and oldest first). */
  readonly nextBeforeSeq: number | null;
}

// ---------------------------------------------------------------- the store

export interface Store {
  // identities
  putIdentity(identity: NewIdentity): Promise<Identity>;
  getIdentity(id: string): Promise<Identity | undefined>;
  listIdentities(role?: Role): Promise<Identity[]>;
  /** Marks the identity revoked (idempotent: keeps the first revocation time) and its certificate serial. */
  revokeIdentity(
    id: string,
    at?: number,
    opts?: { readonly outbox?: readonly OutboxWrite[] },
  ): Promise<Identity>;
  /** `ref` is an identity id (`urn:cpns:...`) or a certificate serial (hex). Unknown -> false. */
  isRevoked(ref: string): Promise<boolean>;

  // enrollment tokens
  createToken(token: NewEnrollmentToken): Promise<EnrollmentToken>;
  /** Atomically single-use: exactly one concurrent caller gets ok for a given token. */
  consumeToken(tokenHash: string, role: Role, now?: number): Promise<ConsumeTokenResult>;
  /** Deletes tokens expired before `now`; returns how many. */
  purgeExpiredTokens(now?: number): Promise<number>;

  // admin tokens
  /** CONFLICT when the name or the hash exists (revoked names too: never reused); `audit` in the same transaction. */
  createAdminToken(
    token: NewAdminToken,
    opts?: { readonly audit?: readonly NewAuditEntry[] },
  ): Promise<AdminToken>;
  /** Every admin token, revoked ones included, by name. Never the hashes. */
  listAdminTokens(): Promise<AdminToken[]>;
  /** NOT_FOUND for an unknown name; revoking a revoked token keeps its first revokedAt. */
  revokeAdminToken(
    name: string,
    at?: number,
    opts?: { readonly audit?: readonly NewAuditEntry[] },
  ): Promise<AdminToken>;
  /** The token with this hash, revoked or not (the caller refuses revoked ones); undefined if none. */
  findAdminToken(tokenHash: string): Promise<AdminToken | undefined>;

  // PN inventory
  /** Creates the GW (offline) if unknown; idempotent (an existing GW is returned unchanged). */
  registerGateway(gwId: string, at?: number): Promise<Gateway>;
  /** Deletes the GW; its PNEs become detached (gwId null, offline). Returns the detached PNE ids. */
  deregisterGateway(gwId: string): Promise<string[]>;
  getGateway(gwId: string): Promise<Gateway | undefined>;
  /**
   * Takes the GW's session lease for `nodeId`: generation = previous + 1 (1 for a first lease), under the lease
   * row's lock, so concurrent acquisitions on several nodes get distinct generations and the last one wins.
   * With `outbox`, a `gw.lease` {gwId, nodeId, generation} row is written in the same transaction.
   */
  acquireGwLease(
    gwId: string,
    nodeId: string,
    opts?: { readonly at?: number; readonly outbox?: boolean },
  ): Promise<GwLease>;
  getGwLease(gwId: string): Promise<GwLease | undefined>;
  listGwLeases(): Promise<GwLease[]>;
  /** Attaches (or moves) the PNE to the GW's PN, marks it online. Returns the previous GW, if any. */
  attachPne(
    pneId: string,
    gwId: string,
    media: readonly string[],
    at?: number,
    /** `outbox` rows are written in the same transaction, only when the PNE changes place (a new GW). */
    opts?: { readonly outbox?: readonly OutboxWrite[] },
  ): Promise<{ previousGwId: string | null }>;
  /** Detaches the PNE from its PN (gwId null, offline). false if it was not attached / unknown. */
  detachPne(pneId: string, at?: number): Promise<boolean>;
  getPne(pneId: string): Promise<Pne | undefined>;
  /** `id` is a GW or PNE id; updates online and lastSeen. NOT_FOUND if unknown. */
  setOnline(id: string, online: boolean, at?: number): Promise<void>;
  listPns(): Promise<PersonalNetwork[]>;
  /** PNEs known but attached to no GW. */
  listDetachedPnes(): Promise<Pne[]>;

  // Service Groups
  /** Creates the group with its initial members (`group.members`) and the `audit` entries in one transaction. */
  createGroup(group: NewServiceGroup, opts?: GroupAuditOptions): Promise<ServiceGroup>;
  getGroup(sgId: string): Promise<ServiceGroup | undefined>;
  listGroups(filter?: { ownerId?: string }): Promise<ServiceGroup[]>;
  /** Applies the patch, with the `audit` and `outbox` rows in the same transaction. */
  updateGroup(sgId: string, patch: ServiceGroupPatch, opts?: GroupAuditOptions): Promise<ServiceGroup>;
  /**
   * Deletes the group with its keys, members, invitations, delivery records and relay marks, and retires the
   * id: createGroup with the same id fails with GROUP_RETIRED, so (sgId, epoch) never names two keys.
   * The `audit` entries (e.g. key.delete, group.delete) are written in the same transaction.
   */
  deleteGroup(sgId: string, opts?: GroupAuditOptions): Promise<DeletedGroup>;
  /** Adds the member (consuming any invitation). false if already a member. NOT_FOUND if no such group. */
  addMember(sgId: string, pneId: string, at?: number, opts?: GroupAuditOptions): Promise<boolean>;
  /**
   * Removes the member and its delivery records, with the `audit` entries (e.g. member.remove) in the same
   * transaction. false if not a member (then nothing is written, audit included).
   */
  removeMember(sgId: string, pneId: string, opts?: GroupAuditOptions): Promise<boolean>;
  listMembers(sgId: string): Promise<Member[]>;
  isMember(sgId: string, pneId: string): Promise<boolean>;
  countMembers(sgId: string): Promise<number>;
  invite(sgId: string, pneId: string, at?: number): Promise<void>;
  hasInvite(sgId: string, pneId: string): Promise<boolean>;
  uninvite(sgId: string, pneId: string): Promise<boolean>;
  listInvites(sgId: string): Promise<string[]>;
  /** Service Group ids the PNE is a member of. */
  groupsOfPne(pneId: string): Promise<string[]>;

  // Group Keys
  /**
   * Allocates epoch = high-water mark + 1 under the group row's write lock and persists `key` (32 bytes)
   * encrypted and its audit row (`opts.audit`, with this epoch), in one transaction, before resolving: the
   * caller delivers only after this resolves. A rejected rotation writes nothing (no key, no epoch, no audit).
   */
  rotateGroupKey(sgId: string, key: Uint8Array, reason: string, opts: RotateOptions): Promise<KeyMeta>;
  /** Key of the highest epoch already active at `now` (activateAt null or <= now); undefined if none. */
  getCurrentKey(sgId: string, now?: number): Promise<GroupKey | undefined>;
  getKey(sgId: string, epoch: number): Promise<GroupKey | undefined>;
  /** Metadata of the stored keys, oldest first (no key material). */
  listKeyEpochs(sgId: string): Promise<KeyMeta[]>;
  /** Deletes keys and relay marks of epochs < keepFromEpoch (and old delivery rows, keeping each member's latest). */
  pruneKeys(sgId: string, keepFromEpoch: number): Promise<number>;

  // delivery tracking
  recordDelivery(ack: DeliveryAck): Promise<void>;
  /** Many acks in one transaction (rekey of a large group). */
  recordDeliveries(acks: readonly DeliveryAck[]): Promise<void>;
  recordGatewayAck(ack: GatewayAck): Promise<void>;
  /** Many GW acks in one transaction (the server writes acks in batches). */
  recordGatewayAcks(acks: readonly GatewayAck[]): Promise<void>;
  deliveryStatus(sgId: string, now?: number): Promise<DeliveryStatus>;

  // relay high-water marks (replay anchors)
  /** Stores max(counter) per (sgId, epoch, sender, instance). */
  upsertRelayMark(mark: RelayMark): Promise<void>;
  listRelayMarks(sgId: string, epoch: number): Promise<RelayMark[]>;

  // named server secrets (CA private key, GW tree secrets...), encrypted at rest
  putSecret(name: string, value: Uint8Array): Promise<void>;
  getSecret(name: string): Promise<Buffer | undefined>;
  deleteSecret(name: string): Promise<boolean>;

  // audit log (append-only)
  appendAudit(entry: NewAuditEntry): Promise<number>;
  listAudit(query?: AuditQuery): Promise<AuditPage>;
  /**
   * Writes outbox rows on their own, for a change that is not store state (a PNE's signing key, held in memory):
   * bounded and checked as the `outbox` option of the other methods.
   */
  appendOutbox(rows: readonly OutboxWrite[], at?: number): Promise<void>;
  /** Unpublished outbox rows, oldest first (`limit` 1..1000, default 100). */
  listOutbox(limit?: number): Promise<OutboxEntry[]>;
  /** Removes published outbox rows (after the bus acknowledged them); unknown seqs are ignored. */
  deleteOutbox(seqs: readonly number[]): Promise<void>;

  close(): Promise<void>;
}
