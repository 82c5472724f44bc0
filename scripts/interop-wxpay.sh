#!/usr/bin/env bash
# Interoperability check between our payment sandbox and the PyPI WeChat Pay
# v3 SDK wechatpayv3 2.0.4 (an independent client), changing only its host:
# JSAPI prepay, query by out_trade_no and by transaction_id, close, refund,
# trade bill (gzip), platform-certificate download (certificate mode) and
# notification verification (public-key mode), in
# scripts/interop/wxpay_sdk_client.py.
#
# The sandbox runs alone at the root of its own loopback listener
# (crates/pay/examples/sandbox_serve.rs), the way `dormwatt demo` serves it.
#
# Usage: bash scripts/interop-wxpay.sh
# Environment:
#   PYTHON        interpreter for the throwaway virtualenv (default python3.11 or python3)
#   INTEROP_VENV  reuse this virtualenv directory instead of a fresh temporary one
# Needs network access to PyPI for `pip install wechatpayv3==2.0.4`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

workdir="$(mktemp -d)"
sandbox_pid=""
cleanup() {
    # Closing its stdin stops the sandbox; the kill is for a wedged one.
    exec 3>&- 2>/dev/null || true
    if [[ -n "$sandbox_pid" ]]; then kill "$sandbox_pid" 2>/dev/null || true; fi
    rm -rf "$workdir"
}
trap cleanup EXIT

# shellcheck source=lib/pinned-venv.sh
source "$ROOT/scripts/lib/pinned-venv.sh"
pinned_venv "${INTEROP_VENV:-$workdir/venv}" wechatpayv3 2.0.4

cargo build --quiet -p pay --example sandbox_serve
mkfifo "$workdir/stdin"
"$TARGET_DIR/debug/examples/sandbox_serve" <"$workdir/stdin" >"$workdir/sandbox.out" 2>"$workdir/sandbox.err" &
sandbox_pid=$!
exec 3>"$workdir/stdin"

port=""
for _ in $(seq 150); do
    port="$(awk '/^PORT /{print $2; exit}' "$workdir/sandbox.out" 2>/dev/null)"
    [[ -n "$port" ]] && break
    kill -0 "$sandbox_pid" 2>/dev/null || break
    sleep 0.2
done
if [[ -z "$port" ]]; then
    echo "FAIL the sandbox did not start"
    cat "$workdir/sandbox.err" >&2
    echo "interop-wxpay: 0 passed, 1 failed"
    exit 1
fi

set +e
"$PY" scripts/interop/wxpay_sdk_client.py "http://127.0.0.1:$port" "$ROOT" | tee "$workdir/client.out"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -c '^PASS ' "$workdir/client.out" || true)
failed=$(grep -c '^FAIL ' "$workdir/client.out" || true)
if [[ "$status" -ne 0 && "$failed" -eq 0 ]]; then
    failed=1
    tail -20 "$workdir/sandbox.err" >&2
fi
echo "interop-wxpay: $passed passed, $failed failed"
[[ "$status" -eq 0 && "$failed" -eq 0 ]]
