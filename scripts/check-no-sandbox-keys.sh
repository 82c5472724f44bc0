#!/usr/bin/env bash
# Issue 12 item 5: a production build (`cargo build -p dormwatt
# --no-default-features`) carries none of the payment sandbox's published
# keys, its certificate or its APIv3 key; the default build (demo) does,
# which shows the search would find them.
#
# Usage: bash scripts/check-no-sandbox-keys.sh
# Leaves target/debug/dormwatt as the default build (rebuilt at the end).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# One distinctive line of each secret: the first base64 line of each PEM in
# the sandbox module, and the demo APIv3 key.
markers=()
for pem in crates/pay/src/sandbox/*.pem; do
    markers+=("$(awk '/^-----BEGIN /{getline; print; exit}' "$pem")")
done
markers+=("$(grep -o 'b"SandboxOnly[A-Za-z0-9]*"' crates/pay/src/sandbox/mod.rs | sed 's/^b"//; s/"$//')")

found_in() {
    local bin="$1" n=0 m
    for m in "${markers[@]}"; do
        if grep -aFq -- "$m" "$bin"; then n=$((n + 1)); fi
    done
    echo "$n"
}

cargo build --quiet -p dormwatt --no-default-features
cp "$TARGET_DIR/debug/dormwatt" "$workdir/dormwatt-production"
cargo build --quiet -p dormwatt
production=$(found_in "$workdir/dormwatt-production")
demo=$(found_in "$TARGET_DIR/debug/dormwatt")
echo "sandbox secrets (${#markers[@]} markers): production build $production, default build $demo"
if [[ "$production" -ne 0 ]]; then
    echo "FAIL: the --no-default-features build contains sandbox keys"
    exit 1
fi
if [[ "$demo" -eq 0 ]]; then
    echo "FAIL: the default build shows none of the markers; the check is looking for the wrong thing"
    exit 1
fi
echo "no sandbox key in the production build"
