#!/usr/bin/env bash
# A throwaway PostgreSQL for the store tests, for a developer:
#   scripts/dev/postgres.sh up     # starts it, prints the `export CPNS_TEST_PG_URL=...` line
#   scripts/dev/postgres.sh down   # stops it and removes its data
# Same steps as .ci/services/postgres.sh (CI): Debian's postgresql (installed when missing), initdb in a temp dir
# (as the postgres user when run as root), trust auth on 127.0.0.1 only, a free loopback port, database cpns_test.
# State (pid, port, data) lives under $CPNS_PG_DEV_DIR (default ${TMPDIR:-/tmp}/cpns-pg-dev).
set -euo pipefail
STATE="${CPNS_PG_DEV_DIR:-${TMPDIR:-/tmp}/cpns-pg-dev}"

bindir() {
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

up() {
  if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
    echo "export CPNS_TEST_PG_URL=postgres://postgres@127.0.0.1:$(cat "$STATE/port")/cpns_test"
    return 0
  fi
  rm -rf "$STATE"
  local bin port pid i
  if ! bin="$(bindir)"; then
    local sudo=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    bin="$(bindir)"
  fi
  mkdir -p "$STATE"
  local as_pg=()
  if [ "$(id -u)" = "0" ]; then
    chown postgres: "$STATE"
    as_pg=(runuser -u postgres --)
  fi
  "${as_pg[@]}" "$bin/initdb" -D "$STATE/data" -U postgres -A trust -E UTF8 --no-sync >"$STATE/initdb.log" 2>&1 || {
    cat "$STATE/initdb.log" >&2
    exit 1
  }
  echo 'host all all 127.0.0.1/32 trust' | "${as_pg[@]}" tee "$STATE/data/pg_hba.conf" >/dev/null
  port="$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
  nohup "${as_pg[@]}" "$bin/postgres" -D "$STATE/data" -k "$STATE" -h 127.0.0.1 -p "$port" \
    -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    >"$STATE/postgres.log" 2>&1 &
  pid=$!
  echo "$port" >"$STATE/port"
  for i in $(seq 1 100); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then break; fi
    if ! kill -0 "$pid" 2>/dev/null || [ "$i" = 100 ]; then
      cat "$STATE/postgres.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  # the postmaster's own pid (not runuser's): what `down` stops
  head -n 1 "$STATE/data/postmaster.pid" >"$STATE/pid"
  "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'CREATE DATABASE cpns_test' >/dev/null
  echo "export CPNS_TEST_PG_URL=postgres://postgres@127.0.0.1:$port/cpns_test"
}

down() {
  if [ -f "$STATE/pid" ]; then
    local pid i
    pid="$(cat "$STATE/pid")"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
  fi
  rm -rf "$STATE"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
