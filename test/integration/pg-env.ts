/**
 * What the integration tests on PostgreSQL (and a private NATS cluster) need, in one place: the database URL
 * (CPNS_TEST_PG_URL: scripts/dev/postgres.sh up; in CI .ci/services/postgres.sh), the reason they skip without it,
 * the CI rule (CI=true: a missing service is a failing test, never a silent skip), and dropping the test's schemas.
 */
import pg from 'pg';
import { expect, it } from 'vitest';
import { HAS_NATS_SERVER } from '../cluster/env.js';

export const PG_URL = process.env.CPNS_TEST_PG_URL;
export const IN_CI = process.env.CI === 'true';

/** Why a test needing PostgreSQL (and, with `nats`, nats-server) cannot run here; undefined when it can. */
export function skipReason(o: { nats: boolean }): string | undefined {
  if (!PG_URL) return 'CPNS_TEST_PG_URL is not set (scripts/dev/postgres.sh up)';
  if (o.nats && !HAS_NATS_SERVER) return 'nats-server is not installed';
  return undefined;
}

/** With CI=true, a missing service is a failing test of its own. */
export function failInCiIfSkipped(skip: string | undefined): void {
  if (IN_CI && skip) {
    it('PostgreSQL and nats-server are available in CI (.ci/services)', () => {
      expect.fail(skip);
    });
  }
}

/** Drops the test's schemas (after its servers closed). Nothing without a database. */
export async function dropSchemas(schemas: readonly string[]): Promise<void> {
  if (!PG_URL || schemas.length === 0) return;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  } finally {
    await admin.end();
  }
}
