#!/usr/bin/env bash
# Browser journey of the student pages (issue 6): builds dormwatt, starts
# `dormwatt demo` (simulator, head-end, payment sandbox on its own port) on a
# temporary directory and a free port, runs e2e/journey.mjs in headless
# Debian Chromium, and stops the server. Screenshots: e2e/artifacts/.
#
# Then checks the server's log for the students' openids and the phone
# number the journey saved (neither may be there).
#
# Needs: cargo, node + npm, sqlite3, /usr/bin/chromium (apt-get install chromium).
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

# The server's log of the whole journey holds no student's openid and not
# the phone number the journey saved (issue 16 item 2).
db_path="${E2E_DB_URL#sqlite://}"
phone=13700001234
saved="$(sqlite3 "$db_path" "select count(*) from student where phone = '$phone'")"
if [ "$saved" != 1 ]; then echo "log check: the journey's phone number was not saved ($saved)" >&2; exit 1; fi
leaks=0
while read -r openid; do
  if grep -aqF "$openid" "$E2E_LOG"; then echo "log check: openid $openid is in the server log" >&2; leaks=1; fi
done < <(sqlite3 "$db_path" "select openid from student")
if grep -aqF "$phone" "$E2E_LOG"; then echo "log check: the phone number is in the server log" >&2; leaks=1; fi
[ "$leaks" = 0 ] || exit 1
echo "log check: $(wc -l < "$E2E_LOG") log lines, no openid or phone number"
