/**
 * Which SQLite commits wait for an fsync (docs/store.md "What a crash can lose"): a key rotation and every other
 * state change commit with `synchronous = FULL`; only delivery bookkeeping and the pruning of superseded epochs
 * commit with NORMAL (`relaxedTx`, src/store/sqlite/db.ts), and the connection is back to FULL after each of
 * them, whether it committed or failed.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';

const FULL = 2;
let dir: string;
let store: SqliteStore;
/** The synchronous level each write transaction committed with, in order ('NORMAL' / 'FULL' as set). */
let levels: string[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cpns-sync-'));
  store = (await openSqliteStore({ path: join(dir, 'cpns.db'), masterKey: randomBytes(32) })) as SqliteStore;
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
});
