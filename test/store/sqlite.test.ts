import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, openSqliteStore, SqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/store.js';
import { runStoreSuite, type StoreHarness } from './suite.js';

function sqlite(store: Store): SqliteStore {
  if (!(store instanceof SqliteStore)) throw new Error('not a SqliteStore');
  return store;
}

async function raw(store: Store, sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  const stmt = sqlite(store).database.prepare(sql);
  if (stmt.reader) return stmt.all(...params) as Record<string, unknown>[];
  stmt.run(...params);
  return [];
}

/** A TEMP trigger lives on this connection only and goes with it (or with the undo). */
async function failAuditInserts(store: Store): Promise<() => Promise<void>> {
  const db = sqlite(store).database;
  db.exec(`CREATE TEMP TRIGGER test_fail_audit BEFORE INSERT ON main.audit_log
           BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END`);
  return async () => {
    db.exec('DROP TRIGGER IF EXISTS temp.test_fail_audit');
  };
}

async function fileHarness(): Promise<StoreHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'cpns-store-'));
  const path = join(dir, 'cpns.db');
  const masterKey = randomBytes(32);
  return {
    open: (o) => openSqliteStore({ path, masterKey: o?.masterKey ?? masterKey }),
    raw,
    failAuditInserts,
    // what is on disk: the main file and the write-ahead log (committed pages may live only there)
    bytes: async () => Buffer.concat([path, `${path}-wal`].filter(existsSync).map((p) => readFileSync(p))),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function memoryHarness(): Promise<StoreHarness> {
  const masterKey = randomBytes(32);
  return {
    open: (o) => openSqliteStore({ path: ':memory:', masterKey: o?.masterKey ?? masterKey }),
    raw,
    failAuditInserts,
    bytes: async (store) => sqlite(store).database.serialize(),
    cleanup: async () => {},
  };
}

runStoreSuite('sqlite file', fileHarness, { persistent: true, multiConnection: true });
runStoreSuite('sqlite :memory:', memoryHarness, { persistent: false, multiConnection: false });

describe('SQLite specifics', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'cpns-store-'));
    dirs.push(d);
    return join(d, 'cpns.db');
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('WAL, foreign keys, synchronous FULL, busy timeout, file mode 0600', async () => {
    const path = tmp();
    const s = await openSqliteStore({ path, masterKey: randomBytes(32), busyTimeoutMs: 1234 });
    const db = s.database;
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
    if (process.platform !== 'win32') expect(statSync(path).mode & 0o777).toBe(0o600);
    await s.close();
  });

  it('reopening applies only the new migrations', async () => {
    const path = tmp();
    const masterKey = randomBytes(32);
    const s1 = await openSqliteStore({ path, masterKey });
    expect(s1.appliedMigrations).toEqual(MIGRATIONS.map((m) => m.version));
    await s1.createGroup({ name: 'g', ownerId: 'operator', joinPolicy: 'open', suite: 1, sourceAuth: false });
    await s1.close();

    const s2 = await openSqliteStore({ path, masterKey });
    expect(s2.appliedMigrations).toEqual([]);
    expect(s2.schemaVersion).toBe(MIGRATIONS.length);
    await s2.close();

    const n = MIGRATIONS.length + 1;
    const m2 = { version: n, name: 'add_note', sql: 'ALTER TABLE service_groups ADD COLUMN note TEXT;' };
    const s3 = await openSqliteStore({ path, masterKey, migrations: [...MIGRATIONS, m2] });
    expect(s3.appliedMigrations).toEqual([n]);
    expect(s3.schemaVersion).toBe(n);
    expect((await s3.listGroups()).map((g) => g.name)).toEqual(['g']);
    await s3.close();

    const s4 = await openSqliteStore({ path, masterKey, migrations: [...MIGRATIONS, m2] });
    expect(s4.appliedMigrations).toEqual([]);
    const cols = (s4.database.pragma('table_info(service_groups)') as { name: string }[]).map((c) => c.name);
    expect(cols).toContain('note');
    await s4.close();

    // the old code (not knowing the newest migration) refuses the newer database
    await expect(openSqliteStore({ path, masterKey })).rejects.toMatchObject({ code: 'SCHEMA_TOO_NEW' });
  });

  it('a failing migration leaves the database at the previous version', async () => {
    const path = tmp();
    const masterKey = randomBytes(32);
    const bad = {
      version: MIGRATIONS.length + 1,
      name: 'broken',
      sql: 'CREATE TABLE ok_table (x INTEGER); THIS IS NOT SQL;',
    };
    await expect(openSqliteStore({ path, masterKey, migrations: [...MIGRATIONS, bad] })).rejects.toThrow();
    const s = await openSqliteStore({ path, masterKey });
    expect(s.schemaVersion).toBe(MIGRATIONS.length);
    expect(
      s.database.prepare("SELECT name FROM sqlite_master WHERE name = 'ok_table'").get(),
    ).toBeUndefined();
    await s.close();
  });

  it('four processes rotating one group on one file never allocate the same epoch', async () => {
    const path = tmp();
    const masterKey = randomBytes(32);
    const s = await openSqliteStore({ path, masterKey });
    const g = await s.createGroup({
      name: 'g',
      ownerId: 'operator',
      joinPolicy: 'open',
      suite: 1,
      sourceAuth: false,
    });
    const worker = fileURLToPath(new URL('./fixtures/rotate-worker.ts', import.meta.url));
    const startAt = String(Date.now() + 1500);
    const run = () =>
      new Promise<{ epochs: number[]; late: number }>((resolve, reject) => {
        execFile(
          process.execPath,
          ['--import', 'tsx', worker, path, masterKey.toString('hex'), g.sgId, '25', startAt],
          { timeout: 20_000 },
          (err, stdout) =>
            err ? reject(err) : resolve(JSON.parse(stdout) as { epochs: number[]; late: number }),
        );
      });
    const out = await Promise.all([run(), run(), run(), run()]);
    const results = out.map((o) => o.epochs);
    const interleaved = results.some((r) => r[r.length - 1]! - r[0]! >= r.length);
    // the writers really contended (unless the machine was too slow to start them together)
    if (out.every((o) => o.late < 50)) expect(interleaved).toBe(true);
    for (const r of results) expect(r).toEqual([...r].sort((a, b) => a - b)); // monotonic per process
    expect(results.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect((await s.getCurrentKey(g.sgId))?.epoch).toBe(100);
    expect((await s.listKeyEpochs(g.sgId)).length).toBe(100);
    await s.close();
  });

  it('a file that is not a database is STORE_CORRUPT', async () => {
    const path = tmp();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, randomBytes(4096));
    await expect(openSqliteStore({ path, masterKey: randomBytes(32) })).rejects.toMatchObject({
      code: 'STORE_CORRUPT',
    });
  });
});
