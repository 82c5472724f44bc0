#!/usr/bin/env bash
# Sourced by the browser runners: starts `dormwatt demo` on a free port with
# the simulator on a free block of ports, on SQLite (a temporary file) or
# PostgreSQL (a fresh dw_test_e2e_* database on $DORMWATT_TEST_PG_URL), waits
# for /healthz, and stops it (and drops the database) on exit.
#
#   start_demo sqlite|postgres   sets E2E_BASE, E2E_DB_URL, E2E_LOG, server_pid
#
# Needs `bin` (the dormwatt binary) and `here` (the e2e directory) set.

e2e_tmp="$(mktemp -d -t dormwatt-e2e.XXXXXX)"
server_pid=""
e2e_pg_db=""

# free_port, free_block
# shellcheck source=../../scripts/lib/ports.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/ports.sh"

stop_demo() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    # Bounded wait for a graceful stop, then force.
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
  mkdir -p "$here/artifacts"
  cp "$e2e_tmp/server.log" "$here/artifacts/server${E2E_LOG_SUFFIX:-}.log" 2>/dev/null || true
  if [ -n "$e2e_pg_db" ]; then
    psql "$DORMWATT_TEST_PG_URL" -qc "drop database if exists \"$e2e_pg_db\"" >/dev/null 2>&1 || true
    e2e_pg_db=""
  fi
}

cleanup_demo() {
  stop_demo
  rm -rf "$e2e_tmp"
}

start_demo() {
  local kind="$1"
  local port sim_port
  port="$(free_port)"
  sim_port="$(free_block)"
  E2E_BASE="http://127.0.0.1:$port"
  case "$kind" in
    sqlite) E2E_DB_URL="sqlite://$e2e_tmp/demo.db" ;;
    postgres)
      if [ -z "${DORMWATT_TEST_PG_URL:-}" ]; then
        echo "DORMWATT_TEST_PG_URL is not set: the PostgreSQL browser run needs it" >&2
        return 1
      fi
      e2e_pg_db="dw_test_e2e_$$_$RANDOM"
      psql "$DORMWATT_TEST_PG_URL" -qc "create database \"$e2e_pg_db\"" >/dev/null
      E2E_DB_URL="${DORMWATT_TEST_PG_URL%/*}/$e2e_pg_db"
      ;;
    *) echo "unknown database kind $kind (sqlite|postgres)" >&2; return 2 ;;
  esac
  E2E_LOG="$e2e_tmp/server.log"
  DORMWATT_PUBLIC_URL="$E2E_BASE" DORMWATT_SIMULATOR__BASE_PORT="$sim_port" "$bin" \
    --database-url "$E2E_DB_URL" --listen "127.0.0.1:$port" \
    demo --history-days "${E2E_HISTORY_DAYS:-60}" >"$E2E_LOG" 2>&1 &
  server_pid=$!
  # Seeding the campus and its history takes a little while; bounded.
  local i
  for i in $(seq 1 300); do
    if curl -fsS "$E2E_BASE/healthz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "dormwatt demo exited early:" >&2; cat "$E2E_LOG" >&2; return 1
    fi
    if [ "$i" = 300 ]; then echo "dormwatt demo did not come up in 150 s" >&2; tail -50 "$E2E_LOG" >&2; return 1; fi
    sleep 0.5
  done
  export E2E_BASE E2E_DB_URL E2E_LOG
}
