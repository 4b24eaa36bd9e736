/**
 * The SQLite backend's per-connection statement cache (`cacheStatements`, src/store/sqlite/db.ts): one compiled
 * statement per SQL text, bounded, and only sound while no store code changes a statement's mode or keeps one
 * busy — which this test also checks in the source, so a change that would make a cached statement behave
 * differently from a fresh one fails here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cacheStatements, STATEMENT_CACHE_MAX } from '../../src/store/sqlite/db.js';

const dir = fileURLToPath(new URL('../../src/store/sqlite/', import.meta.url));

describe('SQLite statement cache', () => {
  it('returns the same statement for the same SQL, and a working one after the bound is passed', () => {
    const db = new Database(':memory:');
    cacheStatements(db);
    db.exec('CREATE TABLE t (x INTEGER)');
    const a = db.prepare('INSERT INTO t (x) VALUES (?)');
    expect(db.prepare('INSERT INTO t (x) VALUES (?)')).toBe(a);
    a.run(1);
    for (let i = 0; i < STATEMENT_CACHE_MAX; i++) db.prepare(`SELECT ${i} AS v`).get();
    const b = db.prepare('INSERT INTO t (x) VALUES (?)');
    expect(b).not.toBe(a); // the cache started over
    b.run(2);
    expect(db.prepare('SELECT x FROM t ORDER BY x').all()).toEqual([{ x: 1 }, { x: 2 }]);
    db.close();
  });

  it('keeps working across a schema change (SQLite recompiles the cached statement)', () => {
    const db = new Database(':memory:');
    cacheStatements(db);
    db.exec('CREATE TABLE t (x INTEGER)');
    db.prepare('INSERT INTO t (x) VALUES (?)').run(1);
    db.exec('ALTER TABLE t ADD COLUMN y INTEGER DEFAULT 7');
    expect(db.prepare('SELECT * FROM t').all()).toEqual([{ x: 1, y: 7 }]);
    db.prepare('INSERT INTO t (x) VALUES (?)').run(2);
    expect(db.prepare('SELECT * FROM t').all()).toEqual([
      { x: 1, y: 7 },
      { x: 2, y: 7 },
    ]);
    db.close();
  });

  it('no store code changes a statement mode or iterates (a cached statement must behave as a fresh one)', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const src = readFileSync(join(dir, f), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      expect(src, f).not.toMatch(/(?<!db\.prepare)\.(pluck|raw|expand|safeIntegers|iterate|bind)\(/);
    }
  });
});
