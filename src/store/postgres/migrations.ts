/**
 * Numbered, forward-only migrations: the PostgreSQL twin of src/store/sqlite/migrations.ts, same versions and
 * names, same rules (docs/store.md):
 * - a migration is never edited or removed once released: its SHA-256 is recorded in schema_migrations and
 *   checked on every open (MIGRATION_MISMATCH);
 * - open() applies, in one transaction each, only the migrations newer than the database's highest version;
 * - a database newer than the code (unknown version) is refused (SCHEMA_TOO_NEW).
 * Every step runs under pg_advisory_xact_lock(MIGRATION_LOCK, hashtext(current_schema())), and "is it applied?"
 * is re-checked under it, so nodes starting together migrate once.
 */
import {
  type AppliedMigration,
  checkNumbering,
  checksum,
  type Migration,
  type MigrationResult,
  verifyApplied,
} from '../migration.js';
import { type Client, type Ctx, tx } from './db.js';

export type { Migration, MigrationResult } from '../migration.js';

/** 'CPNS' as an int4: the advisory lock class of migrations (the second key is the schema's hash). */
export const MIGRATION_LOCK = 0x43504e53;

/** Text columns use the "C" collation: byte order, like SQLite, so both backends list rows in the same order. */
const M1_INITIAL = `
CREATE TABLE store_meta (
  key   TEXT COLLATE "C" PRIMARY KEY,
  value BYTEA NOT NULL
);

CREATE TABLE identities (
  id          TEXT COLLATE "C" PRIMARY KEY,
  role        TEXT COLLATE "C" NOT NULL CHECK (role IN ('gw', 'pne')),
  cert_serial TEXT COLLATE "C" NOT NULL UNIQUE,
  cert_pem    TEXT COLLATE "C" NOT NULL,
  created_at  BIGINT NOT NULL,
  revoked_at  BIGINT
);
CREATE INDEX identities_role ON identities (role);

-- Every certificate serial ever revoked (a revoked identity may have had several certificates).
CREATE TABLE revoked_certs (
  serial     TEXT COLLATE "C" PRIMARY KEY,
  id         TEXT COLLATE "C" NOT NULL,
  revoked_at BIGINT NOT NULL
);

CREATE TABLE enrollment_tokens (
  token_hash TEXT COLLATE "C" PRIMARY KEY,            -- SHA-256 hex; the token itself is never stored
  role       TEXT COLLATE "C" NOT NULL CHECK (role IN ('gw', 'pne')),
  label      TEXT COLLATE "C",
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at    BIGINT
);
CREATE INDEX enrollment_tokens_expiry ON enrollment_tokens (expires_at);

CREATE TABLE gateways (
  gw_id         TEXT COLLATE "C" PRIMARY KEY,
  registered_at BIGINT NOT NULL,
  last_seen     BIGINT NOT NULL,
  online        BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE pnes (
  pne_id    TEXT COLLATE "C" PRIMARY KEY,
  gw_id     TEXT COLLATE "C" REFERENCES gateways (gw_id) ON DELETE SET NULL,
  media     JSONB NOT NULL DEFAULT '[]',  -- JSON array of medium names
  online    BOOLEAN NOT NULL DEFAULT FALSE,
  last_seen BIGINT NOT NULL
);
CREATE INDEX pnes_gw ON pnes (gw_id);

CREATE TABLE service_groups (
  sg_id              TEXT COLLATE "C" PRIMARY KEY,
  name               TEXT COLLATE "C" NOT NULL,
  owner_id           TEXT COLLATE "C" NOT NULL,
  join_policy        TEXT COLLATE "C" NOT NULL CHECK (join_policy IN ('open', 'invite')),
  suite              INTEGER NOT NULL CHECK (suite IN (1, 2)),
  source_auth        BOOLEAN NOT NULL,
  rekey_interval_sec BIGINT,
  delivery_policy    JSONB,                -- JSON object
  created_at         BIGINT NOT NULL,
  epoch_hwm          BIGINT NOT NULL DEFAULT 0 CHECK (epoch_hwm >= 0)  -- highest epoch ever allocated
);
CREATE INDEX service_groups_owner ON service_groups (owner_id);

-- Ids of deleted groups: never reused, so (sg_id, epoch) names at most one key forever.
CREATE TABLE retired_groups (
  sg_id      TEXT COLLATE "C" PRIMARY KEY,
  epoch_hwm  BIGINT NOT NULL,
  deleted_at BIGINT NOT NULL
);

CREATE TABLE members (
  sg_id     TEXT COLLATE "C" NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  pne_id    TEXT COLLATE "C" NOT NULL,
  joined_at BIGINT NOT NULL,
  PRIMARY KEY (sg_id, pne_id)
);
CREATE INDEX members_pne ON members (pne_id);

CREATE TABLE invitations (
  sg_id      TEXT COLLATE "C" NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  pne_id     TEXT COLLATE "C" NOT NULL,
  invited_at BIGINT NOT NULL,
  PRIMARY KEY (sg_id, pne_id)
);

CREATE TABLE group_keys (
  sg_id       TEXT COLLATE "C" NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  epoch       BIGINT NOT NULL CHECK (epoch >= 1),
  key_nonce   BYTEA NOT NULL,             -- 12 random bytes
  key_ct      BYTEA NOT NULL,             -- AES-256-GCM(master key, AAD = store id, 'gk', sg_id, epoch) || tag
  created_at  BIGINT NOT NULL,
  reason      TEXT COLLATE "C" NOT NULL,
  activate_at BIGINT,
  PRIMARY KEY (sg_id, epoch)
);

CREATE TABLE deliveries (
  sg_id    TEXT COLLATE "C" NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  pne_id   TEXT COLLATE "C" NOT NULL,
  epoch    BIGINT NOT NULL,
  gw_id    TEXT COLLATE "C" NOT NULL,
  method   TEXT COLLATE "C" NOT NULL CHECK (method IN ('unicast', 'broadcast', 'fallback')),
  acked_at BIGINT NOT NULL,
  PRIMARY KEY (sg_id, pne_id, epoch)
);

CREATE TABLE gw_deliveries (
  sg_id    TEXT COLLATE "C" NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  gw_id    TEXT COLLATE "C" NOT NULL,
  epoch    BIGINT NOT NULL,
  acked_at BIGINT NOT NULL,
  PRIMARY KEY (sg_id, gw_id, epoch)
);

CREATE TABLE relay_marks (
  sg_id      TEXT COLLATE "C" NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  epoch      BIGINT NOT NULL,
  sender     TEXT COLLATE "C" NOT NULL,
  instance   TEXT COLLATE "C" NOT NULL,
  counter    BIGINT NOT NULL CHECK (counter >= 0),
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (sg_id, epoch, sender, instance)
);

CREATE TABLE secrets (
  name       TEXT COLLATE "C" PRIMARY KEY,
  nonce      BYTEA NOT NULL,
  ct         BYTEA NOT NULL,             -- AES-256-GCM(master key, AAD = store id, 'secret', name) || tag
  updated_at BIGINT NOT NULL
);

-- Append-only: no foreign keys (entries outlive their groups), UPDATE, DELETE and TRUNCATE raise.
CREATE TABLE audit_log (
  seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at      BIGINT NOT NULL,
  actor   TEXT COLLATE "C" NOT NULL,
  action  TEXT COLLATE "C" NOT NULL,
  sg_id   TEXT COLLATE "C",
  subject TEXT COLLATE "C",
  epoch   BIGINT,
  reason  TEXT COLLATE "C",
  detail  JSONB                           -- JSON object, never key material
);
CREATE INDEX audit_log_sg ON audit_log (sg_id, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
`;

/**
 * Backward secrecy on join (docs/protocol.md): a Service Group updates its Group Key when a member joins unless the
 * operator turns it off. On by default, also for groups created before this migration.
 */
const M2_UPDATE_ON_JOIN = `
ALTER TABLE service_groups ADD COLUMN update_on_join BOOLEAN NOT NULL DEFAULT TRUE;
`;

/**
 * The outbox (docs/cluster.md): a change that other server nodes must hear of is written here in the change's own
 * transaction and removed once the event bus acknowledged it. Never key material.
 */
const M3_OUTBOX = `
CREATE TABLE outbox (
  seq  BIGSERIAL PRIMARY KEY,
  at   BIGINT NOT NULL,
  kind TEXT NOT NULL,
  body JSONB NOT NULL
);
`;

/**
 * GW session leases (docs/cluster.md "GW session lease"): which server node holds each GW's session, with a
 * generation that increases by one at every acquisition. Decided under the lease row's lock, never by NATS.
 */
const M4_GW_LEASES = `
CREATE TABLE gw_leases (
  gw_id       TEXT PRIMARY KEY,
  node_id     TEXT NOT NULL,
  generation  INTEGER NOT NULL CHECK (generation >= 1),
  acquired_at BIGINT NOT NULL
);
`;

/**
 * Admin API tokens (docs/operator.md "Admin tokens"): a name (the audit actor), a scope, the SHA-256 of the
 * token. Revoked rows stay, so a name is never reused.
 */
const M5_ADMIN_TOKENS = `
CREATE TABLE admin_tokens (
  name       TEXT PRIMARY KEY,
  scope      TEXT NOT NULL CHECK (scope IN ('read', 'operator', 'admin')),
  token_hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT
);
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial', sql: M1_INITIAL },
  { version: 2, name: 'update-on-join', sql: M2_UPDATE_ON_JOIN },
  { version: 3, name: 'outbox', sql: M3_OUTBOX },
  { version: 4, name: 'gw-leases', sql: M4_GW_LEASES },
  { version: 5, name: 'admin-tokens', sql: M5_ADMIN_TOKENS },
];

/** Takes the migration lock of the connection's schema for the rest of the transaction. */
export async function lockSchema(c: Client, schema?: string): Promise<void> {
  // coalesce: with no schema on the search_path current_schema() is NULL, and the (strict) lock function
  // would return NULL without locking anything
  await c.query(
    "SELECT pg_advisory_xact_lock($1::int4, hashtext(coalesce($2::text, current_schema(), '')))",
    [MIGRATION_LOCK, schema ?? null],
  );
}

/** Creates the schema if missing, under its migration lock: CREATE SCHEMA IF NOT EXISTS alone races. */
export async function createSchema(ctx: Pick<Ctx, 'pool' | 'limits'>, schema: string): Promise<void> {
  await tx(ctx, async (c) => {
    await lockSchema(c, schema);
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  });
}

async function appliedRows(c: Client): Promise<AppliedMigration[]> {
  const r = await c.query('SELECT version, checksum FROM schema_migrations ORDER BY version');
  return r.rows as AppliedMigration[];
}

/**
 * Applies pending migrations. Each runs with its bookkeeping row in one transaction under the schema's advisory
 * lock, and the "what is applied" check is repeated under that lock, so nodes opening one new database at once
 * are safe; a failing migration leaves the database at the previous version.
 */
export async function migrate(
  ctx: Pick<Ctx, 'pool' | 'limits'>,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrationResult> {
  checkNumbering(migrations);
  await tx(ctx, async (c) => {
    await lockSchema(c);
    await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      checksum   TEXT NOT NULL,
      applied_at BIGINT NOT NULL
    )`);
    verifyApplied(migrations, await appliedRows(c));
  });
  const applied: number[] = [];
  for (const m of migrations) {
    await tx(ctx, async (c) => {
      await lockSchema(c);
      const exists = await c.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
      if (exists.rows.length > 0) return;
      await c.query(m.sql);
      await c.query(
        'INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)',
        [m.version, m.name, checksum(m), Date.now()],
      );
      applied.push(m.version);
    });
  }
  const final = await tx(ctx, async (c) => appliedRows(c));
  verifyApplied(migrations, final);
  return { applied, version: final.length === 0 ? 0 : final[final.length - 1]!.version };
}
