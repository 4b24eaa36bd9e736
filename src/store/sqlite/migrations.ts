/**
 * Numbered, forward-only migrations. Rules (docs/store.md):
 * - a migration is never edited or removed once released: its SHA-256 is recorded in schema_migrations and
 *   checked on every open (MIGRATION_MISMATCH);
 * - open() applies, in one transaction each, only the migrations newer than the database's highest version;
 * - a database newer than the code (unknown version) is refused (SCHEMA_TOO_NEW).
 * src/store/postgres/migrations.ts will carry the same numbers and names with PostgreSQL DDL.
 */
import {
  checkNumbering,
  checksum,
  type Migration,
  type MigrationResult,
  verifyApplied,
} from '../migration.js';
import type { Db } from './db.js';

export type { Migration, MigrationResult } from '../migration.js';

const M1_INITIAL = `
CREATE TABLE store_meta (
  key   TEXT PRIMARY KEY,
  value BLOB NOT NULL
) STRICT;

CREATE TABLE identities (
  id          TEXT PRIMARY KEY,
  role        TEXT NOT NULL CHECK (role IN ('gw', 'pne')),
  cert_serial TEXT NOT NULL UNIQUE,
  cert_pem    TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER
) STRICT;
CREATE INDEX identities_role ON identities (role);

-- Every certificate serial ever revoked (a revoked identity may have had several certificates).
CREATE TABLE revoked_certs (
  serial     TEXT PRIMARY KEY,
  id         TEXT NOT NULL,
  revoked_at INTEGER NOT NULL
) STRICT;

CREATE TABLE enrollment_tokens (
  token_hash TEXT PRIMARY KEY,            -- SHA-256 hex; the token itself is never stored
  role       TEXT NOT NULL CHECK (role IN ('gw', 'pne')),
  label      TEXT,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at    INTEGER
) STRICT;
CREATE INDEX enrollment_tokens_expiry ON enrollment_tokens (expires_at);

CREATE TABLE gateways (
  gw_id         TEXT PRIMARY KEY,
  registered_at INTEGER NOT NULL,
  last_seen     INTEGER NOT NULL,
  online        INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1))
) STRICT;

CREATE TABLE pnes (
  pne_id    TEXT PRIMARY KEY,
  gw_id     TEXT REFERENCES gateways (gw_id) ON DELETE SET NULL,
  media     TEXT NOT NULL DEFAULT '[]',  -- JSON array of medium names
  online    INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
  last_seen INTEGER NOT NULL
) STRICT;
CREATE INDEX pnes_gw ON pnes (gw_id);

CREATE TABLE service_groups (
  sg_id              TEXT PRIMARY KEY,
  name               TEXT NOT NULL,
  owner_id           TEXT NOT NULL,
  join_policy        TEXT NOT NULL CHECK (join_policy IN ('open', 'invite')),
  suite              INTEGER NOT NULL CHECK (suite IN (1, 2)),
  source_auth        INTEGER NOT NULL CHECK (source_auth IN (0, 1)),
  rekey_interval_sec INTEGER,
  delivery_policy    TEXT,                -- JSON object
  created_at         INTEGER NOT NULL,
  epoch_hwm          INTEGER NOT NULL DEFAULT 0 CHECK (epoch_hwm >= 0)  -- highest epoch ever allocated
) STRICT;
CREATE INDEX service_groups_owner ON service_groups (owner_id);

-- Ids of deleted groups: never reused, so (sg_id, epoch) names at most one key forever.
CREATE TABLE retired_groups (
  sg_id      TEXT PRIMARY KEY,
  epoch_hwm  INTEGER NOT NULL,
  deleted_at INTEGER NOT NULL
) STRICT;

CREATE TABLE members (
  sg_id     TEXT NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  pne_id    TEXT NOT NULL,
  joined_at INTEGER NOT NULL,
  PRIMARY KEY (sg_id, pne_id)
) STRICT;
CREATE INDEX members_pne ON members (pne_id);

CREATE TABLE invitations (
  sg_id      TEXT NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  pne_id     TEXT NOT NULL,
  invited_at INTEGER NOT NULL,
  PRIMARY KEY (sg_id, pne_id)
) STRICT;

CREATE TABLE group_keys (
  sg_id       TEXT NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  epoch       INTEGER NOT NULL CHECK (epoch >= 1),
  key_nonce   BLOB NOT NULL,              -- 12 random bytes
  key_ct      BLOB NOT NULL,              -- AES-256-GCM(master key, AAD = store id, 'gk', sg_id, epoch) || tag
  created_at  INTEGER NOT NULL,
  reason      TEXT NOT NULL,
  activate_at INTEGER,
  PRIMARY KEY (sg_id, epoch)
) STRICT;

CREATE TABLE deliveries (
  sg_id    TEXT NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  pne_id   TEXT NOT NULL,
  epoch    INTEGER NOT NULL,
  gw_id    TEXT NOT NULL,
  method   TEXT NOT NULL CHECK (method IN ('unicast', 'broadcast', 'fallback')),
  acked_at INTEGER NOT NULL,
  PRIMARY KEY (sg_id, pne_id, epoch)
) STRICT;

CREATE TABLE gw_deliveries (
  sg_id    TEXT NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  gw_id    TEXT NOT NULL,
  epoch    INTEGER NOT NULL,
  acked_at INTEGER NOT NULL,
  PRIMARY KEY (sg_id, gw_id, epoch)
) STRICT;

CREATE TABLE relay_marks (
  sg_id      TEXT NOT NULL REFERENCES service_groups (sg_id) ON DELETE CASCADE,
  epoch      INTEGER NOT NULL,
  sender     TEXT NOT NULL,
  instance   TEXT NOT NULL,
  counter    INTEGER NOT NULL CHECK (counter >= 0),
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (sg_id, epoch, sender, instance)
) STRICT;

CREATE TABLE secrets (
  name       TEXT PRIMARY KEY,
  nonce      BLOB NOT NULL,
  ct         BLOB NOT NULL,              -- AES-256-GCM(master key, AAD = store id, 'secret', name) || tag
  updated_at INTEGER NOT NULL
) STRICT;

-- Append-only: no foreign keys (entries outlive their groups), UPDATE and DELETE abort.
CREATE TABLE audit_log (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  at      INTEGER NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  sg_id   TEXT,
  subject TEXT,
  epoch   INTEGER,
  reason  TEXT,
  detail  TEXT                            -- JSON object, never key material
) STRICT;
CREATE INDEX audit_log_sg ON audit_log (sg_id, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
`;

/**
 * Backward secrecy on join (docs/protocol.md): a Service Group updates its Group Key when a member joins unless the
 * operator turns it off. On by default, also for groups created before this migration.
 */
const M2_UPDATE_ON_JOIN = `
ALTER TABLE service_groups ADD COLUMN update_on_join INTEGER NOT NULL DEFAULT 1 CHECK (update_on_join IN (0, 1));
`;

/**
 * The outbox (docs/cluster.md): a change that other server nodes must hear of is written here in the change's own
 * transaction and removed once the event bus acknowledged it. Never key material.
 */
const M3_OUTBOX = `
CREATE TABLE outbox (
  seq  INTEGER PRIMARY KEY AUTOINCREMENT,
  at   INTEGER NOT NULL,
  kind TEXT NOT NULL,
  body TEXT NOT NULL                      -- JSON object
) STRICT;
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
  acquired_at INTEGER NOT NULL
) STRICT;
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
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
) STRICT;
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial', sql: M1_INITIAL },
  { version: 2, name: 'update-on-join', sql: M2_UPDATE_ON_JOIN },
  { version: 3, name: 'outbox', sql: M3_OUTBOX },
  { version: 4, name: 'gw-leases', sql: M4_GW_LEASES },
  { version: 5, name: 'admin-tokens', sql: M5_ADMIN_TOKENS },
];

/**
 * Applies pending migrations. Each runs with its bookkeeping row in one BEGIN IMMEDIATE transaction, and the
 * "what is applied" check is repeated under that lock, so two processes opening one new file at once are safe.
 */
export function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS): MigrationResult {
  checkNumbering(migrations);
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  ) STRICT`);
  const applied: number[] = [];
  const rows = () =>
    db.prepare('SELECT version, checksum FROM schema_migrations ORDER BY version').all() as {
      version: number;
      checksum: string;
    }[];
  verifyApplied(migrations, rows());
  for (const m of migrations) {
    db.transaction(() => {
      const exists = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(m.version);
      if (exists !== undefined) return;
      db.exec(m.sql);
      db.prepare(
        'INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)',
      ).run(m.version, m.name, checksum(m), Date.now());
      applied.push(m.version);
    }).immediate();
  }
  const final = rows();
  verifyApplied(migrations, final);
  return { applied, version: final.length === 0 ? 0 : final[final.length - 1]!.version };
}
