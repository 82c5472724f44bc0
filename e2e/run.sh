#!/usr/bin/env bash
# Browser journey of the student pages (issue 6): builds dormwatt, starts
# `dormwatt demo` (simulator, head-end, payment sandbox on its own port) on a
# temporary directory and a free port, runs e2e/journey.mjs in headless
# Debian Chromium, and stops the server. Screenshots: e2e/artifacts/.
#
# Needs: cargo, node + npm, /usr/bin/chromium (apt-get install chromium).
# E2E_PARTIAL=1 stops the journey before payment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

cargo build -p dormwatt --quiet
bin="$root/target/debug/dormwatt"

. "$here/lib/server.sh"
trap cleanup_demo EXIT
start_demo sqlite
base="$E2E_BASE"

cd "$here"
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
E2E_BASE="$base" timeout 360 node journey.mjs
