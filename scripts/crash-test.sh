#!/usr/bin/env bash
# Crash loops with real processes (issue 9; docs/RELIABILITY.md).
#
#   scripts/crash-test.sh --cycles N --database sqlite|postgres
#                         [--seconds-per-cycle S] [--binary PATH] [--pg-terminate K]
#                         [--lease-ms MS] [--drain-timeout S] [--seed N] [--keep]
#
# Starts `dormwatt simulate` and `dormwatt serve` (loopback ports, a temp
# dir; SQLite file there, or a fresh dw_crash_* database on PostgreSQL that is
# dropped at the end), drives concurrent purchases through the payment
# sandbox, SIGKILLs serve at random moments and restarts it, then checks
# check-ledger, lost/doubled orders and every meter against the simulator.
# Progress on stderr; one JSON summary line last on stdout; non-zero exit
# when anything was lost, doubled or violated. `--help` lists every option.
#
# PostgreSQL: $DORMWATT_TEST_PG_URL or postgres://postgres@127.0.0.1:5432/postgres
# (trust auth), reached with psql.
set -euo pipefail

# How `serve` is opted into the built-in payment sandbox: environment
# assignments (space-separated) given to every dormwatt command. Adjust here
# when serve's opt-in changes.
SANDBOX_OPT_IN="DORMWATT_PAYMENT__PROVIDER=sandbox"

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
# Default binary: $DORMWATT_BIN, else the newer of the release and debug
# builds (as scripts/interop-dlt645.sh), so a stale release binary does not
# shadow a fresh debug build.
target="${CARGO_TARGET_DIR:-$root/target}"
binary="${DORMWATT_BIN:-}"
if [ -z "$binary" ]; then
    binary="$target/debug/dormwatt"
    if [ -x "$target/release/dormwatt" ] && { [ ! -x "$binary" ] || [ "$target/release/dormwatt" -nt "$binary" ]; }; then
        binary="$target/release/dormwatt"
    fi
fi
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --binary=*) binary="${1#--binary=}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ ! -x "$binary" ]; then
    echo "crash-test: no dormwatt binary at $binary (cargo build [--release] -p dormwatt, or --binary PATH)" >&2
    exit 2
fi
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"
command -v python3 >/dev/null || { echo "crash-test: python3 is needed" >&2; exit 2; }
# exec: the driver receives the signals and its handlers stop every process it started.
exec python3 "$here/crash_test.py" --binary "$binary" --sandbox-env "$SANDBOX_OPT_IN" "${args[@]}"
