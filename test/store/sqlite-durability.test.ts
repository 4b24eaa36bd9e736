/**
 * Which SQLite commits wait for an fsync (docs/store.md "What a crash can lose"): a key rotation and every other
 * state change commit with `synchronous = FULL`; only delivery bookkeeping and the pruning of superseded epochs
 * commit with NORMAL (`relaxedTx`, src/store/sqlite/db.ts), and the connection is back to FULL after each of
 * them, whether it committed or failed. A process killed right after such commits loses none of them.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';

const FULL = 2;
let dir: string;
let store: SqliteStore;
let masterKey: Buffer;
/** The synchronous level each write transaction committed with, in order ('NORMAL' / 'FULL' as set). */
let levels: string[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cpns-sync-'));
  masterKey = randomBytes(32);
  store = (await openSqliteStore({ path: join(dir, 'cpns.db'), masterKey })) as SqliteStore;
  const db = store.database;
  levels = [];
  const exec = db.exec.bind(db);
  db.exec = (sql: string) => {
    const m = /^PRAGMA synchronous = (\w+)$/.exec(sql);
    if (m) levels.push(m[1]!);
    return exec(sql);
  };
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const synchronous = () => store.database.pragma('synchronous', { simple: true });
const pne = () => `urn:cpns:pne:${randomUUID()}`;
const gw = () => `urn:cpns:gw:${randomUUID()}`;

async function groupAt(epochs: number): Promise<string> {
  const g = await store.createGroup({
    name: 'g',
    ownerId: pne(),
    joinPolicy: 'open',
    suite: 1,
    sourceAuth: false,
  });
  for (let e = 1; e <= epochs; e++) {
    await store.rotateGroupKey(g.sgId, randomBytes(32), e === 1 ? 'create' : 'manual', {
      audit: { actor: 'server', action: e === 1 ? 'key.create' : 'key.update' },
    });
  }
  return g.sgId;
}

describe('SQLite commit durability', () => {
  it('a key rotation commits with FULL; acks and pruning with NORMAL, then FULL again', async () => {
    const sgId = await groupAt(3);
    expect(levels).toEqual([]); // group creation and rotations: the connection's FULL, never relaxed
    expect(synchronous()).toBe(FULL);
    await store.recordDeliveries([{ sgId, epoch: 3, pneId: pne(), gwId: gw(), method: 'unicast' }]);
    await store.recordGatewayAcks([{ sgId, epoch: 3, gwId: gw() }]);
    await store.pruneKeys(sgId, 3);
    expect(levels).toEqual(['NORMAL', 'FULL', 'NORMAL', 'FULL', 'NORMAL', 'FULL']);
    expect(synchronous()).toBe(FULL);
    levels.length = 0;
    await store.rotateGroupKey(sgId, randomBytes(32), 'manual', {
      audit: { actor: 'server', action: 'key.update' },
    });
    expect(levels).toEqual([]);
    expect((await store.listKeyEpochs(sgId)).map((k) => k.epoch)).toEqual([3, 4]);
  });

  it('a failed bookkeeping transaction also leaves the connection at FULL', async () => {
    const sgId = await groupAt(1);
    await expect(
      store.recordDeliveries([{ sgId, epoch: 2, pneId: pne(), gwId: gw(), method: 'unicast' }]),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(levels).toEqual(['NORMAL', 'FULL']);
    expect(synchronous()).toBe(FULL);
  });

  it('a process killed right after relaxed commits loses none of them (only an OS crash could)', async () => {
    const sgId = await groupAt(3);
    const [p, g] = [pne(), gw()];
    const child = fileURLToPath(new URL('./fixtures/crash-after-bookkeeping.ts', import.meta.url));
    const signal = await new Promise<string | null>((resolve) => {
      const c = execFile(
        process.execPath,
        ['--import', 'tsx', child, join(dir, 'cpns.db'), sgId, p, g],
        { timeout: 20_000 },
        (err) => resolve((err as { signal?: string } | null)?.signal ?? null),
      );
      c.stdin?.end(masterKey.toString('hex')); // the key on stdin, never on the command line
    });
    expect(signal).toBe('SIGKILL'); // it died without closing its store
    const rows = store.database.prepare('SELECT pne_id, epoch FROM deliveries WHERE sg_id = ?').all(sgId) as {
      pne_id: string;
      epoch: number;
    }[];
    expect(rows).toEqual([{ pne_id: p, epoch: 3 }]);
    expect(store.database.prepare('SELECT gw_id FROM gw_deliveries WHERE sg_id = ?').all(sgId)).toEqual([
      { gw_id: g },
    ]);
    expect((await store.listKeyEpochs(sgId)).map((k) => k.epoch)).toEqual([3]);
  });
});
