// Issue 14 item 6 (campus policy, the free monthly allowance): the
// administrator gives the small second area 10 kWh per room per month on
// /staff/policy, runs this month's allowance from the console twice — each
// room is credited once (the page says so) — and a demo meter of the area
// receives it (its balance on the meter page rises by about 10 kWh).
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";

const METER = process.env.E2E_SUBSIDY_METER || "201702010001";

/** The balance (kWh) on a meter's page. */
async function balance(page, href) {
  await page.goto(base + href);
  const t = (await page.locator("#meter-balance").textContent()).trim();
  return parseFloat(t);
}

await scenario("subsidy", async (newPage) => {
  const page = await newPage();
  await login(page, admin, adminPassword);

  // The meter's page and its balance before.
  await page.goto(base + "/staff/meters?q=" + METER);
  if (!/\/staff\/meters\/\d+$/.test(page.url())) {
    await Promise.all([page.waitForURL(/\/staff\/meters\/\d+$/), page.click(`#meters a:text("${METER}")`)]);
  }
  const meterHref = new URL(page.url()).pathname;
  let before = NaN;
  for (let i = 0; i < 60 && Number.isNaN(before); i++) {
    before = await balance(page, meterHref);
    if (Number.isNaN(before)) await page.waitForTimeout(1000);
  }
  check(!Number.isNaN(before), `the meter's balance is read (${before})`);

  await page.goto(base + "/staff/policy");
  const areas = await page.locator("#p-area option").evaluateAll((os) => os.map((o) => o.value));
  const second = areas[areas.length - 1];
  await page.selectOption("#p-area", second);
  await Promise.all([page.waitForLoadState("load"), page.click("#policy-area button[type=submit]")]);
  await page.selectOption("#ps-scope", "area");
  await page.fill("#ps-kwh", "10");
  await Promise.all([page.waitForURL(/done=subsidy/), page.click("#subsidy-set button[type=submit]")]);
  check((await page.locator("#subsidy-scopes tr[data-scope=area] .allowance").textContent()).includes("10.00 kWh"), "the area's allowance is 10 kWh");

  await Promise.all([page.waitForLoadState("load"), page.click("#subsidy-run button[type=submit]")]);
  const first = (await page.locator("#policy-notice").textContent()).trim();
  const m = first.match(/(\d+) 间房间中本次发放 (\d+) 间/);
  check(m, `the page says what the run did: ${first}`);
  const rooms = Number(m[1]);
  check(rooms > 0, "the area has rooms with an allowance");
  await snap(page, "subsidy-run");

  await Promise.all([page.waitForLoadState("load"), page.click("#subsidy-run button[type=submit]")]);
  const again = (await page.locator("#policy-notice").textContent()).trim();
  check(again.includes(`${rooms} 间房间中本次发放 0 间`), `a second run credits nobody: ${again}`);
  const issued = await page.locator("#subsidy-issued tbody tr .rooms").evaluateAll((cs) => cs.map((c) => Number(c.textContent)));
  check(issued.reduce((a, b) => a + b, 0) === rooms, `each room credited once (${issued.join("+")} = ${rooms})`);

  // The head-end delivers it: the balance rises by about the allowance.
  let after = before;
  for (let i = 0; i < 90 && after < before + 9; i++) {
    await page.waitForTimeout(1000);
    after = await balance(page, meterHref);
  }
  check(after >= before + 9, `the meter's balance rose by the allowance (${before} → ${after})`);
  await snap(page, "subsidy-meter");

  await page.goto(base + "/staff/audit?action=subsidy_run");
  check((await page.locator("#audit").textContent()).includes("subsidy"), "the audit log shows the run");
});
