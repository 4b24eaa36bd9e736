# shellcheck shell=bash
# Throwaway PostgreSQL for the store tests (test/store/postgres.test.ts). SOURCED by .ci/run (set -euo pipefail,
# CLEANUP array + EXIT trap defined there), not executed. Installs Debian's postgresql when missing, runs initdb
# in a temp dir (as the postgres user when we are root: initdb and postgres refuse root), trust auth on
# 127.0.0.1 only, starts the server on a free loopback port, creates cpns_test and exports CPNS_TEST_PG_URL.
# The developer twin is scripts/dev/postgres.sh.

cpns_pg_bindir() {
  local d
  for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$d/postgres" ] && [ -x "$d/initdb" ]; then
      echo "$d"
      return 0
    fi
  done
  if command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v postgres)"
    return 0
  fi
  return 1
}

cpns_pg_start() {
  local bindir dir port as_pg pid i
  if ! bindir="$(cpns_pg_bindir)"; then
    local sudo=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq || true
    $sudo apt-get install -y -qq postgresql >/dev/null
    bindir="$(cpns_pg_bindir)"
  fi
  dir="$(mktemp -d "${TMPDIR:-/tmp}/cpns-pg.XXXXXX")"
  as_pg=()
  if [ "$(id -u)" = "0" ]; then
    chown postgres: "$dir"
    as_pg=(runuser -u postgres --)
  fi
  "${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    return 1
  }
  # trust on 127.0.0.1 only: no unix-socket or other host lines
  echo 'host all all 127.0.0.1/32 trust' | "${as_pg[@]}" tee "$dir/data/pg_hba.conf" >/dev/null
  port="$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
  "${as_pg[@]}" "$bindir/postgres" -D "$dir/data" -k "$dir" -h 127.0.0.1 -p "$port" \
    -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    >"$dir/postgres.log" 2>&1 &
  pid=$!
  CLEANUP+=("kill $pid; rm -rf $dir")
  for i in $(seq 1 100); do
    if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then break; fi
    if ! kill -0 "$pid" 2>/dev/null || [ "$i" = 100 ]; then
      cat "$dir/postgres.log" >&2
      return 1
    fi
    sleep 0.2
  done
  # stop the postmaster itself (not runuser), and wait for it before removing its directory
  pid="$(head -n 1 "$dir/data/postmaster.pid")"
  CLEANUP[${#CLEANUP[@]}-1]="kill $pid; for _ in \$(seq 1 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done; rm -rf $dir"
  "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'CREATE DATABASE cpns_test' >/dev/null
  export CPNS_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/cpns_test"
  echo "postgres: $CPNS_TEST_PG_URL (pid $pid, $dir)"
}

cpns_pg_start
