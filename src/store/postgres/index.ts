/**
 * PostgreSQL backend (node-postgres `pg` 8.x, one `Pool` per store = per server node): the store of a cluster of
 * CPNS Server nodes sharing one database. Same tables, columns, migrations and behaviour as src/store/sqlite
 * (the shared suite test/store/suite.ts runs against both); keys sealed at rest by the same src/store/at-rest.ts.
 * The single-writer rule for epochs is a row lock on the group (keys.ts), never a compare-and-set elsewhere.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
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
import {
  type Client,
  type Ctx,
  mapError,
  POSTGRES_DEFAULTS,
  type Pool,
  type PostgresLimits,
  tx,
} from './db.js';
import * as delivery from './delivery.js';
import * as groups from './groups.js';
import * as inventory from './inventory.js';
import * as keys from './keys.js';
import * as leases from './leases.js';
import { createSchema, lockSchema, MIGRATIONS, type Migration, migrate } from './migrations.js';
import * as outbox from './outbox.js';
import * as registry from './registry.js';
import * as relay from './relay.js';
import * as secrets from './secrets.js';

/** Connection settings node-postgres takes besides a URL (host, port, user, password, database, ssl...). */
export type PostgresConnection = Omit<
  pg.PoolConfig,
  'max' | 'connectionTimeoutMillis' | 'idleTimeoutMillis' | 'statement_timeout' | 'options' | 'types'
>;

export interface PostgresStoreOptions extends Partial<PostgresLimits> {
  /** `postgres://user@host:port/database`; or give `connection` (one of the two). */
  readonly url?: string;
  /** node-postgres connection settings (host, port, user, password, database, ssl); merged over `url`. */
  readonly connection?: PostgresConnection;
  /** 32-byte server master key (see loadOrCreateMasterKey). */
  readonly masterKey: Uint8Array;
  /**
   * Schema holding the tables (created if missing; default: the connection's default, normally `public`).
   * Lowercase identifier `[a-z_][a-z0-9_]{0,62}`. Lets tests, or several deployments, share one database.
   */
  readonly schema?: string;
  /** Clock in ms (default Date.now); tests inject a fake one. */
  readonly now?: () => number;
  /** Migration list override, for migration tests only. */
  readonly migrations?: readonly Migration[];
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;
const INT8_OID = 20;

/**
 * BIGINT columns come back as JS numbers: every value the store keeps fits (times in ms < 2^53, epochs < 2^32,
 * counters < 2^48, audit seq), and both backends must return the same values.
 */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

function limitsOf(opts: PostgresStoreOptions): PostgresLimits {
  const out: Record<string, number> = {};
  for (const [k, d] of Object.entries(POSTGRES_DEFAULTS)) {
    const v = (opts as unknown as Record<string, unknown>)[k];
    if (v === undefined) out[k] = d;
    else if (typeof v === 'number' && Number.isInteger(v) && v >= (k === 'txRetries' ? 0 : 1)) out[k] = v;
    else throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'expected a positive integer', k);
  }
  return out as PostgresLimits;
}

function poolConfig(opts: PostgresStoreOptions, limits: PostgresLimits): pg.PoolConfig {
  const settings = [
    `statement_timeout=${limits.statementTimeoutMs}`,
    `lock_timeout=${limits.lockTimeoutMs}`,
    `idle_in_transaction_session_timeout=${limits.idleInTransactionTimeoutMs}`,
  ];
  if (opts.schema !== undefined) settings.push(`search_path=${opts.schema}`);
  return {
    ...(opts.url === undefined ? {} : { connectionString: opts.url }),
    ...opts.connection,
    max: limits.poolMax,
    connectionTimeoutMillis: limits.connectTimeoutMs,
    idleTimeoutMillis: limits.idleTimeoutMs,
    options: settings.map((s) => `-c ${s}`).join(' '),
    types: TYPES,
  };
}

async function initMeta(ctx: Pick<Ctx, 'pool' | 'limits'>, masterKey: Uint8Array): Promise<RowSealer> {
  return tx(ctx, async (c: Client) => {
    await lockSchema(c); // nodes opening a new database together agree on one store id and check value
    const get = async (k: string) =>
      (
        (await c.query('SELECT value FROM store_meta WHERE key = $1', [k])).rows[0] as
          | { value: Buffer }
          | undefined
      )?.value;
    let storeId = await get('store_id');
    if (storeId === undefined) {
      storeId = randomBytes(STORE_ID_BYTES);
      await c.query('INSERT INTO store_meta (key, value) VALUES ($1, $2)', ['store_id', storeId]);
    }
    const sealer = new RowSealer(masterKey, storeId);
    const nonce = await get('mk_check_nonce');
    const ct = await get('mk_check_ct');
    if (nonce === undefined || ct === undefined) {
      const check = sealer.makeCheck();
      await c.query('INSERT INTO store_meta (key, value) VALUES ($1, $2), ($3, $4)', [
        'mk_check_nonce',
        check.nonce,
        'mk_check_ct',
        check.ct,
      ]);
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

export class PostgresStore implements Store {
  readonly #pool: Pool;
  readonly #ctx: Ctx;
  #closed = false;
  /** Highest migration version of the database. */
  readonly schemaVersion: number;
  /** Migrations applied by this open (empty when the database was up to date). */
  readonly appliedMigrations: readonly number[];
  /** The limits in force (POSTGRES_DEFAULTS with the options applied). */
  readonly limits: PostgresLimits;

  private constructor(ctx: Ctx, schemaVersion: number, applied: readonly number[]) {
    this.#pool = ctx.pool;
    this.#ctx = ctx;
    this.schemaVersion = schemaVersion;
    this.appliedMigrations = applied;
    this.limits = ctx.limits;
  }

  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    if (!(opts.masterKey instanceof Uint8Array) || opts.masterKey.length !== 32)
      throw new StoreError('MASTER_KEY_INVALID', 'master key must be 32 bytes', 'masterKey');
    if (opts.schema !== undefined && !SCHEMA_RE.test(opts.schema))
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'invalid PostgreSQL schema name', 'schema');
    const limits = limitsOf(opts);
    const pool = new pg.Pool(poolConfig(opts, limits));
    // An idle pooled connection that breaks (server restart) emits 'error' on the pool: the pool drops it and
    // the next query opens a new one; without a listener it would crash the process.
    pool.on('error', () => {});
    const base = { pool, now: opts.now ?? Date.now, limits };
    try {
      if (opts.schema !== undefined) await createSchema(base, opts.schema);
      const { version, applied } = await migrate(base, opts.migrations ?? MIGRATIONS);
      const sealer = await initMeta(base, opts.masterKey);
      return new PostgresStore({ ...base, sealer }, version, applied);
    } catch (e) {
      await pool.end().catch(() => {});
      throw mapError(e);
    }
  }

  /** The raw pool, for tests and maintenance tools: bypasses validation and encryption. */
  get pool(): Pool {
    return this.#use().pool;
  }

  #use(): Ctx {
    if (this.#closed) throw new StoreError('CLOSED', 'store is closed');
    return this.#ctx;
  }

  /** Runs one store operation: closed check, then driver errors mapped to StoreError. */
  async #run<T>(fn: (ctx: Ctx) => Promise<T>): Promise<T> {
    const ctx = this.#use();
    try {
      return await fn(ctx);
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
    return this.#run((c) => keys.rotateGroupKey(c, sgId, key, reason, opts));
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
    return this.#run((c) => outbox.listOutbox(c.pool, limit));
  }
  deleteOutbox(seqs: readonly number[]): Promise<void> {
    return this.#run((c) => outbox.deleteOutbox(c.pool, seqs));
  }

  /** Idempotent. Waits for checked-out connections, closes the pool and wipes the key copy. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#pool.end();
    } finally {
      this.#ctx.sealer.wipe();
    }
  }
}

export async function openPostgresStore(opts: PostgresStoreOptions): Promise<PostgresStore> {
  return PostgresStore.open(opts);
}

export { POSTGRES_DEFAULTS, type PostgresLimits } from './db.js';
export { MIGRATIONS, type Migration } from './migrations.js';
