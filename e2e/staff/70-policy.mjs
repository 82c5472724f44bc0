// Issue 14 item 6 (campus policy, prices): the administrator opens the
// campus policy page from the navigation, is refused a price for today
// (an order already created keeps its price, and so does every instant
// that has begun), schedules a building's price from tomorrow, sees it
// upcoming with the building's next change, withdraws it, and finds both
// changes in the audit log.
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";

/** A campus-local (Asia/Shanghai) date `days` from now, YYYY-MM-DD. */
function campusDate(days) {
  const d = new Date(Date.now() + days * 86_400_000);
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(d);
}

await scenario("policy", async (newPage) => {
  const page = await newPage();
  await login(page, admin, adminPassword);
  await Promise.all([page.waitForLoadState("load"), page.click("nav a[href='/staff/policy']")]);
  check(await page.locator("#policy-scopes").isVisible(), "the policy page shows the prices in force");
  const scopes = await page.locator("#pp-scope option").evaluateAll((os) => os.map((o) => o.value));
  const building = scopes.find((v) => v.startsWith("b:"));
  check(building, `the scope picker lists the area's buildings (${scopes.join(", ")})`);
  check((await page.locator("#pp-from").getAttribute("min")) === campusDate(1), "the first day offered is tomorrow");

  // Today is refused by the server even when the browser's check is bypassed.
  await page.selectOption("#pp-scope", building);
  await page.fill("#pp-price", "0.60");
  await page.locator("#pp-from").evaluate((el, today) => {
    el.removeAttribute("min");
    el.value = today;
  }, campusDate(0));
  await Promise.all([page.waitForLoadState("load"), page.click("#policy-price button[type=submit]")]);
  check(await page.locator("#policy-error").isVisible(), "a price for today is refused with a reason");
  check((await page.locator("#policy-schedule tbody tr").count()) === 0, "and nothing was scheduled");

  const tomorrow = campusDate(1);
  await page.selectOption("#pp-scope", building);
  await page.fill("#pp-price", "0.60");
  await page.fill("#pp-from", tomorrow);
  await Promise.all([page.waitForURL(/done=price/), page.click("#policy-price button[type=submit]")]);
  check(await page.locator("#policy-notice").isVisible(), "the price is scheduled");
  const row = page.locator("#policy-schedule tbody tr.upcoming");
  check((await row.count()) === 1, "it is listed as upcoming");
  const next = await page.locator(`#policy-scopes tr[data-scope='${building}'] .price-next`).textContent();
  check(next.includes(tomorrow) && next.includes("0.60"), `the building's next change is shown (${next.trim()})`);
  await snap(page, "policy-upcoming");

  await Promise.all([page.waitForURL(/done=withdrawn/), row.locator("button[type=submit]").click()]);
  check((await page.locator("#policy-schedule tbody tr").count()) === 0, "the withdrawn price is gone");

  await page.goto(base + "/staff/audit");
  const log = await page.locator("#audit").textContent();
  check(log.includes("price_scheduled") && log.includes("price_withdrawn"), "both changes are in the audit log");
});
