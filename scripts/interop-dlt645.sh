#!/usr/bin/env bash
# Interoperability check between our DL/T 645 codec and the PyPI package
# dlt645 3.2.0 (an independent client + meter simulator).
#
#   (b) *its* simulator, read over TCP by *our* codec
#       (crates/dlt645/examples/read_tcp.rs): values and reply bytes must
#       match protocol-notes §5 V02 / V04b exactly.
#   (a) *its* client reads energy and voltage from *our* simulator
#       (`dormwatt simulate`), cross-checked against our codec reading the
#       same meter. Prints a SKIP line if `dormwatt simulate` is not usable.
#
# Usage: bash scripts/interop-dlt645.sh
# Environment:
#   DORMWATT_BIN      dormwatt binary for part (a); default: the newer of
#                     target/release/dormwatt and target/debug/dormwatt (CI builds the
#                     debug one with `cargo test --workspace`; run `cargo build` first by hand)
#   DORMWATT_SIM_ARGS arguments for `dormwatt simulate`; `{port}` is replaced by a
#                     free TCP port (default: "--meters 1 --listen-host 127.0.0.1 --base-port {port}")
#   DORMWATT_SIM_METER meter address to read in part (a); default: discovered with a
#                     13H read-address (the default simulator has one meter per bus)
#   PYTHON            interpreter for the throwaway virtualenv (default python3.11 or python3)
#   INTEROP_VENV      reuse this virtualenv directory instead of a fresh temporary one
# Needs network access to PyPI for `pip install dlt645==3.2.0`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
METER_B=123456789012

passed=0 failed=0 skipped=0
pids=()
workdir="$(mktemp -d)"
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$workdir"
}
trap cleanup EXIT

pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
skip() { echo "SKIP $*"; skipped=$((skipped + 1)); }

# --- throwaway virtualenv with the pinned package ------------------------
# shellcheck source=lib/pinned-venv.sh
source "$ROOT/scripts/lib/pinned-venv.sh"
pinned_venv "${INTEROP_VENV:-$workdir/venv}" dlt645 3.2.0

# --- our codec's TCP reader ----------------------------------------------
cargo build --quiet -p dlt645 --example read_tcp
READ_TCP="$TARGET_DIR/debug/examples/read_tcp"

# Waits for a line `PORT n` in file $1 (up to 30 s) and prints n.
wait_port_line() {
    for _ in $(seq 150); do
        if grep -q '^PORT ' "$1" 2>/dev/null; then awk '/^PORT /{print $2; exit}' "$1"; return 0; fi
        sleep 0.2
    done
    return 1
}

# Waits until 127.0.0.1:$1 accepts connections (up to 30 s) while pid $2 lives.
wait_listening() {
    "$PY" - "$1" "$2" <<'PYEOF'
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
for _ in range(150):
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
PYEOF
}

# --- (b) their simulator, our codec ---------------------------------------
"$PY" scripts/interop/pysim_server.py "$METER_B" >"$workdir/pysim.out" 2>"$workdir/pysim.err" &
pids+=($!)
if port="$(wait_port_line "$workdir/pysim.out")"; then
    if "$READ_TCP" "127.0.0.1:$port" --meter "$METER_B" 00000000 02010100 \
        >"$workdir/b.json" 2>"$workdir/b.err" &&
        summary="$("$PY" scripts/interop/check_reads.py pysim <"$workdir/b.json" 2>&1)"; then
        pass "(b) dlt645 3.2.0 simulator read by our codec: $summary"
    else
        fail "(b) dlt645 3.2.0 simulator read by our codec: ${summary:-see below}"
        cat "$workdir/b.json" "$workdir/b.err" >&2
    fi
else
    fail "(b) dlt645 3.2.0 simulator did not start"
    cat "$workdir/pysim.err" >&2
fi

# --- (a) our simulator, their client ----------------------------------------
part_a() {
    local bin="${DORMWATT_BIN:-}"
    if [[ -z "$bin" ]]; then
        # The newer of the release and debug builds, so a stale release
        # binary left on a dev machine does not shadow a fresh debug build.
        bin="$TARGET_DIR/debug/dormwatt"
        if [[ -x "$TARGET_DIR/release/dormwatt" && ( ! -x "$bin" || "$TARGET_DIR/release/dormwatt" -nt "$bin" ) ]]; then
            bin="$TARGET_DIR/release/dormwatt"
        fi
    fi
    if [[ ! -x "$bin" ]]; then
        skip "(a) no dormwatt binary at $bin (run cargo build, or set DORMWATT_BIN)"
        return
    fi
    local help
    if ! help="$("$bin" simulate --help 2>&1)"; then
        skip "(a) \`dormwatt simulate\` is not available in $bin"
        return
    fi
    local port
    port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    local args="${DORMWATT_SIM_ARGS:---meters 1 --listen-host 127.0.0.1 --base-port {port}}"
    args="${args//\{port\}/$port}"
    local flag
    for flag in $args; do
        if [[ "$flag" == --* && "$help" != *"${flag%%=*}"* ]]; then
            skip "(a) \`dormwatt simulate\` has no ${flag%%=*} option yet (set DORMWATT_SIM_ARGS to match its CLI)"
            return
        fi
    done
    # shellcheck disable=SC2086 # args is a word list on purpose
    "$bin" simulate $args >"$workdir/sim.out" 2>"$workdir/sim.err" &
    local sim_pid=$!
    pids+=("$sim_pid")
    if ! wait_listening "$port" "$sim_pid"; then
        if grep -q "not built yet" "$workdir/sim.err"; then
            skip "(a) \`dormwatt simulate\` is not built yet"
        else
            fail "(a) \`dormwatt simulate $args\` did not listen on 127.0.0.1:$port"
            tail -20 "$workdir/sim.err" >&2
        fi
        return
    fi
    local meter="${DORMWATT_SIM_METER:-}"
    if [[ -z "$meter" ]]; then
        meter="$("$READ_TCP" "127.0.0.1:$port" --discover --timeout-ms 5000 2>>"$workdir/a.err" | awk '/^address /{print $2}')"
        if [[ -z "$meter" ]]; then
            fail "(a) could not discover the simulated meter's address (13H); set DORMWATT_SIM_METER"
            return
        fi
    fi
    local theirs ours
    if ! theirs="$("$PY" scripts/interop/pyclient_read.py 127.0.0.1 "$port" "$meter" 2>>"$workdir/a.err")"; then
        fail "(a) dlt645 3.2.0 client could not read meter $meter from dormwatt simulate: $theirs"
        tail -20 "$workdir/a.err" >&2
        return
    fi
    if ! ours="$("$READ_TCP" "127.0.0.1:$port" --meter "$meter" 00000000 02010100 --timeout-ms 5000 2>>"$workdir/a.err" |
        "$PY" scripts/interop/check_reads.py values)"; then
        fail "(a) our codec could not read meter $meter from dormwatt simulate"
        tail -20 "$workdir/a.err" >&2
        return
    fi
    # The simulated meter runs on: energy may grow between the two reads,
    # voltage may wander, so compare with tolerances.
    if "$PY" - "$theirs" "$ours" <<'PYEOF'
import json, sys
theirs = json.loads(sys.argv[1])
ours_energy, ours_voltage = (float(v) for v in sys.argv[2].split())
ok = (
    theirs["energy_kwh"] is not None and theirs["voltage_v"] is not None
    and abs(theirs["energy_kwh"] - ours_energy) <= 1.0
    and abs(theirs["voltage_v"] - ours_voltage) <= 10.0
    and 100.0 <= theirs["voltage_v"] <= 300.0
)
sys.exit(0 if ok else 1)
PYEOF
    then
        pass "(a) dlt645 3.2.0 client read meter $meter from dormwatt simulate: $theirs (our codec: $ours)"
    else
        fail "(a) readings disagree: dlt645 3.2.0 $theirs, our codec $ours"
    fi
}
part_a

echo "interop: $passed passed, $failed failed, $skipped skipped"
[[ "$failed" -eq 0 ]]
