# shellcheck shell=bash
# Throwaway PostgreSQL for the store and cluster tests. SOURCED by .ci/run (set -euo pipefail, CLEANUP array +
# EXIT trap defined there), not executed. The steps are scripts/dev/postgres-lib.sh (shared with the developer's
# scripts/dev/postgres.sh); exports CPNS_TEST_PG_URL.
# shellcheck source=../../scripts/dev/postgres-lib.sh
source scripts/dev/postgres-lib.sh
CPNS_PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cpns-pg.XXXXXX")"
CLEANUP+=("source scripts/dev/postgres-lib.sh; pg_stop '$CPNS_PG_DIR'")
pg_start "$CPNS_PG_DIR"
export CPNS_TEST_PG_URL="$PG_URL"
echo "postgres: $CPNS_TEST_PG_URL (pid $PG_PID, $CPNS_PG_DIR)"
