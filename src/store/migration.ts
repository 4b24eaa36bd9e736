/**
 * What the two backends' migration runners share (docs/store.md "Migrations"): a migration, its checksum, the
 * numbering rule, and the check of what a database has applied against what this code ships. Each backend runs
 * them its own way (sqlite/migrations.ts: BEGIN IMMEDIATE; postgres/migrations.ts: under the schema's advisory lock).
 */
import { createHash } from 'node:crypto';
import { StoreError } from './errors.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export interface MigrationResult {
  /** Versions applied by this call, in order. */
  readonly applied: number[];
  readonly version: number;
}

/** A row of schema_migrations, as far as the check needs it. */
export interface AppliedMigration {
  readonly version: number;
  readonly checksum: string;
}

export function checksum(m: Migration): string {
  return createHash('sha256').update(m.sql).digest('hex');
}

/** Migrations are numbered 1..n without gaps (a programming error otherwise, not a store condition). */
export function checkNumbering(migrations: readonly Migration[]): void {
  for (let i = 0; i < migrations.length; i++) {
    if (migrations[i]?.version !== i + 1) throw new Error('migrations must be numbered 1..n without gaps');
  }
}

/** Every applied migration must be one this code ships, unchanged: SCHEMA_TOO_NEW, MIGRATION_MISMATCH. */
export function verifyApplied(migrations: readonly Migration[], have: readonly AppliedMigration[]): void {
  for (const r of have) {
    const m = migrations[r.version - 1];
    if (m === undefined)
      throw new StoreError(
        'SCHEMA_TOO_NEW',
        'database schema is newer than this software',
        'schema_migrations',
      );
    if (checksum(m) !== r.checksum)
      throw new StoreError(
        'MIGRATION_MISMATCH',
        'an applied migration differs from the shipped one',
        'schema_migrations',
      );
  }
}
