/**
 * The store family of `CodedError` (docs/errors.md): errors that are not validation errors of caller input
 * (those are `CpnsError(INVALID_ARGUMENT, message, field)` from src/core/errors.ts). Every cause has a stable
 * `code`; messages are fixed texts: they never carry key material, tokens or caller-supplied bytes.
 */
import { CodedError } from '../core/errors.js';

export const StoreErrorCode = {
  /** The referenced row (identity, gateway, PNE, Service Group, key epoch, secret...) does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** The write conflicts with existing state (duplicate id, duplicate certificate serial, revoked identity...). */
  CONFLICT: 'CONFLICT',
  /** The Service Group id belonged to a deleted group: ids (and so their epochs) are never reused. */
  GROUP_RETIRED: 'GROUP_RETIRED',
  /** The group's epoch counter reached 2^32 - 1 (the wire header's epoch field): delete and recreate the group. */
  EPOCH_EXHAUSTED: 'EPOCH_EXHAUSTED',
  /** The master key does not open this database (it was created under another master key). */
  MASTER_KEY_MISMATCH: 'MASTER_KEY_MISMATCH',
  /** A master key (file or CPNS_MASTER_KEY) is malformed: it must be exactly 64 hex digits (32 bytes). */
  MASTER_KEY_INVALID: 'MASTER_KEY_INVALID',
  /** The master key file is readable or writable by group/other: refused (chmod 600 it). */
  MASTER_KEY_PERMISSIONS: 'MASTER_KEY_PERMISSIONS',
  /** A row failed authentication under the right master key: tampered, swapped between rows, or corrupted. */
  STORE_CORRUPT: 'STORE_CORRUPT',
  /** The database carries a migration newer than this code knows: refuse to run an old binary on it. */
  SCHEMA_TOO_NEW: 'SCHEMA_TOO_NEW',
  /** An applied migration differs from the one shipped with this code (migrations are never edited). */
  MIGRATION_MISMATCH: 'MIGRATION_MISMATCH',
  /** The database stayed locked by another writer longer than the busy timeout. */
  BUSY: 'BUSY',
  /**
   * The database cannot be reached: connection refused or lost, connect timeout, server shutting down or out of
   * connections (PostgreSQL backend). Transient: the caller may retry later; nothing of the failed call committed
   * unless the connection broke during COMMIT itself.
   */
  UNAVAILABLE: 'UNAVAILABLE',
  /** The store was used after close(). */
  CLOSED: 'CLOSED',
} as const;

export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

export class StoreError extends CodedError<StoreErrorCode> {
  readonly family = 'store';

  constructor(code: StoreErrorCode, message: string, field?: string, options?: { cause?: unknown }) {
    super(code, message, field, options);
    this.name = 'StoreError';
  }
}

export function isStoreError(e: unknown, code?: StoreErrorCode): e is StoreError {
  return e instanceof StoreError && (code === undefined || e.code === code);
}
