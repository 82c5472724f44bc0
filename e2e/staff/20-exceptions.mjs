// Issue 13, "an order refused by the meter appears in the exceptions queue
// and is refunded there, after which check-ledger passes".
//
// The refusal is real: the simulated meter refuses a recharge that would
// take it above its own 500 kWh hoarding limit. dormwatt refuses such an
// order before payment, so the situation a stale reading produces in the
// field (the meter holds more than dormwatt last read) is made by raising
// dormwatt's copy of this one meter's limit in the database; everything
// after that goes through the pages: a student buys 500 kWh and pays in the
// sandbox, the head-end delivers, the meter refuses, the order shows in
// /staff/exceptions with its reason, the administrator refunds it there,
// the refund worker pays it back through the sandbox, and check-ledger
// passes.
import { execFileSync } from "node:child_process";
import { scenario, login, check, snap, base, admin, adminPassword, dbKind } from "./lib.mjs";

const meter = process.env.E2E_REFUSING_METER || "201701020015";
const dbUrl = process.env.E2E_DB_URL;
const bin = process.env.E2E_BIN;
/** Bound of the waits for the head-end (delivery) and the refund worker (30 s interval in the demo). */
const WAIT_MS = 120_000;

function sql(statement) {
  if (dbKind === "postgres") {
    execFileSync("psql", [dbUrl, "-qc", statement], { stdio: "pipe" });
  } else {
    const path = dbUrl.replace(/^sqlite:\/\//, "").replace(/\?.*$/, "");
    execFileSync("sqlite3", ["-cmd", ".timeout 10000", path, statement], { stdio: "pipe" });
  }
}

/** Reloads `url` until `pred(page)` holds, at most WAIT_MS. */
async function until(page, url, pred, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    await page.goto(url);
    if (await pred(page)) return;
    if (Date.now() > deadline) check(false, what + " (waited " + WAIT_MS / 1000 + " s)");
    await page.waitForTimeout(1000);
  }
}

await scenario("exceptions: a refused recharge is refunded from the queue", async (newPage) => {
  check(dbUrl && bin, "E2E_DB_URL and E2E_BIN are set");
  sql(`update meter set hoard_limit_centikwh = 10000000 where address = '${meter}'`);

  console.log("1. a student buys 500 kWh for a meter that already holds energy, and pays");
  const student = await newPage();
  await student.goto(base + "/");
  await student.fill("#demo-name", "退款同学");
  await Promise.all([student.waitForURL(/\/bind\?first=1/), student.click("#demo-new")]);
  await student.fill("#meter", meter);
  await student.fill("#password", "000000");
  await Promise.all([student.waitForURL(/\/overview\?bound=1/), student.click("#bind-submit")]);
  const remaining = parseFloat(((await student.locator("#remaining").textContent()) || "").replace(/[^0-9.]/g, ""));
  if (Number.isNaN(remaining)) {
    // Not polled yet; the simulated meters start with a balance (crates/sim).
    console.log("  (the meter's balance is not read yet; the simulated meter starts with one)");
  } else {
    check(remaining > 0, `the meter holds energy (${remaining} kWh), so 500 kWh more is above its limit`);
  }
  await Promise.all([student.waitForURL(/\/buy\/order/), student.click("#link-buy")]);
  await student.check("#kwh-other");
  await student.fill("#other", "500");
  await Promise.all([student.waitForURL(/\/orders\/\d+\/pay/), student.click("#order-submit")]);
  const orderId = student.url().match(/\/orders\/(\d+)\/pay/)[1];
  await Promise.all([student.waitForLoadState("load"), student.click("#pay-confirm")]);
  await Promise.all([student.waitForLoadState("load"), student.click("button.pay")]);
  check(/支付成功/.test(await student.content()), "the sandbox takes the payment");

  console.log("2. the meter refuses; the order appears in the exceptions queue with its reason");
  const page = await newPage();
  await login(page, admin, adminPassword);
  check(
    (await page.locator('nav a[href="/staff/exceptions"]').count()) === 1 &&
      (await page.locator('nav a[href="/staff/orders"]').count()) === 1,
    "the navigation has orders and exceptions",
  );
  const row = `#exceptions tr:has(a[href="/staff/orders/${orderId}"])`;
  await until(
    page,
    base + "/staff/exceptions",
    async (p) => (await p.locator(`${row} .reason-recharge_refused`).count()) === 1,
    "the refused order is in the queue",
  );
  const reason = (await page.locator(`${row} .reason-recharge_refused`).textContent()) || "";
  check(/电表拒绝充值/.test(reason), `the reason is shown (${reason.trim().slice(0, 80)})`);
  check((await page.locator(`${row} button.refund`).count()) === 1, "the refund button is offered (no energy on the meter)");
  await snap(page, "queue");

  console.log("3. the administrator refunds it there");
  await Promise.all([page.waitForURL(/done=refund/), page.click(`${row} button.refund`)]);
  check(/已开始退款/.test((await page.locator("#exc-notice").textContent()) || ""), "the refund is confirmed");
  check((await page.locator(row).count()) === 0, "the order left the queue");
  await until(
    page,
    base + `/staff/orders/${orderId}`,
    async (p) => (await p.locator("#order-state.state-refunded").count()) === 1,
    "the order is refunded",
  );
  const story = (await page.locator("#order-story").textContent()) || "";
  check(/recharge_refused/.test(story) && /order_refund_requested/.test(story), "the story has the refusal and the refund");
  const ledger = (await page.locator("#order-ledger").textContent()) || "";
  check(/refund/.test(ledger) && /energy_voided/.test(ledger), "the story's ledger has the refund rows");
  await snap(page, "refunded");

  console.log("4. check-ledger passes");
  let out = "";
  let ok = true;
  try {
    out = execFileSync(bin, ["--database-url", dbUrl, "check-ledger"], { encoding: "utf8", stdio: "pipe" });
  } catch (e) {
    ok = false;
    out = String(e.stdout || "") + String(e.stderr || "");
  }
  console.log("  " + out.trim().split("\n").join("\n  "));
  check(ok, "check-ledger passes after the refund");
});
