#!/usr/bin/env bash
# Repeats the attacks of issue 10 against a fresh `dormwatt demo` on
# loopback (free ports, temporary directory) and prints one JSON line last
# with what held. Bounded: every attack has a request count and a time
# limit, the whole run is under `timeout`, and the server is stopped at the
# end. Loopback only: the client refuses any other host.
#
#   bash scripts/attack.sh            # builds target/debug/dormwatt first
#   DORMWATT_BIN=path bash scripts/attack.sh
#   ATTACK_ALLOW=unpaid_flood bash scripts/attack.sh   # report, but do not fail on, these
#
# Exit status: 0 when every attack held (or failed only among ATTACK_ALLOW),
# 1 otherwise. About 25 s after the build.
#
# Attacks: bind-spray (4 wrong guesses, then re-bind one's own meter, over
# and over), owner lock-out (other accounts' failures on a meter, then its
# owner binds it), parallel binds (16 at once past the 8-meter cap and the
# throttle), meter look-up enumeration, slow headers (200 sockets sending
# half a request head), unpaid-order flood, and the sandbox's admin route
# on the application port.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ -z "${DORMWATT_BIN:-}" ]; then
  cargo build -p dormwatt --quiet
  DORMWATT_BIN="$root/target/debug/dormwatt"
fi

tmp="$(mktemp -d -t dormwatt-attack.XXXXXX)"
# free_port, free_block
# shellcheck source=lib/ports.sh
. "$root/scripts/lib/ports.sh"
port="$(free_port)"
sim_port="$(free_block)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

DORMWATT_SIMULATOR__BASE_PORT="$sim_port" RUST_LOG=error "$DORMWATT_BIN" \
  --database-url "sqlite://$tmp/demo.db" --listen "127.0.0.1:$port" \
  demo --history-days 0 >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
for i in $(seq 1 240); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "demo exited early" >&2; cat "$tmp/server.err" >&2; exit 1; fi
  if [ "$i" = 240 ]; then echo "demo did not come up in 120 s" >&2; exit 1; fi
  sleep 0.5
done

timeout 120 python3 - "$port" "${ATTACK_ALLOW:-}" <<'PY'
import http.client, json, re, socket, sys, threading, time, urllib.parse

PORT = int(sys.argv[1])
HOST = "127.0.0.1"
assert HOST in ("127.0.0.1", "::1"), "loopback only"
ATTACK_S = 20  # time bound of each attack

def request(method, path, cookie="", form=None, body=None, ctype=None, src="127.0.0.1"):
    # Other loopback source addresses stand for other clients' IPs.
    assert src.startswith("127."), "loopback only"
    c = http.client.HTTPConnection(HOST, PORT, timeout=10, source_address=(src, 0))
    headers = {"Host": f"{HOST}:{PORT}"}
    if cookie:
        headers["Cookie"] = cookie
    if form is not None:
        body = urllib.parse.urlencode(form)
        ctype = "application/x-www-form-urlencoded"
    if ctype:
        headers["Content-Type"] = ctype
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    cookies = [v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie"]
    c.close()
    return r.status, r.getheader("Location") or "", data, cookies

def csrf_of(html):
    m = re.search(r'name=csrf value="([^"]+)"', html)
    return m.group(1) if m else ""

class Student:
    def __init__(self, name, src="127.0.0.1"):
        self.src = src
        _, _, html, cookies = request("GET", "/login", src=src)
        login_cookie = "; ".join(cookies)
        st, _, _, cookies = request("POST", "/login/demo", login_cookie,
                                    form={"csrf": csrf_of(html), "name": name}, src=src)
        assert st == 303, f"demo login answered {st}"
        self.cookie = "; ".join(c for c in cookies if c.startswith("dw_session=") and c != "dw_session=")
        _, _, html, _ = request("GET", "/me", self.cookie, src=src)
        self.csrf = csrf_of(html)

    def get(self, path):
        return request("GET", path, self.cookie, src=self.src)

    def post(self, path, form):
        return request("POST", path, self.cookie, form=form, src=self.src)

    def bind(self, area, meter, password):
        st, _, html, _ = self.post("/bind", {
            "csrf": self.csrf, "area_id": area, "meter": meter, "password": password})
        if st == 303:
            return "bound"
        if "尝试次数过多" in html or "Too many attempts" in html:
            return "throttled"
        if "最多可绑定" in html:
            return "too_many"
        return "wrong"

    def meters(self):
        _, _, html, _ = self.get("/me/meters")
        return html.count("data-binding=")

first = Student("攻击者甲")
_, _, html, _ = request("GET", "/bind", first.cookie)
area = re.search(r'<option value="(\d+)"', html).group(1)
# Reference campus: 2017 + area 01 + building (2 digits) + meter (4 digits);
# building 1 has 30 meters, 2: 118, 3: 72, 4: 110, 10: 470.
meter = lambda n, b=1: f"201701{b:02d}{n:04d}"
result = {}

# 1. Bind spray: 4 wrong guesses on other meters, then re-bind one's own.
assert first.bind(area, meter(1), "000000") == "bound"
checked = throttled = 0
deadline = time.time() + ATTACK_S
for rnd in range(40):
    if time.time() > deadline:
        break
    for k in range(4):
        r = first.bind(area, meter(1 + (rnd * 4 + k) % 400, b=10), "111111")
        checked += r == "wrong"
        throttled += r == "throttled"
    first.bind(area, meter(1), "000000")
result["bind_spray"] = {"guesses_checked": checked, "throttled": throttled, "held": checked <= 10}

# 2. Owner lock-out: other accounts' failures on a meter, then its owner binds it.
target = meter(25)
for n in range(2):
    a = Student(f"攻击者{n}", src=f"127.0.1.{n + 1}")
    for _ in range(4):
        a.bind(area, target, "111111")
owner = Student("真正的主人", src="127.0.2.1")
r = owner.bind(area, target, "000000")
result["owner_lockout"] = {"owner_bind": r, "held": r == "bound"}

# 3. Parallel binds past the cap (16 at once).
par = Student("并发者", src="127.0.3.1")
outs = []
threads = [threading.Thread(target=lambda i=i: outs.append(par.bind(area, meter(1 + i, b=2), "000000"))) for i in range(16)]
for t in threads: t.start()
for t in threads: t.join(30)
n = par.meters()
result["parallel_bind"] = {"bound": n, "held": n <= 8}

# 4. Meter look-up enumeration (buy page for meters one is not bound to).
looker = Student("查询者", src="127.0.4.1")
found = refused = 0
deadline = time.time() + ATTACK_S
for i in range(100):
    if time.time() > deadline:
        break
    _, _, html, _ = looker.get(f"/buy/order?area_id={area}&meter={meter(1 + i % 70, b=3)}")
    refused += "查询电表过于频繁" in html
    found += "id=order-meter" in html
result["lookup_enumeration"] = {"answered": found, "throttled": refused, "held": found <= 20}

# 5. Slow headers: 200 sockets each sending half a request head.
socks = []
for i in range(200):
    try:
        s = socket.create_connection((HOST, PORT), timeout=5)
        s.sendall(f"GET /healthz?{i} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
        socks.append(s)
    except OSError:
        pass
start = time.time()
closed = 0
for s in socks:
    s.settimeout(max(0.1, 15 - (time.time() - start)))
    try:
        closed += s.recv(1) == b""
    except ConnectionResetError:
        closed += 1
    except OSError:
        pass
    s.close()
elapsed = round(time.time() - start, 1)
result["slow_headers"] = {"sockets": len(socks), "closed_by_server": closed, "within_s": elapsed,
                          "held": closed == len(socks)}
# The server still answers afterwards.
st, _, _, _ = request("GET", "/healthz")
result["slow_headers"]["healthz_after"] = st

# 6. Unpaid-order flood from one account with one bound meter.
flood = Student("下单者", src="127.0.5.1")
assert flood.bind(area, meter(1, b=4), "000000") == "bound"
created = refused = 0
deadline = time.time() + ATTACK_S
for i in range(300):
    if time.time() > deadline:
        break
    st, loc, _, _ = flood.post("/buy/order", {
        "csrf": flood.csrf, "area_id": area, "meter": meter(1, b=4), "kwh": "other", "other": "500"})
    if st == 303 and "/pay" in loc:
        created += 1
    else:
        refused += 1
# Issue 10 item 4 (unpaid-order caps) is another branch's: reported, and
# "held" only when the flood was capped.
result["unpaid_flood"] = {"created": created, "refused": refused, "held": created <= 10}

# 7. The sandbox's admin route on the application's port.
st, _, _, _ = request("POST", "/sandbox/wxpay/admin/pay", body='{"out_trade_no":"x"}', ctype="application/json")
st2, _, _, _ = request("POST", "/admin/pay", body='{"out_trade_no":"x"}', ctype="application/json")
result["sandbox_on_app_port"] = {"status": [st, st2], "held": st == 404 and st2 == 404}

result["held"] = all(v["held"] for v in result.values() if isinstance(v, dict))
allowed = {a for a in sys.argv[2].split(",") if a} if len(sys.argv) > 2 else set()
failed = [k for k, v in result.items() if isinstance(v, dict) and not v["held"] and k not in allowed]
print(json.dumps(result, ensure_ascii=False))
sys.exit(1 if failed else 0)
PY
