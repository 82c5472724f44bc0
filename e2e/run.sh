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

tmp="$(mktemp -d -t dormwatt-e2e.XXXXXX)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:$port"
# The simulated gateways listen on base_port + i: find a free block of 128
# ports so parallel runs (and a developer's own demo) do not collide.
sim_port="$(python3 - <<'PY'
import random, socket
for _ in range(200):
    b = random.randrange(30000, 60000 - 128)
    socks = []
    try:
        for p in range(b, b + 128):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(b); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    # Bounded wait for a graceful stop, then force.
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  mkdir -p "$here/artifacts"
  cp "$tmp/server.log" "$here/artifacts/server.log" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

DORMWATT_PUBLIC_URL="$base" DORMWATT_SIMULATOR__BASE_PORT="$sim_port" "$bin" --database-url "sqlite://$tmp/demo.db" --listen "127.0.0.1:$port" \
  demo --history-days 60 >"$tmp/server.log" 2>&1 &
server_pid=$!

# Seeding the campus and its history takes a little while; bounded.
for i in $(seq 1 300); do
  if curl -fsS "$base/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "dormwatt demo exited early:" >&2; cat "$tmp/server.log" >&2; exit 1
  fi
  if [ "$i" = 300 ]; then echo "dormwatt demo did not come up in 150 s" >&2; tail -50 "$tmp/server.log" >&2; exit 1; fi
  sleep 0.5
done

cd "$here"
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
E2E_BASE="$base" timeout 360 node journey.mjs
