/**
 * The PostgreSQL backend against a real server (docs/store.md): the shared suite, one fresh schema per harness
 * (so tests are independent and may run while others use the same database), then what only PostgreSQL and a
 * shared database expose: several Pools (= several server nodes) rotating one Service Group at once, and
 * racing for one enrollment token.
 *
 * The server comes from CPNS_TEST_PG_URL (scripts/dev/postgres.sh up; in CI .ci/services/postgres.sh). Unset:
 * skipped with the reason in the title, except with CI=true, where a missing database fails.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Suite } from '../../src/core/crypto/aead.js';
import { hashToken } from '../../src/store/index.js';
import { isConnectionError, mapError } from '../../src/store/postgres/db.js';
import {
  MIGRATIONS,
  openPostgresStore,
  POSTGRES_DEFAULTS,
  PostgresStore,
  type PostgresStoreOptions,
} from '../../src/store/postgres/index.js';
import type { NewServiceGroup, Store } from '../../src/store/store.js';
import { runStoreSuite, type StoreHarness } from './suite.js';

const URL_ = process.env.CPNS_TEST_PG_URL;
const IN_CI = process.env.CI === 'true';

function postgres(store: Store): PostgresStore {
  if (!(store instanceof PostgresStore)) throw new Error('not a PostgresStore');
  return store;
}

/** `?` placeholders (outside quotes) to `$1..$n`: the suite's raw SQL is written for both backends. */
function toDollar(sql: string): string {
  let n = 0;
  let quote: string | null = null;
  let out = '';
  for (const ch of sql) {
    if (quote !== null) {
      if (ch === quote) quote = null;
      out += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      out += ch;
    } else out += ch === '?' ? `$${++n}` : ch;
  }
  return out;
}

async function raw(store: Store, sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  return (await postgres(store).pool.query(toDollar(sql), params)).rows as Record<string, unknown>[];
}

let admin: pg.Pool | undefined;
function adminPool(): pg.Pool {
  admin ??= new pg.Pool({ connectionString: URL_, max: 2 });
  return admin;
}
afterAll(async () => {
  await admin?.end();
});

const newSchema = () => `cpns_t_${randomUUID().replaceAll('-', '')}`;

async function dropSchema(schema: string): Promise<void> {
  await adminPool().query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
}

/** A trigger on this schema's audit_log raising an exception: the audit insert fails in the database. */
async function failAuditInserts(store: Store): Promise<() => Promise<void>> {
  const p = postgres(store).pool;
  await p.query(`CREATE FUNCTION test_fail_audit() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'injected audit failure'; END $$`);
  await p.query(`CREATE TRIGGER test_fail_audit BEFORE INSERT ON audit_log
                 FOR EACH ROW EXECUTE FUNCTION test_fail_audit()`);
  return async () => {
    await p.query('DROP TRIGGER IF EXISTS test_fail_audit ON audit_log');
    await p.query('DROP FUNCTION IF EXISTS test_fail_audit()');
  };
}

/**
 * What the server keeps of this schema: every row as it is stored (bytea raw, the rest as text), plus, when
 * this process can read the server's data directory (a local test server), the schema's relation files after a
 * CHECKPOINT, so what is on disk is checked too.
 */
async function bytes(store: Store): Promise<Buffer> {
  const p = postgres(store).pool;
  const parts: Buffer[] = [];
  const tables = await p.query<{ t: string }>(
    "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
  );
  for (const { t } of tables.rows) {
    const rows = await p.query(`SELECT * FROM ${t}`);
    for (const r of rows.rows as Record<string, unknown>[])
      for (const v of Object.values(r))
        parts.push(
          Buffer.isBuffer(v) ? v : Buffer.from(typeof v === 'string' ? v : (JSON.stringify(v) ?? '')),
        );
  }
  try {
    await p.query('CHECKPOINT');
    const dir = (await p.query<{ d: string }>("SELECT current_setting('data_directory') AS d")).rows[0]!.d;
    const files = await p.query<{ f: string | null }>(
      `SELECT pg_relation_filepath(c.oid) AS f FROM pg_class c
       WHERE c.relnamespace = current_schema()::regnamespace OR c.oid IN (
         SELECT reltoastrelid FROM pg_class WHERE relnamespace = current_schema()::regnamespace)`,
    );
    for (const { f } of files.rows) {
      const path = f === null ? '' : join(dir, f);
      if (path !== '' && existsSync(path)) parts.push(readFileSync(path));
    }
  } catch {
    // remote server or no CHECKPOINT privilege: the logical content above is what we can check
  }
  return Buffer.concat(parts);
}

async function harness(): Promise<StoreHarness> {
  const schema = newSchema();
  const masterKey = randomBytes(32);
  return {
    open: (o) => openPostgresStore({ url: URL_!, schema, masterKey: o?.masterKey ?? masterKey }),
    raw,
    failAuditInserts,
    bytes,
    cleanup: () => dropSchema(schema),
  };
}

function group(over: Partial<NewServiceGroup> = {}): NewServiceGroup {
  return {
    name: 'g',
    ownerId: 'operator',
    joinPolicy: 'open',
    suite: Suite.AES_256_GCM,
    sourceAuth: false,
    ...over,
  };
}
const KU = { audit: { actor: 'server', action: 'key.update' } } as const;

describe('PostgreSQL error mapping (no server needed)', () => {
  const dbError = (
    code: string,
    message = 'duplicate key value violates unique constraint "x" Key (a)=(secret)',
  ) => Object.assign(new Error(message), { code });

  it('maps SQLSTATEs and connection failures to StoreError codes with fixed messages', () => {
    const cases: [unknown, string, string][] = [
      [dbError('23505'), 'CONFLICT', 'row already exists'],
      [dbError('23503'), 'NOT_FOUND', 'referenced row does not exist'],
      [dbError('40001'), 'BUSY', 'database is locked by another writer'],
      [dbError('40P01'), 'BUSY', 'database is locked by another writer'],
      [dbError('55P03'), 'BUSY', 'database is locked by another writer'],
      [dbError('57014'), 'BUSY', 'statement timed out'],
      [dbError('08006'), 'UNAVAILABLE', 'database is unavailable'],
      [dbError('57P01'), 'UNAVAILABLE', 'database is unavailable'],
      [dbError('53300'), 'UNAVAILABLE', 'database is unavailable'],
      [dbError('28P01'), 'UNAVAILABLE', 'database is unavailable'],
      [dbError('3D000'), 'UNAVAILABLE', 'database is unavailable'],
      [
        dbError('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:5432'),
        'UNAVAILABLE',
        'database is unavailable',
      ],
      [new Error('Connection terminated unexpectedly'), 'UNAVAILABLE', 'database is unavailable'],
      [new Error('timeout exceeded when trying to connect'), 'UNAVAILABLE', 'database is unavailable'],
      [dbError('XX001'), 'STORE_CORRUPT', 'database is corrupt'],
    ];
    for (const [e, code, message] of cases)
      expect(mapError(e), String((e as { code?: string }).code)).toMatchObject({
        name: 'StoreError',
        code,
        message,
      });
  });

  it('an unknown database error names only its SQLSTATE; other errors pass through', () => {
    const out = mapError(dbError('22P02', 'invalid input syntax for type bigint: "top-secret"')) as Error;
    expect(out.message).toBe('database error (SQLSTATE 22P02)');
    expect(out).not.toHaveProperty('cause');
    const plain = new TypeError('x');
    expect(mapError(plain)).toBe(plain);
    expect(isConnectionError(dbError('23505'))).toBe(false);
  });
});

if (URL_ === undefined || URL_ === '') {
  if (IN_CI)
    describe('Store: postgres', () => {
      it('CPNS_TEST_PG_URL is set (CI=true: a missing database must not pass silently)', () => {
        expect.fail('CPNS_TEST_PG_URL is not set: .ci/services/postgres.sh did not start PostgreSQL');
      });
    });
  else
    describe.skip('Store: postgres — skipped: CPNS_TEST_PG_URL is not set (run scripts/dev/postgres.sh up)', () => {
      it('needs a PostgreSQL server', () => {});
    });
} else {
  runStoreSuite('postgres', harness, { persistent: true, multiConnection: true });

  describe('PostgreSQL specifics', () => {
    const schemas: string[] = [];
    const opened: Store[] = [];
    const open = async (o: Partial<PostgresStoreOptions> & { schema: string; masterKey: Uint8Array }) => {
      const s = await openPostgresStore({ url: URL_, ...o });
      opened.push(s);
      return s;
    };
    const fresh = () => {
      const s = newSchema();
      schemas.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
      for (const s of schemas.splice(0)) await dropSchema(s);
    });

    it('limits: documented defaults, each an option, set on every connection', async () => {
      expect(POSTGRES_DEFAULTS).toEqual({
        poolMax: 10,
        connectTimeoutMs: 5000,
        idleTimeoutMs: 30000,
        statementTimeoutMs: 30000,
        lockTimeoutMs: 5000,
        idleInTransactionTimeoutMs: 60000,
        txRetries: 3,
      });
      const schema = fresh();
      const masterKey = randomBytes(32);
      const d = postgres(await open({ schema, masterKey }));
      expect(d.limits).toEqual(POSTGRES_DEFAULTS);
      expect((await d.pool.query('SHOW statement_timeout')).rows[0]).toEqual({ statement_timeout: '30s' });
      const s = postgres(
        await open({
          schema,
          masterKey,
          poolMax: 3,
          statementTimeoutMs: 1234,
          lockTimeoutMs: 250,
          txRetries: 0,
        }),
      );
      expect(s.limits).toMatchObject({
        poolMax: 3,
        statementTimeoutMs: 1234,
        lockTimeoutMs: 250,
        txRetries: 0,
      });
      expect((await s.pool.query('SHOW statement_timeout')).rows[0]).toEqual({ statement_timeout: '1234ms' });
      expect((await s.pool.query('SHOW lock_timeout')).rows[0]).toEqual({ lock_timeout: '250ms' });
      expect((await s.pool.query('SHOW idle_in_transaction_session_timeout')).rows[0]).toEqual({
        idle_in_transaction_session_timeout: '1min',
      });
      expect(s.pool.options.max).toBe(3);
      await expect(openPostgresStore({ url: URL_, schema, masterKey, poolMax: 0 })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        field: 'poolMax',
      });
      await expect(openPostgresStore({ url: URL_, schema: 'Bad-Name', masterKey })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        field: 'schema',
      });
    });

    it('column types: BIGINT, BYTEA, BOOLEAN, JSONB, identity seq; audit_log refuses TRUNCATE too', async () => {
      const schema = fresh();
      const s = postgres(await open({ schema, masterKey: randomBytes(32) }));
      const types = await s.pool.query<{ table_name: string; column_name: string; data_type: string }>(
        `SELECT table_name, column_name, data_type FROM information_schema.columns
         WHERE table_schema = $1 AND column_name IN ('epoch_hwm', 'key_ct', 'online', 'delivery_policy', 'seq')`,
        [schema],
      );
      const t = Object.fromEntries(types.rows.map((r) => [`${r.table_name}.${r.column_name}`, r.data_type]));
      expect(t).toMatchObject({
        'service_groups.epoch_hwm': 'bigint',
        'group_keys.key_ct': 'bytea',
        'gateways.online': 'boolean',
        'service_groups.delivery_policy': 'jsonb',
        'audit_log.seq': 'bigint',
      });
      await s.appendAudit({ actor: 'server', action: 'server.start' });
      await expect(s.pool.query('TRUNCATE audit_log')).rejects.toThrow(/append-only/);
      expect((await s.listAudit()).entries).toHaveLength(1);
    });

    it('reopening applies only the new migrations; a failing one leaves the previous version; newer is refused', async () => {
      const schema = fresh();
      const masterKey = randomBytes(32);
      const s1 = await open({ schema, masterKey });
      expect(postgres(s1).appliedMigrations).toEqual(MIGRATIONS.map((m) => m.version));
      await s1.createGroup(group());
      const s2 = postgres(await open({ schema, masterKey }));
      expect(s2.appliedMigrations).toEqual([]);
      expect(s2.schemaVersion).toBe(MIGRATIONS.length);

      const n = MIGRATIONS.length + 1;
      const bad = { version: n, name: 'broken', sql: 'CREATE TABLE ok_table (x INTEGER); THIS IS NOT SQL;' };
      await expect(
        openPostgresStore({ url: URL_, schema, masterKey, migrations: [...MIGRATIONS, bad] }),
      ).rejects.toThrow();
      const tbl = await s2.pool.query("SELECT to_regclass('ok_table') AS t");
      expect(tbl.rows[0]).toEqual({ t: null }); // DDL is transactional: nothing of it stayed

      const good = { version: n, name: 'add_note', sql: 'ALTER TABLE service_groups ADD COLUMN note TEXT;' };
      const s3 = postgres(await open({ schema, masterKey, migrations: [...MIGRATIONS, good] }));
      expect(s3.appliedMigrations).toEqual([n]);
      expect((await s3.listGroups()).map((g) => g.name)).toEqual(['g']);
      await expect(openPostgresStore({ url: URL_, schema, masterKey })).rejects.toMatchObject({
        code: 'SCHEMA_TOO_NEW',
      });
      const edited = { ...good, sql: `${good.sql} -- edited` };
      await expect(
        openPostgresStore({ url: URL_, schema, masterKey, migrations: [...MIGRATIONS, edited] }),
      ).rejects.toMatchObject({ code: 'MIGRATION_MISMATCH' });
    });

    it('nodes opening a new database together migrate it once and agree on one store id', async () => {
      const schema = fresh();
      const masterKey = randomBytes(32);
      const stores = (await Promise.all(
        Array.from({ length: 4 }, () => open({ schema, masterKey, poolMax: 2 })),
      )) as PostgresStore[];
      expect(stores.flatMap((s) => s.appliedMigrations).sort()).toEqual(MIGRATIONS.map((m) => m.version));
      const meta = await stores[0]!.pool.query("SELECT COUNT(*) AS n FROM store_meta WHERE key = 'store_id'");
      expect(meta.rows[0]).toEqual({ n: 1 });
      // a key sealed through one node opens through every other one
      const g = await stores[0]!.createGroup(group());
      const k = randomBytes(32);
      await stores[1]!.rotateGroupKey(g.sgId, k, 'manual', KU);
      for (const s of stores) expect((await s.getCurrentKey(g.sgId))?.key.equals(k)).toBe(true);
    });

    it('four pools (four nodes) rotating one group at once: distinct consecutive epochs, one audit row each', async () => {
      const schema = fresh();
      const masterKey = randomBytes(32);
      const nodes = await Promise.all(
        Array.from({ length: 4 }, () => open({ schema, masterKey, poolMax: 5 })),
      );
      const g = await nodes[0]!.createGroup(group());
      const PER_NODE = 25;
      const order: number[] = []; // node index in commit order
      const results = await Promise.all(
        nodes.map(async (s, i) => {
          const mine = await Promise.all(
            Array.from({ length: PER_NODE }, async () => {
              const m = await s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU);
              order.push(i);
              return m.epoch;
            }),
          );
          return mine;
        }),
      );
      const all = results.flat().sort((a, b) => a - b);
      expect(all).toEqual(Array.from({ length: 4 * PER_NODE }, (_, i) => i + 1));
      // the nodes really contended: some node's epochs are not one contiguous block
      expect(results.some((r) => Math.max(...r) - Math.min(...r) >= r.length)).toBe(true);
      expect(new Set(order.slice(0, 3 * PER_NODE)).size).toBeGreaterThan(1);
      const audit = await postgres(nodes[0]!).pool.query(
        `SELECT epoch, COUNT(*)::int AS n FROM audit_log WHERE sg_id = $1 AND action IN ('key.create', 'key.update')
         GROUP BY epoch ORDER BY epoch`,
        [g.sgId],
      );
      expect(audit.rows).toEqual(Array.from({ length: 4 * PER_NODE }, (_, i) => ({ epoch: i + 1, n: 1 })));
      expect((await nodes[3]!.getGroup(g.sgId))?.epochHighWater).toBe(4 * PER_NODE);
      expect((await nodes[2]!.listKeyEpochs(g.sgId)).map((k) => k.epoch)).toEqual(all);
    });

    it('two pools consuming the same one-time token: exactly one wins, every time', async () => {
      const schema = fresh();
      const masterKey = randomBytes(32);
      const [a, b] = await Promise.all([open({ schema, masterKey }), open({ schema, masterKey })]);
      const ROUNDS = 30;
      const hashes = Array.from({ length: ROUNDS }, (_, i) => hashToken(`race-${i}-${randomUUID()}`));
      for (const h of hashes) await a!.createToken({ tokenHash: h, role: 'pne', ttlSec: 60 });
      const wins = { a: 0, b: 0 };
      for (const h of hashes) {
        // several consumers per pool, both pools at once
        const res = await Promise.all([
          ...Array.from({ length: 3 }, () => a!.consumeToken(h, 'pne').then((r) => ['a', r] as const)),
          ...Array.from({ length: 3 }, () => b!.consumeToken(h, 'pne').then((r) => ['b', r] as const)),
        ]);
        const won = res.filter(([, r]) => r.ok);
        expect(won).toHaveLength(1);
        wins[won[0]![0]]++;
        expect(res.filter(([, r]) => !r.ok).every(([, r]) => !r.ok && r.reason === 'used')).toBe(true);
      }
      expect(wins.a + wins.b).toBe(ROUNDS);
    });

    it('the row lock is per group: a held group makes its rotation BUSY (nothing written), others go on', async () => {
      const schema = fresh();
      const masterKey = randomBytes(32);
      const s = postgres(await open({ schema, masterKey, lockTimeoutMs: 1500 }));
      const a = await s.createGroup(group());
      const b = await s.createGroup(group());
      const other = await adminPool().connect();
      try {
        await other.query('BEGIN');
        await other.query(`SELECT 1 FROM ${schema}.service_groups WHERE sg_id = $1 FOR UPDATE`, [a.sgId]);
        // B does not wait for A's lock (it would time out: BUSY)
        expect((await s.rotateGroupKey(b.sgId, randomBytes(32), 'manual', KU)).epoch).toBe(1);
        const err = await s.rotateGroupKey(a.sgId, randomBytes(32), 'manual', KU).catch((e: unknown) => e);
        expect(err).toMatchObject({
          name: 'StoreError',
          code: 'BUSY',
          message: 'database is locked by another writer',
        });
        await other.query('ROLLBACK');
      } finally {
        other.release();
      }
      expect((await s.getGroup(a.sgId))?.epochHighWater).toBe(0);
      expect((await s.listAudit({ sgId: a.sgId })).entries).toEqual([]);
      expect((await s.rotateGroupKey(a.sgId, randomBytes(32), 'manual', KU)).epoch).toBe(1);
    });

    it('errors carry fixed messages, never SQL or values', async () => {
      const schema = fresh();
      const s = await open({ schema, masterKey: randomBytes(32) });
      const h = hashToken('dup');
      await s.createToken({ tokenHash: h, role: 'gw', ttlSec: 60 });
      const dup = await s.createToken({ tokenHash: h, role: 'gw', ttlSec: 60 }).catch((e: unknown) => e);
      expect(dup).toMatchObject({ name: 'StoreError', code: 'CONFLICT', message: 'row already exists' });
      expect(String((dup as Error).message)).not.toContain(h);
      const fk = await s
        .upsertRelayMark({
          sgId: randomUUID(),
          epoch: 1,
          sender: '0'.repeat(32),
          instance: '0'.repeat(16),
          counter: 1,
        })
        .catch((e: unknown) => e);
      expect(fk).toMatchObject({
        name: 'StoreError',
        code: 'NOT_FOUND',
        message: 'referenced row does not exist',
      });
    });

    it('an unreachable server is UNAVAILABLE, within the connect timeout', async () => {
      const t0 = Date.now();
      // a port nothing listens on (the server's own port + a reserved offset is not guaranteed: use port 1)
      const err = await openPostgresStore({
        url: 'postgres://postgres@127.0.0.1:1/cpns_test',
        masterKey: randomBytes(32),
        connectTimeoutMs: 1000,
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({
        name: 'StoreError',
        code: 'UNAVAILABLE',
        message: 'database is unavailable',
      });
      expect(Date.now() - t0).toBeLessThan(5000);
    });

    it('a connection killed by the server mid-rotation: UNAVAILABLE, nothing written, the pool reconnects', async () => {
      const schema = fresh();
      const s = postgres(
        await open({
          schema,
          masterKey: randomBytes(32),
          lockTimeoutMs: 20_000,
          connection: { application_name: schema },
        }),
      );
      const g = await s.createGroup(group());
      const holder = await adminPool().connect();
      try {
        // hold the group's row so the rotation is in flight (waiting on the lock) when its backend is killed
        await holder.query('BEGIN');
        await holder.query(`SELECT 1 FROM ${schema}.service_groups WHERE sg_id = $1 FOR UPDATE`, [g.sgId]);
        const rotation = s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU).catch((e: unknown) => e);
        let killed = 0;
        for (let i = 0; i < 200 && killed === 0; i++) {
          await new Promise((r) => setTimeout(r, 25));
          const r = await adminPool().query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND wait_event_type = 'Lock'`,
            [schema],
          );
          killed = r.rowCount ?? 0;
        }
        expect(killed).toBe(1);
        expect(await rotation).toMatchObject({
          name: 'StoreError',
          code: 'UNAVAILABLE',
          message: 'database is unavailable',
        });
        await holder.query('ROLLBACK');
      } finally {
        holder.release();
      }
      expect((await s.getGroup(g.sgId))?.epochHighWater).toBe(0);
      expect((await s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU)).epoch).toBe(1);
      expect((await s.listAudit({ sgId: g.sgId })).entries.map((e) => e.epoch)).toEqual([1]);
    });

    it('idle connections killed by the server (a restart, a failover): the next calls reconnect', async () => {
      const schema = fresh();
      const s = postgres(
        await open({ schema, masterKey: randomBytes(32), connection: { application_name: schema } }),
      );
      const g = await s.createGroup(group());
      await Promise.all(Array.from({ length: 5 }, () => s.listGroups())); // several pooled connections
      const r = await adminPool().query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
        [schema],
      );
      expect(r.rowCount).toBeGreaterThan(0);
      // pg_terminate_backend only signals: wait until those backends are gone, and let the pool see the closes.
      for (let i = 0; i < 100; i++) {
        const left = await adminPool().query('SELECT 1 FROM pg_stat_activity WHERE application_name = $1', [
          schema,
        ]);
        if (left.rowCount === 0) break;
        await new Promise((res) => setTimeout(res, 20));
      }
      await new Promise((res) => setTimeout(res, 50));
      expect((await s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU)).epoch).toBe(1);
      expect((await s.listGroups()).map((x) => x.sgId)).toEqual([g.sgId]);
    });
  });
}
