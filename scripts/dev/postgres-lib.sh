# shellcheck shell=bash
# A throwaway PostgreSQL on 127.0.0.1, shared by .ci/services/postgres.sh (CI) and scripts/dev/postgres.sh (a
# developer). Sourced. Debian's postgresql is installed when missing; initdb and postgres run as the postgres user
# when we are root (they refuse root); trust auth on 127.0.0.1 only; a free loopback port; database cpns_test.

pg_bindir() {
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

pg_ensure_installed() {
  pg_bindir >/dev/null && return 0
  local sudo=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq || true
  $sudo apt-get install -y -qq postgresql >/dev/null
}

# pg_start DIR: a server with its data in DIR (which must exist). Sets PG_PORT, PG_PID (the postmaster's own pid,
# not runuser's) and PG_URL; writes DIR/port and DIR/pid.
pg_start() {
  local dir="$1" bin i launcher
  pg_ensure_installed
  bin="$(pg_bindir)"
  local as_pg=()
  if [ "$(id -u)" = "0" ]; then
    chown postgres: "$dir"
    as_pg=(runuser -u postgres --)
  fi
  "${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    return 1
  }
  # trust on 127.0.0.1 only: no unix-socket or other host lines
  echo 'host all all 127.0.0.1/32 trust' | "${as_pg[@]}" tee "$dir/data/pg_hba.conf" >/dev/null
  PG_PORT="$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
  nohup "${as_pg[@]}" "$bin/postgres" -D "$dir/data" -k "$dir" -h 127.0.0.1 -p "$PG_PORT" \
    -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    >"$dir/postgres.log" 2>&1 &
  launcher=$!
  for i in $(seq 1 100); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then break; fi
    if ! kill -0 "$launcher" 2>/dev/null || [ "$i" = 100 ]; then
      cat "$dir/postgres.log" >&2
      return 1
    fi
    sleep 0.2
  done
  PG_PID="$(head -n 1 "$dir/data/postmaster.pid")"
  echo "$PG_PORT" >"$dir/port"
  echo "$PG_PID" >"$dir/pid"
  "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c 'CREATE DATABASE cpns_test' >/dev/null
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/cpns_test"
}

# pg_stop DIR: stops the postmaster of DIR (waiting for it) and removes DIR.
pg_stop() {
  local dir="$1" pid i
  if [ -f "$dir/pid" ]; then
    pid="$(cat "$dir/pid")"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -rf "$dir"
}
