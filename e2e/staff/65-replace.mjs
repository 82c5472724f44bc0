// Issue 14 item 3: the administrator replaces a room's meter from its page.
// A bad number is refused with the reason and changes nothing; the
// replacement lands on the new meter's page (the energy carried, a link to
// its predecessor); the old meter's page stays readable and names its
// successor; the audit log shows the replacement.
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";

const old = process.env.E2E_REPLACE_METER || "201701010029";
const fresh = `2099${String(Date.now() % 100000000).padStart(8, "0")}`;

await scenario("replace", async (page0) => {
  const page = await page0();
  await login(page, admin, adminPassword);
  await page.goto(base + "/staff/meters?q=" + old);
  if (!/\/staff\/meters\/\d+$/.test(page.url())) {
    await Promise.all([page.waitForURL(/\/staff\/meters\/\d+$/), page.click(`#meters a:text("${old}")`)]);
  }
  const oldPage = page.url();
  await Promise.all([page.waitForURL(/\/replace$/), page.click("#meter-replace")]);
  const form = page.url();
  // The head-end must have read the old meter's balance first.
  for (let i = 0; i < 60 && (await page.locator("#replace-balance").textContent()).includes("—"); i++) {
    await page.waitForTimeout(1000);
    await page.goto(form);
  }
  check(!(await page.locator("#replace-balance").textContent()).includes("—"), "the old meter's balance is read");
  await snap(page, "replace-form");

  // A malformed number: refused with the reason, nothing replaced.
  await page.fill("#rp-address", "12345");
  await page.fill("#rp-reason", "电表烧坏");
  await page.check("#rp-confirm");
  await page.evaluate(() => document.querySelector("#rp-address").removeAttribute("maxlength"));
  await Promise.all([page.waitForLoadState("load"), page.click("#rp-submit")]);
  check((await page.locator("#replace-error").textContent()).includes("12 位"), "a malformed number is refused with the reason");
  await page.goto(oldPage);
  check((await page.locator("#meter-replaced-by").count()) === 0, "the old meter is still in service");

  await page.goto(form);
  await page.fill("#rp-address", fresh);
  await page.fill("#rp-reason", "电表烧坏，已更换");
  await page.check("#rp-confirm");
  await Promise.all([page.waitForURL(/\/staff\/meters\/\d+\?replaced=/), page.click("#rp-submit")]);
  check((await page.locator("#meter-number").textContent()).trim() === fresh, "the new meter's page opens");
  check((await page.locator("#meter-replaced-notice").textContent()).includes("kWh"), "it names the energy carried over");
  check((await page.locator("#meter-replaces a").textContent()).trim() === old, "it links to its predecessor");
  await snap(page, "replaced-new-meter");

  await page.click("#meter-replaces a");
  check((await page.locator("#meter-replaced-by a").textContent()).trim() === fresh, "the old meter's page names its successor");
  check((await page.locator("#meter-replace").count()) === 0, "a retired meter offers no second replacement");
  await snap(page, "replaced-old-meter");

  await page.goto(base + "/staff/audit?action=meter_replaced");
  check((await page.locator("#audit").textContent()).includes(old), "the audit log shows the replacement");
});
