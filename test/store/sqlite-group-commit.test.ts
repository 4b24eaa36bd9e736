/**
 * Group commit of key rotations (src/store/sqlite/group-commit.ts, docs/store.md "Group commit of key
 * rotations"): rotations asked for in one turn of the event loop share one durable commit, yet each caller sees
 * what a commit of its own would give. Commits are counted on disk, as commit frames in the WAL file.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CpnsError } from '../../src/core/errors.js';
import { StoreError } from '../../src/store/errors.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';

let dir: string;
let path: string;
let masterKey: Buffer;
let store: SqliteStore;

async function open(groupCommitMax?: number): Promise<SqliteStore> {
  const s = (await openSqliteStore({
    path,
    masterKey,
    ...(groupCommitMax === undefined ? {} : { groupCommitMax }),
  })) as SqliteStore;
  // No checkpoint moves the WAL's frames away while a test counts them.
  s.database.pragma('wal_autocheckpoint = 0');
  return s;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cpns-gc-'));
  path = join(dir, 'cpns.db');
  masterKey = randomBytes(32);
  store = await open();
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Commits in the WAL file: frames whose header names the database size after a commit (non-zero), counted
 * while the frame's salts match the WAL header's (https://www.sqlite.org/fileformat.html#the_write_ahead_log).
 */
function walCommits(): number {
  const wal = readFileSync(`${path}-wal`);
  if (wal.length < 32) return 0;
  const pageSize = wal.readUInt32BE(8);
  const salt1 = wal.readUInt32BE(16);
  const salt2 = wal.readUInt32BE(20);
  let n = 0;
  for (let off = 32; off + 24 + pageSize <= wal.length; off += 24 + pageSize) {
    if (wal.readUInt32BE(off + 8) !== salt1 || wal.readUInt32BE(off + 12) !== salt2) break;
    if (wal.readUInt32BE(off + 4) !== 0) n++;
  }
  return n;
}

async function groups(n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const g = await store.createGroup({
      name: `g${i}`,
      ownerId: `urn:cpns:pne:${randomUUID()}`,
      joinPolicy: 'open',
      suite: 1,
      sourceAuth: false,
    });
    out.push(g.sgId);
  }
  return out;
}

const rotate = (s: SqliteStore, sgId: string) =>
  s.rotateGroupKey(sgId, randomBytes(32), 'manual', { audit: { actor: 'server', action: 'key.update' } });

/** Rotations asked for in one turn of the loop; returns the commits they made. */
async function commitsOf(s: SqliteStore, sgIds: readonly string[]): Promise<number> {
  const before = walCommits();
  await Promise.all(sgIds.map((id) => rotate(s, id)));
  return walCommits() - before;
}

describe('SQLite group commit of key rotations', () => {
  it('rotations of several SGs asked in one turn share one commit; each caller gets its own epoch', async () => {
    const ids = await groups(5);
    const before = walCommits();
    const metas = await Promise.all(ids.map((id) => rotate(store, id)));
    expect(walCommits() - before).toBe(1);
    expect(metas.map((m) => [m.sgId, m.epoch])).toEqual(ids.map((id) => [id, 1]));
    // Rotations asked one after the other, each awaited, commit one by one as before.
    const b2 = walCommits();
    for (const id of ids) await rotate(store, id);
    expect(walCommits() - b2).toBe(5);
  });

  it('a caller learns of its rotation only once it is committed: another connection sees the key', async () => {
    const [id] = await groups(1);
    const other = new Database(path, { readonly: true });
    try {
      const seen = await Promise.all(
        [0, 1, 2].map(async () => {
          const m = await rotate(store, id!);
          return (
            other
              .prepare('SELECT COUNT(*) AS n FROM group_keys WHERE sg_id = ? AND epoch = ?')
              .get(id, m.epoch) as {
              n: number;
            }
          ).n;
        }),
      );
      expect(seen).toEqual([1, 1, 1]);
    } finally {
      other.close();
    }
    // Two rotations of one SG in a batch allocate epochs in the order they were asked.
    expect((await store.listKeyEpochs(id!)).map((k) => k.epoch)).toEqual([1, 2, 3]);
  });

  it('groupCommitMax bounds a batch: at the limit one commit, one past it two', async () => {
    await store.close();
    store = await open(2);
    const ids = await groups(3);
    expect(await commitsOf(store, ids.slice(0, 2))).toBe(1);
    expect(await commitsOf(store, ids)).toBe(2);
    await store.close();
    store = await open(1);
    expect(await commitsOf(store, ids)).toBe(3);
  });

  it('a rotation that fails after writing takes back only its own rows and rejects only its caller', async () => {
    const ids = await groups(3);
    const bad = ids[1]!;
    const db = store.database;
    db.prepare(
      `CREATE TEMP TRIGGER test_fail_one BEFORE INSERT ON main.audit_log WHEN NEW.sg_id = '${bad}'
       BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END`,
    ).run();
    const before = walCommits();
    const results = await Promise.allSettled([...ids, randomUUID()].map((id) => rotate(store, id)));
    expect(walCommits() - before).toBe(1);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected']);
    expect((results[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'NOT_FOUND' });
    // The failed SG's epoch allocation and key row went back with its savepoint: its next epoch is 1.
    const hwm = (id: string) =>
      (db.prepare('SELECT epoch_hwm AS e FROM service_groups WHERE sg_id = ?').get(id) as { e: number }).e;
    expect(ids.map(hwm)).toEqual([1, 0, 1]);
    expect(await store.listKeyEpochs(bad)).toEqual([]);
    db.exec('DROP TRIGGER temp.test_fail_one');
    expect((await rotate(store, bad)).epoch).toBe(1);
  });

  it('close() commits the rotations already asked for; a rotation asked after close is refused', async () => {
    const ids = await groups(2);
    const pending = ids.map((id) => rotate(store, id));
    await store.close();
    expect((await Promise.all(pending)).map((m) => m.epoch)).toEqual([1, 1]);
    await expect(rotate(store, ids[0]!)).rejects.toBeInstanceOf(StoreError);
    await expect(rotate(store, ids[0]!)).rejects.toMatchObject({ code: 'CLOSED' });
    store = await open();
    for (const id of ids) expect((await store.getCurrentKey(id))?.epoch).toBe(1);
  });

  it('groupCommitMax outside 1..10000 is refused at open', async () => {
    for (const bad of [0, -1, 1.5, 10_001, Number.NaN]) {
      await expect(open(bad)).rejects.toBeInstanceOf(CpnsError);
      await expect(open(bad)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'groupCommitMax' });
    }
    const s = await open(10_000);
    await s.close();
  });
});
