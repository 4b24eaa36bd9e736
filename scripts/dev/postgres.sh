#!/usr/bin/env bash
# A throwaway PostgreSQL for the store tests, for a developer:
#   scripts/dev/postgres.sh up     # starts it, prints the `export CPNS_TEST_PG_URL=...` line
#   scripts/dev/postgres.sh down   # stops it and removes its data
# The steps are scripts/dev/postgres-lib.sh (the same as CI's .ci/services/postgres.sh). State (pid, port, data)
# lives under $CPNS_PG_DEV_DIR (default ${TMPDIR:-/tmp}/cpns-pg-dev).
set -euo pipefail
# shellcheck source=./postgres-lib.sh
source "$(dirname "$0")/postgres-lib.sh"
STATE="${CPNS_PG_DEV_DIR:-${TMPDIR:-/tmp}/cpns-pg-dev}"

case "${1:-}" in
  up)
    if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
      echo "export CPNS_TEST_PG_URL=postgres://postgres@127.0.0.1:$(cat "$STATE/port")/cpns_test"
      exit 0
    fi
    rm -rf "$STATE"
    mkdir -p "$STATE"
    pg_start "$STATE"
    echo "export CPNS_TEST_PG_URL=$PG_URL"
    ;;
  down) pg_stop "$STATE" ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
