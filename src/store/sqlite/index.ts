/**
 * SQLite backend (better-sqlite3 12.x; never 13.x, it crashes on Node 20). The embedded default store:
 * one file, WAL mode, foreign keys on, synchronous=FULL so a committed Group Key survives power loss before
 * it is delivered. better-sqlite3 is synchronous; the Store interface is async so PostgreSQL fits the same one.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { CpnsError, ErrorCode } from '../../core/errors.js';
import { RowSealer, STORE_ID_BYTES } from '../at-rest.js';
import { StoreError } from '../errors.js';
import type {
  AdminToken,
  AuditPage,
  AuditQuery,
  ConsumeTokenResult,
  DeletedGroup,
  DeliveryAck,
  DeliveryStatus,
  EnrollmentToken,
  Gateway,
  GatewayAck,
  GroupAuditOptions,
  GroupKey,
  GwLease,
  Identity,
  KeyMeta,
  Member,
  NewAdminToken,
  NewAuditEntry,
  NewEnrollmentToken,
  NewIdentity,
  NewServiceGroup,
  OutboxEntry,
  OutboxWrite,
  PersonalNetwork,
  Pne,
  RelayMark,
  Role,
  RotateOptions,
  ServiceGroup,
  ServiceGroupPatch,
  Store,
} from '../store.js';
import * as adminTokens from './admin-tokens.js';
import * as audit from './audit.js';
import { type Ctx, cacheStatements, type Db, mapError, tx } from './db.js';
import * as delivery from './delivery.js';
import { GroupCommit } from './group-commit.js';
import * as groups from './groups.js';
import * as inventory from './inventory.js';
import * as keys from './keys.js';
import * as leases from './leases.js';
import { MIGRATIONS, type Migration, migrate } from './migrations.js';
import * as outbox from './outbox.js';
import * as registry from './registry.js';
import * as relay from './relay.js';
import * as secrets from './secrets.js';

export interface SqliteStoreOptions {
  /** Database file path, or ':memory:'. */
  readonly path: string;
  /** 32-byte server master key (see loadOrCreateMasterKey). */
  readonly masterKey: Uint8Array;
  /** How long a writer waits for another connection's lock before BUSY (default 5000 ms). */
  readonly busyTimeoutMs?: number;
  /** Clock in ms (default Date.now); tests inject a fake one. */
  readonly now?: () => number;
  /** Migration list override, for migration tests only. */
  readonly migrations?: readonly Migration[];
  /**
   * Most key rotations committed in one transaction by group commit (default 64; 1 commits each on its own).
   * docs/store.md "Group commit of key rotations".
   */
  readonly groupCommitMax?: number;
}

/** Defaults of the SQLite store's limits (SqliteStoreOptions). */
export const SQLITE_DEFAULTS = { busyTimeoutMs: 5000, groupCommitMax: 64 } as const;

function initMeta(db: Db, masterKey: Uint8Array): RowSealer {
  return tx(db, () => {
    const get = (k: string) =>
      (db.prepare('SELECT value FROM store_meta WHERE key = ?').get(k) as { value: Buffer } | undefined)
        ?.value;
    let storeId = get('store_id');
    if (storeId === undefined) {
      storeId = randomBytes(STORE_ID_BYTES);
      db.prepare('INSERT INTO store_meta (key, value) VALUES (?, ?)').run('store_id', storeId);
    }
    const sealer = new RowSealer(masterKey, storeId);
    const nonce = get('mk_check_nonce');
    const ct = get('mk_check_ct');
    if (nonce === undefined || ct === undefined) {
      const check = sealer.makeCheck();
      db.prepare('INSERT INTO store_meta (key, value) VALUES (?, ?), (?, ?)').run(
        'mk_check_nonce',
        check.nonce,
        'mk_check_ct',
        check.ct,
      );
    } else {
      try {
        sealer.verifyCheck({ nonce, ct });
      } catch (e) {
        sealer.wipe();
        throw e;
      }
    }
    return sealer;
  });
}

export class SqliteStore implements Store {
  readonly #db: Db;
  readonly #ctx: Ctx;
  readonly #rotations: GroupCommit;
  #closed = false;
  /** Highest migration version of the database. */
  readonly schemaVersion: number;
  /** Migrations applied by this open (empty when the database was up to date). */
  readonly appliedMigrations: readonly number[];

  private constructor(
    db: Db,
    ctx: Ctx,
    schemaVersion: number,
    applied: readonly number[],
    groupCommitMax: number,
  ) {
    this.#db = db;
    this.#ctx = ctx;
    this.#rotations = new GroupCommit(() => this.#use(), groupCommitMax);
    this.schemaVersion = schemaVersion;
    this.appliedMigrations = applied;
  }

  static open(opts: SqliteStoreOptions): SqliteStore {
    if (!(opts.masterKey instanceof Uint8Array) || opts.masterKey.length !== 32)
      throw new StoreError('MASTER_KEY_INVALID', 'master key must be 32 bytes', 'masterKey');
    const groupCommitMax = opts.groupCommitMax ?? SQLITE_DEFAULTS.groupCommitMax;
    if (!Number.isInteger(groupCommitMax) || groupCommitMax < 1 || groupCommitMax > 10_000)
      throw new CpnsError(
        ErrorCode.INVALID_ARGUMENT,
        'expected an integer from 1 to 10000',
        'groupCommitMax',
      );
    const memory = opts.path === ':memory:' || opts.path === '';
    const created = !memory && !existsSync(opts.path);
    let db: Db;
    try {
      db = new Database(opts.path);
    } catch (e) {
      throw mapError(e);
    }
    try {
      if (created) chmodSync(opts.path, 0o600);
      db.pragma(
        `busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? SQLITE_DEFAULTS.busyTimeoutMs))}`,
      );
      if (!memory) db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      cacheStatements(db);
      const { version, applied } = migrate(db, opts.migrations ?? MIGRATIONS);
      const sealer = initMeta(db, opts.masterKey);
      const ctx: Ctx = { db, sealer, now: opts.now ?? Date.now };
      return new SqliteStore(db, ctx, version, applied, groupCommitMax);
    } catch (e) {
      db.close();
      throw mapError(e);
    }
  }

  /** The raw connection, for tests and maintenance tools: bypasses validation and encryption. */
  get database(): Db {
    return this.#use().db;
  }

  #use(): Ctx {
    if (this.#closed) throw new StoreError('CLOSED', 'store is closed');
    return this.#ctx;
  }

  /** Runs one store operation: closed check, then driver errors mapped to StoreError, as a Promise. */
  async #run<T>(fn: (ctx: Ctx) => T): Promise<T> {
    const ctx = this.#use();
    try {
      return fn(ctx);
    } catch (e) {
      throw mapError(e);
    }
  }

  // identities
  putIdentity(i: NewIdentity): Promise<Identity> {
    return this.#run((c) => registry.putIdentity(c, i));
  }
  getIdentity(id: string): Promise<Identity | undefined> {
    return this.#run((c) => registry.getIdentity(c, id));
  }
  listIdentities(role?: Role): Promise<Identity[]> {
    return this.#run((c) => registry.listIdentities(c, role));
  }
  revokeIdentity(
    id: string,
    at?: number,
    opts?: { readonly outbox?: readonly OutboxWrite[] },
  ): Promise<Identity> {
    return this.#run((c) => registry.revokeIdentity(c, id, at, opts));
  }
  isRevoked(ref: string): Promise<boolean> {
    return this.#run((c) => registry.isRevoked(c, ref));
  }

  // enrollment tokens
  createToken(t: NewEnrollmentToken): Promise<EnrollmentToken> {
    return this.#run((c) => registry.createToken(c, t));
  }
  consumeToken(tokenHash: string, role: Role, now?: number): Promise<ConsumeTokenResult> {
    return this.#run((c) => registry.consumeToken(c, tokenHash, role, now));
  }
  purgeExpiredTokens(now?: number): Promise<number> {
    return this.#run((c) => registry.purgeExpiredTokens(c, now));
  }

  // admin tokens
  createAdminToken(
    t: NewAdminToken,
    opts?: { readonly audit?: readonly NewAuditEntry[] },
  ): Promise<AdminToken> {
    return this.#run((c) => adminTokens.createAdminToken(c, t, opts));
  }
  listAdminTokens(): Promise<AdminToken[]> {
    return this.#run((c) => adminTokens.listAdminTokens(c));
  }
  revokeAdminToken(
    name: string,
    at?: number,
    opts?: { readonly audit?: readonly NewAuditEntry[] },
  ): Promise<AdminToken> {
    return this.#run((c) => adminTokens.revokeAdminToken(c, name, at, opts));
  }
  findAdminToken(tokenHash: string): Promise<AdminToken | undefined> {
    return this.#run((c) => adminTokens.findAdminToken(c, tokenHash));
  }

  // PN inventory
  registerGateway(gwId: string, at?: number): Promise<Gateway> {
    return this.#run((c) => inventory.registerGateway(c, gwId, at));
  }
  deregisterGateway(gwId: string): Promise<string[]> {
    return this.#run((c) => inventory.deregisterGateway(c, gwId));
  }
  getGateway(gwId: string): Promise<Gateway | undefined> {
    return this.#run((c) => inventory.getGateway(c, gwId));
  }
  acquireGwLease(
    gwId: string,
    nodeId: string,
    opts?: { readonly at?: number; readonly outbox?: boolean },
  ): Promise<GwLease> {
    return this.#run((c) => leases.acquireGwLease(c, gwId, nodeId, opts));
  }
  getGwLease(gwId: string): Promise<GwLease | undefined> {
    return this.#run((c) => leases.getGwLease(c, gwId));
  }
  listGwLeases(): Promise<GwLease[]> {
    return this.#run((c) => leases.listGwLeases(c));
  }
  attachPne(
    pneId: string,
    gwId: string,
    media: readonly string[],
    at?: number,
    opts?: { readonly outbox?: readonly OutboxWrite[] },
  ): Promise<{ previousGwId: string | null }> {
    return this.#run((c) => inventory.attachPne(c, pneId, gwId, media, at, opts));
  }
  detachPne(pneId: string, at?: number): Promise<boolean> {
    return this.#run((c) => inventory.detachPne(c, pneId, at));
  }
  getPne(pneId: string): Promise<Pne | undefined> {
    return this.#run((c) => inventory.getPne(c, pneId));
  }
  setOnline(id: string, online: boolean, at?: number): Promise<void> {
    return this.#run((c) => inventory.setOnline(c, id, online, at));
  }
  listPns(): Promise<PersonalNetwork[]> {
    return this.#run((c) => inventory.listPns(c));
  }
  listDetachedPnes(): Promise<Pne[]> {
    return this.#run((c) => inventory.listDetachedPnes(c));
  }

  // Service Groups
  createGroup(g: NewServiceGroup, opts?: GroupAuditOptions): Promise<ServiceGroup> {
    return this.#run((c) => groups.createGroup(c, g, opts));
  }
  getGroup(sgId: string): Promise<ServiceGroup | undefined> {
    return this.#run((c) => groups.getGroup(c, sgId));
  }
  listGroups(filter?: { ownerId?: string }): Promise<ServiceGroup[]> {
    return this.#run((c) => groups.listGroups(c, filter));
  }
  updateGroup(sgId: string, patch: ServiceGroupPatch, opts?: GroupAuditOptions): Promise<ServiceGroup> {
    return this.#run((c) => groups.updateGroup(c, sgId, patch, opts));
  }
  deleteGroup(sgId: string, opts?: GroupAuditOptions): Promise<DeletedGroup> {
    return this.#run((c) => groups.deleteGroup(c, sgId, opts));
  }
  addMember(sgId: string, pneId: string, at?: number, opts?: GroupAuditOptions): Promise<boolean> {
    return this.#run((c) => groups.addMember(c, sgId, pneId, at, opts));
  }
  removeMember(sgId: string, pneId: string, opts?: GroupAuditOptions): Promise<boolean> {
    return this.#run((c) => groups.removeMember(c, sgId, pneId, opts));
  }
  listMembers(sgId: string): Promise<Member[]> {
    return this.#run((c) => groups.listMembers(c, sgId));
  }
  isMember(sgId: string, pneId: string): Promise<boolean> {
    return this.#run((c) => groups.isMember(c, sgId, pneId));
  }
  countMembers(sgId: string): Promise<number> {
    return this.#run((c) => groups.countMembers(c, sgId));
  }
  invite(sgId: string, pneId: string, at?: number): Promise<void> {
    return this.#run((c) => groups.invite(c, sgId, pneId, at));
  }
  hasInvite(sgId: string, pneId: string): Promise<boolean> {
    return this.#run((c) => groups.hasInvite(c, sgId, pneId));
  }
  uninvite(sgId: string, pneId: string): Promise<boolean> {
    return this.#run((c) => groups.uninvite(c, sgId, pneId));
  }
  listInvites(sgId: string): Promise<string[]> {
    return this.#run((c) => groups.listInvites(c, sgId));
  }
  groupsOfPne(pneId: string): Promise<string[]> {
    return this.#run((c) => groups.groupsOfPne(c, pneId));
  }

  // Group Keys
  rotateGroupKey(sgId: string, key: Uint8Array, reason: string, opts: RotateOptions): Promise<KeyMeta> {
    // Durable before delivery, and committed together with the rotations of other SGs asked for in the same
    // turn of the event loop (one fsync for all; group-commit.ts).
    return this.#rotations.run((c) => keys.rotateGroupKey(c, sgId, key, reason, opts));
  }
  getCurrentKey(sgId: string, now?: number): Promise<GroupKey | undefined> {
    return this.#run((c) => keys.getCurrentKey(c, sgId, now));
  }
  getKey(sgId: string, epoch: number): Promise<GroupKey | undefined> {
    return this.#run((c) => keys.getKey(c, sgId, epoch));
  }
  listKeyEpochs(sgId: string): Promise<KeyMeta[]> {
    return this.#run((c) => keys.listKeyEpochs(c, sgId));
  }
  pruneKeys(sgId: string, keepFromEpoch: number): Promise<number> {
    return this.#run((c) => keys.pruneKeys(c, sgId, keepFromEpoch));
  }

  // delivery tracking
  recordDelivery(ack: DeliveryAck): Promise<void> {
    return this.#run((c) => delivery.recordDeliveries(c, [ack]));
  }
  recordDeliveries(acks: readonly DeliveryAck[]): Promise<void> {
    return this.#run((c) => delivery.recordDeliveries(c, acks));
  }
  recordGatewayAck(ack: GatewayAck): Promise<void> {
    return this.#run((c) => delivery.recordGatewayAcks(c, [ack]));
  }
  recordGatewayAcks(acks: readonly GatewayAck[]): Promise<void> {
    return this.#run((c) => delivery.recordGatewayAcks(c, acks));
  }
  deliveryStatus(sgId: string, now?: number): Promise<DeliveryStatus> {
    return this.#run((c) => delivery.deliveryStatus(c, sgId, now));
  }

  // relay marks
  upsertRelayMark(mark: RelayMark): Promise<void> {
    return this.#run((c) => relay.upsertRelayMark(c, mark));
  }
  listRelayMarks(sgId: string, epoch: number): Promise<RelayMark[]> {
    return this.#run((c) => relay.listRelayMarks(c, sgId, epoch));
  }

  // secrets
  putSecret(name: string, value: Uint8Array): Promise<void> {
    return this.#run((c) => secrets.putSecret(c, name, value));
  }
  getSecret(name: string): Promise<Buffer | undefined> {
    return this.#run((c) => secrets.getSecret(c, name));
  }
  deleteSecret(name: string): Promise<boolean> {
    return this.#run((c) => secrets.deleteSecret(c, name));
  }

  // audit
  appendAudit(entry: NewAuditEntry): Promise<number> {
    return this.#run((c) => audit.appendAudit(c, entry));
  }
  listAudit(query?: AuditQuery): Promise<AuditPage> {
    return this.#run((c) => audit.listAudit(c, query));
  }

  // outbox (docs/cluster.md)
  appendOutbox(rows: readonly OutboxWrite[], at?: number): Promise<void> {
    return this.#run((c) => outbox.appendOutbox(c, rows, at));
  }
  listOutbox(limit?: number): Promise<OutboxEntry[]> {
    return this.#run((c) => outbox.listOutbox(c, limit));
  }
  deleteOutbox(seqs: readonly number[]): Promise<void> {
    return this.#run((c) => outbox.deleteOutbox(c, seqs));
  }

  /** Idempotent. Checkpoints the WAL into the main file, closes the connection and wipes the key copy. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#rotations.drain();
    this.#closed = true;
    try {
      if (this.#db.open && !this.#db.memory) this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // another connection holds the WAL: the checkpoint happens later, nothing is lost
    }
    this.#db.close();
    this.#ctx.sealer.wipe();
  }
}

export async function openSqliteStore(opts: SqliteStoreOptions): Promise<SqliteStore> {
  return SqliteStore.open(opts);
}

export { MIGRATIONS, type Migration } from './migrations.js';
