#!/usr/bin/env bash
# Browser tests of the staff console (issues 13 and 14): for each backend
# named (default: sqlite, and postgres when DORMWATT_TEST_PG_URL is set),
# starts a fresh `dormwatt demo`, reads the demo administrator's password
# from its output and runs every e2e/staff/*.mjs in name order against it in
# headless Debian Chromium on a desktop viewport. Screenshots and server logs:
# e2e/artifacts/.
#
#   bash e2e/staff.sh [sqlite] [postgres]
#
# Each script gets E2E_BASE, E2E_ADMIN, E2E_ADMIN_PASSWORD, E2E_BIN,
# E2E_DB_URL, E2E_DB_KIND and E2E_LOG (the server's log) in its environment.
# E2E_ONLY=NAME runs only the scripts whose file name contains NAME.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

kinds=("$@")
if [ "${#kinds[@]}" -eq 0 ]; then
  kinds=(sqlite)
  if [ -n "${DORMWATT_TEST_PG_URL:-}" ]; then kinds+=(postgres); else
    echo "notice: DORMWATT_TEST_PG_URL is not set; the staff browser tests run on SQLite only"; fi
fi

cargo build -p dormwatt --quiet
bin="$root/target/debug/dormwatt"
export E2E_BIN="$bin"

. "$here/lib/server.sh"
trap cleanup_demo EXIT

cd "$here"
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

failed=0
for kind in "${kinds[@]}"; do
  echo "--- staff console on $kind"
  E2E_LOG_SUFFIX="-staff-$kind"
  start_demo "$kind"
  line=""
  for _ in $(seq 1 60); do
    line="$(grep -a -m1 'DEMO staff console' "$E2E_LOG" || true)"
    [ -n "$line" ] && break
    sleep 0.5
  done
  if [ -z "$line" ]; then echo "the demo printed no administrator" >&2; exit 1; fi
  E2E_ADMIN="$(sed -E 's/.* name ([^ ]+) .*/\1/' <<<"$line")"
  E2E_ADMIN_PASSWORD="$(sed -E 's/.* password ([^ ]+) .*/\1/' <<<"$line")"
  export E2E_ADMIN E2E_ADMIN_PASSWORD E2E_DB_KIND="$kind"
  for script in staff/*.mjs; do
    [ "$(basename "$script")" = lib.mjs ] && continue
    # E2E_ONLY=40-auditor runs only the scripts whose name contains it.
    case "$(basename "$script")" in *"${E2E_ONLY:-}"*) ;; *) continue ;; esac
    echo "  -- $script ($kind)"
    if ! E2E_SHOT_PREFIX="$kind-$(basename "$script" .mjs)" timeout 300 node "$script"; then
      echo "  FAILED: $script on $kind"
      failed=1
    fi
  done
  stop_demo
done
[ "$failed" -eq 0 ] || { echo "staff browser tests failed"; exit 1; }
echo "staff browser tests passed on: ${kinds[*]}"
