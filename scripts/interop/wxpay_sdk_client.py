"""Drives the dormwatt payment sandbox with the PyPI WeChat Pay v3 SDK
`wechatpayv3` (an independent implementation), changing only its host.

Usage: python wxpay_sdk_client.py SANDBOX_BASE_URL REPO_ROOT

Prints one line per check, `PASS name: detail` or `FAIL name: detail`, and
exits 1 if any check failed. Two SDK clients are used, as merchants have
them: one in public-key mode (PUB_KEY_ID_…) and one in platform-certificate
mode, which downloads and decrypts /v3/certificates at start-up.
"""

import datetime
import gzip
import hashlib
import http.server
import json
import sys
import threading
import time
import urllib.request

import wechatpayv3
from cryptography.hazmat.primitives import serialization
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.core import Core

BASE, ROOT = sys.argv[1].rstrip("/"), sys.argv[2]
# The sandbox's published demo identities (crates/pay/src/sandbox/mod.rs).
APPID = "wxsandbox0000demo"
MCHID = "1900000000"
MERCHANT_SERIAL = "5A4D0B0DE5A4D0B0DE5A4D0B0DE5A4D0B0DE5A4D"
PUBLIC_KEY_ID = "PUB_KEY_ID_0000000000000000SANDBOX00000001"
APIV3_KEY = "SandboxOnlyApiV3Key0000000000000"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
WAIT_S = 15

failures = 0


def check(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + (": " + detail if detail else ""), flush=True)
    if not ok:
        failures += 1


def pem_block(path, label):
    text = open(path, encoding="utf-8").read()
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    return text[text.index(begin): text.index(end) + len(end)]


merchant_key = pem_block(f"{ROOT}/crates/pay/src/sandbox/sandbox_merchant_key.pem", "PRIVATE KEY")
platform_private = serialization.load_pem_private_key(
    pem_block(f"{ROOT}/crates/pay/src/sandbox/sandbox_platform_key.pem", "PRIVATE KEY").encode(),
    password=None,
)
platform_public_pem = platform_private.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()


class Inbox:
    """Notifications our notify endpoint verified with the SDK's callback()."""

    def __init__(self):
        self.cond = threading.Condition()
        self.verified = []  # (event_type, resource, raw headers, raw body)
        self.rejected = 0

    def wait(self, pred):
        deadline = time.monotonic() + WAIT_S
        with self.cond:
            while True:
                hit = next((n for n in self.verified if pred(n)), None)
                if hit or time.monotonic() >= deadline:
                    return hit
                self.cond.wait(deadline - time.monotonic())


inbox = Inbox()
sdk_for_notifications = None  # set below; the handler uses it


class NotifyHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        result = sdk_for_notifications.callback(self.headers, body)
        with inbox.cond:
            if result:
                inbox.verified.append((result["event_type"], result["resource"], dict(self.headers), body))
            else:
                inbox.rejected += 1
            inbox.cond.notify_all()
        self.send_response(204 if result else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotifyHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
NOTIFY_URL = f"http://127.0.0.1:{server.server_address[1]}/notify"


def sdk(public_key_mode):
    """An SDK client whose only change is the host it talks to."""
    kwargs = dict(public_key=platform_public_pem, public_key_id=PUBLIC_KEY_ID) if public_key_mode else {}
    # The SDK downloads platform certificates inside its constructor, from
    # its hard-wired host; hold that until the host is ours.
    init_certificates = Core._init_certificates
    Core._init_certificates = lambda self: None
    try:
        client = WeChatPay(
            wechatpay_type=WeChatPayType.JSAPI,
            mchid=MCHID,
            private_key=merchant_key,
            cert_serial_no=MERCHANT_SERIAL,
            appid=APPID,
            apiv3_key=APIV3_KEY,
            notify_url=NOTIFY_URL,
            timeout=(5, 10),
            **kwargs,
        )
    finally:
        Core._init_certificates = init_certificates
    client._core._gate_way = BASE
    if not public_key_mode:
        client._core._init_certificates()  # raises if none could be had
    return client


def admin_pay(out_trade_no):
    request = urllib.request.Request(
        f"{BASE}/admin/pay",
        data=json.dumps({"out_trade_no": out_trade_no}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


print(f"wechatpayv3 {wechatpayv3.__version__} against {BASE}", flush=True)
pub = sdk(public_key_mode=True)
sdk_for_notifications = pub

# Certificate mode: the constructor's download, AES-GCM decryption and
# validity check all happened inside the SDK.
try:
    cert = sdk(public_key_mode=False)
    certs = cert._core._certificates
    same_key = bool(certs) and certs[0].public_key().public_numbers() == platform_private.public_key().public_numbers()
    check("certificate download (/v3/certificates, AEAD_AES_256_GCM)", same_key,
          f"{len(certs)} certificate(s), serial {certs[0].serial_number:X}" if certs else "none")
except Exception as e:  # noqa: BLE001 - any SDK failure is a failed check
    cert = None
    check("certificate download (/v3/certificates, AEAD_AES_256_GCM)", False, repr(e))

stamp = datetime.datetime.now().strftime("%H%M%S")
paid_no, closed_no = f"IOP{stamp}PAID0001", f"IOP{stamp}CLOSE001"

code, message = pub.pay(
    description="宿舍电费 · 3号楼402 · 20 kWh",
    out_trade_no=paid_no,
    amount={"total": 1060, "currency": "CNY"},
    payer={"openid": OPENID},
    attach="interop",
)
prepay_id = json.loads(message).get("prepay_id", "") if code == 200 else ""
check("JSAPI prepay", code == 200 and prepay_id.startswith("wx"), f"{code} {message}")

transaction_id = admin_pay(paid_no).get("transaction_id", "")
note = inbox.wait(lambda n: n[0] == "TRANSACTION.SUCCESS" and n[1].get("out_trade_no") == paid_no)
check(
    "payment notification verified and decrypted by the SDK",
    bool(note) and note[1].get("trade_state") == "SUCCESS" and note[1]["amount"]["total"] == 1060
    and note[1].get("transaction_id") == transaction_id,
    json.dumps(note[1], ensure_ascii=False) if note else "none arrived",
)
if note:
    _, _, headers, body = note
    tampered = body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCESSX"')
    check("tampered notification refused by the SDK", pub.callback(headers, tampered) is None)

code, message = pub.query(out_trade_no=paid_no)
check("query by out_trade_no", code == 200 and json.loads(message).get("trade_state") == "SUCCESS", f"{code} {message}")
by_id = cert or pub
code, message = by_id.query(transaction_id=transaction_id)
check(
    "query by transaction_id" + (" (certificate mode)" if cert else ""),
    code == 200 and json.loads(message).get("out_trade_no") == paid_no,
    f"{code} {message}",
)

code, message = pub.pay(
    description="宿舍电费 · 关闭测试",
    out_trade_no=closed_no,
    amount={"total": 530, "currency": "CNY"},
    payer={"openid": OPENID},
)
close_code, close_body = pub.close(out_trade_no=closed_no)
code, message = pub.query(out_trade_no=closed_no)
check(
    "close (204, signed empty answer) then query shows CLOSED",
    close_code == 204 and not close_body and code == 200 and json.loads(message).get("trade_state") == "CLOSED",
    f"close {close_code}, query {code} {message}",
)

refund_no = f"IOPR{stamp}0001"
code, message = pub.refund(
    out_refund_no=refund_no,
    amount={"refund": 500, "total": 1060, "currency": "CNY"},
    out_trade_no=paid_no,
    reason="interop",
)
check("refund", code == 200 and json.loads(message).get("out_refund_no") == refund_no, f"{code} {message}")
note = inbox.wait(lambda n: n[0] == "REFUND.SUCCESS" and n[1].get("out_refund_no") == refund_no)
check("refund notification verified and decrypted by the SDK", bool(note) and note[1].get("refund_status") == "SUCCESS",
      json.dumps(note[1], ensure_ascii=False) if note else "none arrived")
code, message = pub.query_refund(out_refund_no=refund_no)
check("refund query", code == 200 and json.loads(message).get("status") == "SUCCESS", f"{code} {message}")

today = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8))).strftime("%Y-%m-%d")
code, message = pub.trade_bill(bill_date=today)  # the SDK's default is tar_type=GZIP
if code == 200:
    meta = json.loads(message)
    file_code, packed = pub.download_bill(meta["download_url"])
    try:
        csv = gzip.decompress(packed).decode("utf-8-sig")
        ok = (
            file_code == 200
            and hashlib.sha1(gzip.decompress(packed)).hexdigest() == meta["hash_value"]
            and f"`{paid_no}" in csv
        )
        detail = f"{len(packed)} gzip bytes, {len(csv.splitlines())} lines, SHA-1 {meta['hash_value']}"
    except (OSError, ValueError) as e:
        ok, detail = False, f"{file_code}: {e!r}"
    check("trade bill (tar_type=GZIP), hash over the uncompressed file", ok, detail)
else:
    check("trade bill (tar_type=GZIP), hash over the uncompressed file", False, f"{code} {message}")

code, message = pub._core.request("/v3/no/such/api")
check("unknown route answers WeChat's signed JSON error", code == 404 and "code" in json.loads(message), f"{code} {message}")

server.shutdown()
print(f"client checks failed: {failures}", flush=True)
sys.exit(1 if failures else 0)
