#!/usr/bin/env python3
"""Crash loops with real processes (issue 9): the driver behind
scripts/crash-test.sh. Python 3.11 standard library only.

It starts `dormwatt simulate` (the meters: they survive every crash and are
the ground truth) and `dormwatt serve` against it, lets a few students buy
concurrently (some on the same meter) through the JSON API and the payment
sandbox, kills `serve` with SIGKILL at random moments and restarts it, and at
the end checks that nothing was lost or doubled. See docs/RELIABILITY.md.

Progress goes to stderr; the last line on stdout is one JSON summary.
Exit status 0 only if lost, doubled, meter mismatches and ledger
violations are all zero and the run completed.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

# --------------------------------------------------------------------------
# small helpers

T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[crash-test {time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ports_free(base: int, n: int) -> bool:
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))
            socks.append(s)
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_range(n: int, rng: random.Random) -> int:
    for _ in range(200):
        # Below the ephemeral range (32768+), where outgoing sockets land.
        base = rng.randrange(20000, 32000 - n)
        if ports_free(base, n):
            return base
    raise SystemExit("no free range of loopback ports")


class Http:
    """One request per connection (the server dies under us on purpose)."""

    def __init__(self, port: int):
        self.port = port

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = {"Accept": "application/json", "Host": f"127.0.0.1:{self.port}"}
            if body is not None:
                if not isinstance(body, (bytes, str)):
                    body = json.dumps(body)
                    h["Content-Type"] = "application/json"
            h.update(headers or {})
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, r.getheaders(), data
        finally:
            conn.close()


def cookies_from(headers) -> dict:
    out = {}
    for k, v in headers:
        if k.lower() == "set-cookie":
            pair = v.split(";", 1)[0]
            if "=" in pair:
                name, val = pair.split("=", 1)
                out[name.strip()] = val.strip()
    return out


# --------------------------------------------------------------------------
# the simulator's control port


class Control:
    def __init__(self, port: int):
        self.port = port
        self.lock = threading.Lock()
        self.sock = None
        self.buf = b""

    def connect(self, deadline: float) -> None:
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def cmd(self, line: str) -> str:
        with self.lock:
            self.sock.sendall(line.encode() + b"\n")
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise RuntimeError("simulator control port closed")
                self.buf += chunk
            reply, self.buf = self.buf.split(b"\n", 1)
            return reply.decode()

    def meter(self, addr: str) -> dict:
        r = self.cmd(f"meter {addr}")
        if r.startswith("error"):
            raise RuntimeError(f"simulator: meter {addr}: {r}")
        return json.loads(r)


def energy_view(m: dict) -> dict:
    # remaining − overdraft + consumed is unchanged by consumption and rises by
    # exactly the purchased energy: the meter's own "remaining rose by".
    return {
        "purchase_count": m["purchase_count"],
        "purchased_centikwh": m["purchased_total_centikwh"],
        "balance_plus_used_centikwh": m["remaining_centikwh"] - m["overdraft_centikwh"] + m["total_centikwh"],
    }


# --------------------------------------------------------------------------
# a mock of WeChat's OAuth code exchange, so students log in to `serve`
# exactly as in production (the code is the openid here)


class OAuthMock(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        code = (q.get("code") or [""])[0]
        body = json.dumps({"access_token": "x", "expires_in": 7200, "openid": code, "scope": "snsapi_base"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


# --------------------------------------------------------------------------
# the run


class Order:
    def __init__(self, out_trade_no: str, meter: str, kwh: int, student: "Student"):
        self.no = out_trade_no
        self.meter = meter
        self.kwh = kwh
        self.student = student
        self.state = "unpaid"
        self.paid_at_ms = None
        self.completed_at_ms = None
        self.refunded_at_ms = None
        self.pay_confirmed_gen = None  # incarnation whose sandbox said SUCCESS
        self.pay_confirmed = False  # the payment side said paid at least once
        self.pay_attempts = 0
        self.renotified = 0

    def update(self, v: dict) -> None:
        self.state = v["state"]
        self.paid_at_ms = v.get("paid_at_ms")
        self.completed_at_ms = v.get("completed_at_ms")
        self.refunded_at_ms = v.get("refunded_at_ms")

    @property
    def final(self) -> bool:
        return self.state in ("completed", "refunded") or (self.state == "closed" and not self.paid)

    @property
    def paid(self) -> bool:
        return self.pay_confirmed or self.paid_at_ms is not None


class Run:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.procs: list[subprocess.Popen] = []
        self.serve: subprocess.Popen | None = None
        self.gen = 0
        self.lock = threading.Lock()
        self.orders: list[Order] = []
        self.stop = threading.Event()
        self.draining = threading.Event()
        self.errors = {"http_5xx": 0, "conn_errors": 0, "create_refused": 0, "driver_errors": 0, "serve_died": 0}
        self.last_create_ok_ms = 0
        self.cycles: list[dict] = []
        self.pg_events: list[dict] = []
        self.pg_db = None
        self.tmp = tempfile.mkdtemp(prefix="dw-crash-")
        self.sigterm_stop_s = None

    # ---- processes

    def env(self) -> dict:
        e = {k: v for k, v in os.environ.items() if not k.startswith("DORMWATT_")}
        e.update(self.dw_env)
        e.setdefault("RUST_LOG", "info,sqlx=warn")
        return e

    def dw(self, *args, check=True, capture=True) -> subprocess.CompletedProcess:
        r = subprocess.run([self.a.binary, *args], env=self.env(), cwd=self.tmp,
                           capture_output=capture, text=True, timeout=300)
        if check and r.returncode != 0:
            raise SystemExit(f"dormwatt {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
        return r

    def start_serve(self) -> float:
        self.gen += 1
        logf = open(os.path.join(self.tmp, f"serve-{self.gen:03d}.log"), "wb")
        t = time.time()
        p = subprocess.Popen([self.a.binary, "serve"], env=self.env(), cwd=self.tmp,
                             stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        self.serve = p
        self.procs.append(p)
        return t

    def wait_ready(self, started: float, timeout=60.0) -> float:
        http_ = Http(self.listen_port)
        while True:
            if self.serve.poll() is not None:
                raise SystemExit(f"serve exited with {self.serve.returncode}; see {self.tmp}/serve-{self.gen:03d}.log:\n"
                                 + self.tail(f"serve-{self.gen:03d}.log"))
            try:
                st, _, _ = http_.request("GET", "/readyz", timeout=2)
                if st == 200:
                    return time.time()
            except OSError:
                pass
            if time.time() - started > timeout:
                raise SystemExit(f"serve not ready within {timeout} s")
            time.sleep(0.01)

    def kill_serve(self) -> float:
        if self.serve.poll() is not None:
            self.errors["serve_died"] += 1
            log(f"serve #{self.gen} had exited by itself ({self.serve.returncode}):\n"
                + self.tail(f"serve-{self.gen:03d}.log", 10))
        t = time.time()
        self.serve.send_signal(signal.SIGKILL)
        self.serve.wait()
        return t

    def tail(self, name: str, n=30) -> str:
        try:
            with open(os.path.join(self.tmp, name), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def serve_log_errors(self) -> dict:
        """ERROR/WARN lines of every serve incarnation, grouped by message."""
        groups: dict = {}
        ansi = re.compile(r"\x1b\[[0-9;]*m")
        for name in sorted(os.listdir(self.tmp)):
            if not name.startswith("serve-"):
                continue
            with open(os.path.join(self.tmp, name), errors="replace") as f:
                for line in f:
                    line = ansi.sub("", line)
                    m = re.search(r"\s(ERROR|WARN)\s+(.*)", line)
                    if not m or "tower_http" in m.group(2):
                        continue
                    key = re.sub(r"\d+", "N", f"{m.group(1)} {m.group(2)}")[:160]
                    groups[key] = groups.get(key, 0) + 1
        return dict(sorted(groups.items(), key=lambda kv: -kv[1])[:8])

    def cleanup(self) -> None:
        self.stop.set()
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait()
        if self.pg_db:
            t = time.monotonic()
            # DROP DATABASE waits for a checkpoint, which a busy shared
            # server can take minutes over; the summary is printed already.
            self.psql(f"drop database if exists {self.pg_db} with (force)", check=False, timeout=300)
            log(f"dropped {self.pg_db} ({time.monotonic() - t:.1f} s)")
            self.pg_db = None
        if self.a.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def psql(self, sql: str, check=True, timeout=60) -> str:
        try:
            r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.a.pg_url, "-c", sql],
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            if check:
                raise SystemExit(f"psql did not answer within {timeout} s: {sql}")
            log(f"warning: psql did not answer within {timeout} s: {sql}")
            return ""
        if check and r.returncode != 0:
            raise SystemExit(f"psql failed: {r.stderr.strip()}")
        return r.stdout

    # ---- setup

    def setup(self) -> None:
        a = self.a
        gw = 19  # gateways of the reference plan; a few spare ports do not hurt
        self.base_port = free_range(gw + 5, self.rng)
        self.control_port = self.base_port + gw + 1
        self.listen_port = self.base_port + gw + 2
        # The payment sandbox answers on its own listener, at its root, like
        # WeChat's host (never on serve's own port).
        self.sandbox_port = self.base_port + gw + 3
        oauth = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OAuthMock)
        threading.Thread(target=oauth.serve_forever, daemon=True).start()
        secret = os.path.join(self.tmp, "wechat-secret")
        with open(secret, "w") as f:
            f.write("crash-test-secret\n")
        if a.database == "sqlite":
            url = f"sqlite://{self.tmp}/dormwatt.db"
        else:
            self.pg_db = f"dw_crash_{os.getpid()}_{int(time.time())}"
            self.psql(f"create database {self.pg_db}")
            u = urllib.parse.urlsplit(a.pg_url)
            url = urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + self.pg_db, u.query, ""))
        self.db_url = url
        self.dw_env = {
            "DORMWATT_DATABASE_URL": url,
            "DORMWATT_LISTEN": f"127.0.0.1:{self.listen_port}",
            "DORMWATT_PUBLIC_URL": f"http://127.0.0.1:{self.listen_port}",
            "DORMWATT_SIMULATOR__HOST": "127.0.0.1",
            "DORMWATT_SIMULATOR__BASE_PORT": str(self.base_port),
            "DORMWATT_WEB__WECHAT_APPID": "wxcrashtest0000001",
            "DORMWATT_WEB__WECHAT_SECRET_FILE": secret,
            "DORMWATT_WEB__WECHAT_API_BASE_URL": f"http://127.0.0.1:{oauth.server_address[1]}",
            "DORMWATT_PAYMENT__SANDBOX_LISTEN": f"127.0.0.1:{self.sandbox_port}",
        }
        for kv in a.sandbox_env.split():
            k, _, v = kv.partition("=")
            self.dw_env[k] = v
        if a.lease_ms:
            self.dw_env["DORMWATT_HEADEND__DELIVER_LEASE_MS"] = str(a.lease_ms)
        log(f"temp dir {self.tmp}; database {a.database}; gateways on 127.0.0.1:{self.base_port}+, "
            f"control {self.control_port}, http {self.listen_port}")
        simlog = open(os.path.join(self.tmp, "simulate.log"), "wb")
        p = subprocess.Popen([a.binary, "simulate", "--campus", "reference", "--base-port", str(self.base_port),
                              "--control-port", str(self.control_port), "--appliance-rate", "0",
                              "--seed", str(a.seed)],
                             env=self.env(), cwd=self.tmp, stdout=simlog, stderr=subprocess.STDOUT,
                             start_new_session=True)
        simlog.close()
        self.procs.append(p)
        self.ctl = Control(self.control_port)
        self.ctl.connect(time.monotonic() + 30)
        self.dw("migrate")
        self.dw("seed")
        # The meters bought for: area 1, spread over buildings and buses; a
        # fixed 50 kWh start keeps every purchase far below the meters' own
        # hoarding limit (the platform's limit is not the meter's: issue 9 #6).
        picks = [(1, 1), (1, 2), (2, 1), (2, 60), (3, 5), (4, 7), (5, 3), (6, 11)]
        self.meters = [f"201701{b:02d}{n:04d}" for b, n in picks[: a.meters]]
        for m in self.meters:
            r = self.ctl.cmd(f"remaining {m} 50")
            if r != "ok":
                raise SystemExit(f"simulator: remaining {m}: {r}")
        self.before = {m: energy_view(self.ctl.meter(m)) for m in self.meters}

    # ---- students

    def login_students(self) -> None:
        self.students = []
        for i in range(self.a.students):
            s = Student(self, i, self.meters[i % len(self.meters)])
            s.login()
            self.students.append(s)
        log(f"{len(self.students)} students logged in through the WeChat login; "
            f"{len(self.meters)} meters: {', '.join(self.meters)}")

    # ---- the loop

    def main(self) -> dict:
        a = self.a
        self.setup()
        started = self.start_serve()
        ready = self.wait_ready(started)
        log(f"serve #1 ready in {ready - started:.2f} s")
        self.login_students()
        threads = [threading.Thread(target=s.loop, daemon=True) for s in self.students]
        for t in threads:
            t.start()
        restart_t, ready_t = started, ready
        for c in range(1, a.cycles + 1):
            window = a.seconds_per_cycle
            kill_after = self.rng.uniform(min(2.0, window / 2), window)
            if a.database == "postgres" and a.pg_terminate > 0:
                for j in range(a.pg_terminate):
                    at = kill_after * (j + 1) / (a.pg_terminate + 1)
                    self.sleep_until(ready_t + at)
                    self.pg_terminate_once()
            self.sleep_until(ready_t + kill_after)
            kill_t = self.kill_serve()
            cyc = {"cycle": c, "restart": restart_t, "ready": ready_t, "kill": kill_t}
            self.cycles.append(cyc)
            restart_t = self.start_serve()
            ready_t = self.wait_ready(restart_t)
            cyc["next_restart"], cyc["next_ready"] = restart_t, ready_t
            with self.lock:
                n = len(self.orders)
                paid = sum(1 for o in self.orders if o.paid)
            log(f"cycle {c}/{a.cycles}: killed after {kill_t - cyc['ready']:.1f} s, "
                f"ready again in {ready_t - restart_t:.2f} s ({n} orders, {paid} paid so far)")
        # Drain: no new orders; students keep watching and re-paying what a
        # killed sandbox forgot; bounded.
        self.draining.set()
        drain_start = time.time()
        log(f"draining (at most {a.drain_timeout} s)")
        last_report = 0.0
        while time.time() - drain_start < a.drain_timeout:
            with self.lock:
                open_ = [o for o in self.orders if o.paid and not o.final]
            if not open_:
                break
            if time.time() - last_report > 15:
                last_report = time.time()
                states = {}
                for o in open_:
                    states[o.state] = states.get(o.state, 0) + 1
                log(f"  {len(open_)} paid orders not yet completed: {states}")
            time.sleep(0.5)
        drain_s = time.time() - drain_start
        self.stop.set()
        for t in threads:
            t.join(timeout=15)
        self.refresh_all()
        log(f"drained in {drain_s:.1f} s; stopping serve with SIGTERM")
        # Stop serve as an operator would, and time it (issue 9 #12).
        t = time.time()
        self.serve.send_signal(signal.SIGTERM)
        try:
            self.serve.wait(timeout=30)
            self.sigterm_stop_s = round(time.time() - t, 2)
        except subprocess.TimeoutExpired:
            self.serve.kill()
            self.serve.wait()
        after = {m: energy_view(self.ctl.meter(m)) for m in self.meters}
        log("check-ledger --json")
        ledger = self.dw("check-ledger", "--json", check=False)
        return self.summarise(after, ledger, drain_s)

    def sleep_until(self, t: float) -> None:
        while time.time() < t and not self.stop.is_set():
            time.sleep(min(0.05, max(0.0, t - time.time())))

    def pg_terminate_once(self) -> None:
        t = now_ms()
        out = self.psql(f"select count(pg_terminate_backend(pid)) from pg_stat_activity "
                        f"where datname = '{self.pg_db}' and pid <> pg_backend_pid()", check=False)
        n = int(out.strip() or 0) if out.strip().isdigit() else 0
        ev = {"at_ms": t, "terminated": n, "gen": self.gen}
        self.pg_events.append(ev)
        log(f"  pg_terminate_backend: {n} backends of {self.pg_db} terminated")

    def refresh_all(self) -> None:
        for s in self.students:
            for o in list(s.all_orders):
                s.refresh(o)

    # ---- the verdict

    def summarise(self, after: dict, ledger: subprocess.CompletedProcess, drain_s: float) -> dict:
        a = self.a
        orders = self.orders
        paid = [o for o in orders if o.paid]
        unresolved = [o for o in paid if o.state not in ("completed", "refunded")]
        lost_states: dict = {}
        for o in unresolved:
            lost_states[o.state] = lost_states.get(o.state, 0) + 1
        # Ledger
        try:
            lj = json.loads(ledger.stdout.strip().splitlines()[-1])
            violations = lj.get("violations", [])
        except (ValueError, IndexError):
            violations = [{"invariant": "?", "detail": f"check-ledger failed: {ledger.stderr[-500:]}"}]
        # Meters against completed orders
        doubled = 0
        short = 0
        mismatches = []
        for m in self.meters:
            done = [o for o in orders if o.meter == m and o.state == "completed"]
            want_n = len(done)
            want_e = sum(o.kwh for o in done) * 100
            b, f = self.before[m], after[m]
            dn = f["purchase_count"] - b["purchase_count"]
            de = f["purchased_centikwh"] - b["purchased_centikwh"]
            dr = f["balance_plus_used_centikwh"] - b["balance_plus_used_centikwh"]
            if (dn, de, dr) != (want_n, want_e, want_e):
                mismatches.append({"meter": m, "purchases": dn, "completed_orders": want_n,
                                   "purchased_centikwh": de, "balance_rise_centikwh": dr,
                                   "completed_centikwh": want_e})
                doubled += max(0, dn - want_n)
                short += max(0, want_n - dn)
        # Timings
        ready_s, first_s, inflight_s, backlog_s = [], [], [], []
        inflight_total = 0
        inflight_unresumed = 0
        completions = sorted(o.completed_at_ms for o in orders if o.completed_at_ms)
        for c in self.cycles:
            ready_s.append(c["next_ready"] - c["next_restart"])
            rs = int(c["next_restart"] * 1000)
            first = next((t for t in completions if t >= rs), None)
            if first is not None:
                first_s.append((first - rs) / 1000)
            kill = int(c["kill"] * 1000)
            flight = [o for o in orders if o.paid_at_ms is not None and o.paid_at_ms < kill
                      and (o.completed_at_ms is None or o.completed_at_ms > kill)
                      and o.state != "refunded"]
            inflight_total += len(flight)
            c["inflight"] = len(flight)
            if flight:
                # Per meter, the first of these to complete is the delivery
                # that was under way (or next) at the kill: "resumed". The
                # last of all is the meter's backlog drained.
                heads = []
                for m in {o.meter for o in flight}:
                    done = [o.completed_at_ms for o in flight if o.meter == m and o.completed_at_ms]
                    if done:
                        heads.append(min(done))
                if heads and len(heads) == len({o.meter for o in flight}):
                    v = (max(heads) - rs) / 1000
                    inflight_s.append(v)
                    c["inflight_resumed_s"] = round(v, 2)
                if all(o.completed_at_ms for o in flight):
                    v = (max(o.completed_at_ms for o in flight) - rs) / 1000
                    backlog_s.append(v)
                    c["backlog_drained_s"] = round(v, 2)
                else:
                    inflight_unresumed += sum(1 for o in flight if not o.completed_at_ms)
        pg_recover = []
        for ev in self.pg_events:
            nxt = [o.paid_at_ms for o in orders if o.paid_at_ms and o.paid_at_ms > ev["at_ms"]]
            if nxt:
                pg_recover.append((min(nxt) - ev["at_ms"]) / 1000)
        with open(os.path.join(self.tmp, "orders.json"), "w") as f:
            json.dump({"cycles": self.cycles, "pg_events": self.pg_events, "before": self.before, "after": after,
                       "orders": [{"no": o.no, "meter": o.meter, "kwh": o.kwh, "state": o.state,
                                   "paid_at_ms": o.paid_at_ms, "completed_at_ms": o.completed_at_ms,
                                   "pay_confirmed": o.pay_confirmed, "renotified": o.renotified}
                                  for o in orders]}, f, indent=1)
        mx = lambda v: round(max(v), 2) if v else None  # noqa: E731
        s = {
            "database": a.database,
            "cycles": len(self.cycles),
            "orders_created": len(orders),
            "orders_paid": len(paid),
            "orders_completed": sum(1 for o in orders if o.state == "completed"),
            "orders_refunded": sum(1 for o in orders if o.state == "refunded"),
            "lost": len(unresolved),
            "lost_states": lost_states,
            "doubled": doubled,
            "meter_short": short,
            "meter_mismatches": mismatches,
            "ledger_violations": len(violations),
            "ready_s_max": mx(ready_s),
            "first_delivery_s_max": mx(first_s),
            "inflight_resumed_s_max": mx(inflight_s),
            "backlog_drained_s_max": mx(backlog_s),
            "inflight_at_kill": inflight_total,
            "inflight_unresumed": inflight_unresumed,
            "payments_renotified": sum(o.renotified for o in orders),
            "pg_terminations": len(self.pg_events),
            "pg_recover_s_max": mx(pg_recover),
            "http_5xx": self.errors["http_5xx"],
            "serve_died": self.errors["serve_died"],
            "driver_errors": self.errors["driver_errors"],
            "serve_log_errors": self.serve_log_errors(),
            "drain_s": round(drain_s, 1),
            "sigterm_stop_s": self.sigterm_stop_s,
            "lease_ms": a.lease_ms or None,
            "seconds_per_cycle": a.seconds_per_cycle,
            "students": a.students,
            "meters": len(self.meters),
            "seed": a.seed,
            "elapsed_s": round(time.monotonic() - T0, 1),
        }
        if violations:
            s["ledger_detail"] = violations[:10]
        if unresolved:
            s["lost_orders"] = [{"out_trade_no": o.no, "state": o.state, "meter": o.meter, "kwh": o.kwh,
                                 "paid_at_ms": o.paid_at_ms, "pay_confirmed": o.pay_confirmed}
                                for o in unresolved[:10]]
        s["per_cycle"] = [{"cycle": c["cycle"], "ready_s": round(c["next_ready"] - c["next_restart"], 3),
                           "inflight": c["inflight"], "inflight_resumed_s": c.get("inflight_resumed_s"),
                           "backlog_drained_s": c.get("backlog_drained_s")}
                          for c in self.cycles]
        return s


class Student:
    def __init__(self, run: Run, i: int, meter: str):
        self.run = run
        self.i = i
        self.meter = meter
        self.http = Http(run.listen_port)
        self.sandbox = Http(run.sandbox_port)
        self.cookie = ""
        self.csrf = ""
        self.area_id = 1
        self.all_orders: list[Order] = []
        self.rng = random.Random(run.a.seed * 1000 + i)

    def login(self) -> None:
        h = self.http
        st, hd, _ = h.request("GET", "/login/wechat?next=/bind")
        if st not in (302, 303, 307):
            raise SystemExit(f"/login/wechat answered {st} (is WeChat login configured?)")
        c = cookies_from(hd)
        loc = dict((k.lower(), v) for k, v in hd)["location"]
        state = urllib.parse.parse_qs(urllib.parse.urlparse(loc.split("#")[0]).query)["state"][0]
        cookie = "; ".join(f"{k}={v}" for k, v in c.items())
        openid = f"oCrash{self.run.a.seed:04d}{self.i:04d}"
        st, hd, body = h.request("GET", f"/login/wechat/callback?code={openid}&state={state}",
                                 headers={"Cookie": cookie})
        c2 = cookies_from(hd)
        if "dw_session" not in c2 or not c2["dw_session"]:
            raise SystemExit(f"WeChat login failed ({st}): {body[:300]!r}")
        self.cookie = f"dw_session={c2['dw_session']}"
        st, _, body = h.request("GET", "/bind", headers={"Cookie": self.cookie, "Accept": "text/html"})
        text = body.decode("utf-8", "replace")
        m = re.search(r'name=csrf value="([^"]+)"', text)
        if not m:
            raise SystemExit(f"no CSRF token on /bind ({st})")
        self.csrf = m.group(1)
        m = re.search(r'<option value="(\d+)"', text)
        if m:
            self.area_id = int(m.group(1))

    def call(self, method, path, body=None):
        try:
            st, _, data = self.http.request(method, path, body=body,
                                            headers={"Cookie": self.cookie, "X-CSRF-Token": self.csrf})
        except OSError:
            with self.run.lock:
                self.run.errors["conn_errors"] += 1
            return None, None
        if st >= 500:
            with self.run.lock:
                self.run.errors["http_5xx"] += 1
        try:
            return st, json.loads(data) if data else None
        except ValueError:
            return st, None

    def call_raw(self, method, path, body=None):
        try:
            st, _, data = self.http.request(method, path, body=body, headers={"Cookie": self.cookie})
        except OSError:
            with self.run.lock:
                self.run.errors["conn_errors"] += 1
            return None, b""
        return st, data

    def sandbox_pay(self, out_trade_no: str):
        """The sandbox's own "the student paid" (its listener, its root)."""
        try:
            st, _, data = self.sandbox.request("POST", "/admin/pay", body={"out_trade_no": out_trade_no})
        except OSError:
            with self.run.lock:
                self.run.errors["conn_errors"] += 1
            return None, b""
        return st, data

    def refresh(self, o: Order) -> None:
        st, v = self.call("GET", f"/api/orders/{o.no}")
        if st == 200 and v:
            with self.run.lock:
                o.update(v)

    def pay(self, o: Order) -> None:
        gen = self.run.gen
        o.pay_attempts += 1
        st, v = self.call("POST", f"/api/orders/{o.no}/pay", body="")
        if st != 200:
            if st == 409 and v and v.get("code") == "ALREADY_PAID":
                o.pay_confirmed_gen = gen
            return
        st, raw = self.sandbox_pay(o.no)
        if st == 200 or (st == 409 and b"Success" in raw):
            # 409 "order is Success": this sandbox already holds it as paid
            with self.run.lock:
                if o.pay_confirmed:
                    o.renotified += 1
                o.pay_confirmed = True
                o.pay_confirmed_gen = gen

    def loop(self) -> None:
        try:
            self._loop()
        except Exception as e:  # a driver bug must not pass for a quiet student
            log(f"student {self.i} failed: {e!r}")
            with self.run.lock:
                self.run.errors["driver_errors"] += 1

    def _loop(self) -> None:
        r = self.run
        next_buy = time.time() + self.rng.uniform(0, 0.5)
        while not r.stop.is_set():
            open_ = [o for o in self.all_orders if not o.final]
            for o in open_:
                self.refresh(o)
                if o.state == "unpaid" and o.pay_attempts < 20 and o.pay_confirmed_gen != r.gen:
                    # Never paid, or paid at a sandbox that died with the
                    # killed serve before its notification landed (WeChat
                    # would retry it; the in-process sandbox cannot): pay again.
                    self.pay(o)
            waiting = sum(1 for o in open_ if o.paid and not o.final)
            if not r.draining.is_set() and waiting < r.a.open_max and time.time() >= next_buy:
                self.buy()
                next_buy = time.time() + self.rng.uniform(r.a.think_min, r.a.think_max)
            time.sleep(0.2)

    def buy(self) -> None:
        r = self.run
        # Mostly this student's own meter, sometimes a neighbour's.
        meter = self.meter if self.rng.random() < 0.8 else self.rng.choice(r.meters)
        kwh = self.rng.choice([1, 1, 2, 3])
        st, v = self.call("POST", "/api/orders", body={"area_id": self.area_id, "meter_address": meter, "kwh": kwh})
        if st != 201 or not v:
            if st is not None and st < 500:
                with r.lock:
                    r.errors["create_refused"] += 1
                if r.errors["create_refused"] <= 3:
                    log(f"  order refused ({st}): {v}")
            return
        o = Order(v["out_trade_no"], meter, kwh, self)
        with r.lock:
            r.orders.append(o)
            r.last_create_ok_ms = now_ms()
        self.all_orders.append(o)
        self.pay(o)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--seconds-per-cycle", type=float, default=10.0,
                   help="longest time serve runs before its SIGKILL (the kill moment is random within it)")
    p.add_argument("--binary", required=True)
    p.add_argument("--pg-url", default=os.environ.get("DORMWATT_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--pg-terminate", type=int, default=1,
                   help="postgres: pg_terminate_backend rounds per cycle, under load (0: none)")
    p.add_argument("--students", type=int, default=8)
    p.add_argument("--meters", type=int, default=6)
    p.add_argument("--open-max", type=int, default=2, help="a student waits while this many of their orders are paid but undelivered")
    p.add_argument("--think-min", type=float, default=0.3)
    p.add_argument("--think-max", type=float, default=1.5)
    p.add_argument("--lease-ms", type=int, default=0, help="set [headend] deliver_lease_ms (default: the server's)")
    p.add_argument("--drain-timeout", type=float, default=150.0)
    p.add_argument("--sandbox-env", default="", help="KEY=VALUE … that opt serve into the payment sandbox")
    p.add_argument("--seed", type=int, default=0, help="0: random")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite file)")
    a = p.parse_args()
    if a.seed == 0:
        a.seed = random.SystemRandom().randrange(1, 10_000)
    if not (1 <= a.cycles <= 1000) or not (1 <= a.students <= 64) or not (1 <= a.meters <= 8):
        p.error("--cycles 1..1000, --students 1..64, --meters 1..8")
    if a.seconds_per_cycle < 1 or a.seconds_per_cycle > 600:
        p.error("--seconds-per-cycle 1..600")
    run = Run(a)

    def on_signal(signum, _frame):
        run.cleanup()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        s = run.main()
    except SystemExit as e:
        log(f"FAILED: {e}")
        run.cleanup()
        print(json.dumps({"database": a.database, "error": str(e)[:500], "cycles": len(run.cycles)}))
        return 2
    except BaseException:
        run.cleanup()
        raise
    bad = s["driver_errors"] + s["lost"] + s["doubled"] + s["meter_short"] + len(s["meter_mismatches"]) + s["ledger_violations"]
    for m in s["meter_mismatches"]:
        log(f"METER MISMATCH {m}")
    for o in s.get("lost_orders", []):
        log(f"LOST {o}")
    for v in s.get("ledger_detail", []):
        log(f"LEDGER {v}")
    log(f"{s['orders_paid']} paid, {s['orders_completed']} completed, lost {s['lost']}, doubled {s['doubled']}, "
        f"ledger violations {s['ledger_violations']}; ready ≤ {s['ready_s_max']} s, first delivery ≤ "
        f"{s['first_delivery_s_max']} s, in-flight resumed ≤ {s['inflight_resumed_s_max']} s")
    line = json.dumps(s, ensure_ascii=False)
    run.cleanup()
    # The summary is the last line on stdout, after the cleanup's messages.
    print(line, flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
