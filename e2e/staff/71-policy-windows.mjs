// Issue 14 item 6, part 3 (no-cut and power-off hours): the administrator
// is refused hours whose start equals their end (with a reason, nothing
// stored), sets a building's power-off hours 23:30–06:00 Monday to Friday,
// sees them listed, clears them, and finds both changes in the audit log.
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";

await scenario("policy-windows", async (newPage) => {
  const page = await newPage();
  await login(page, admin, adminPassword);
  await page.goto(base + "/staff/policy");
  check(await page.locator("#policy-window").isVisible(), "the policy page has the hours form");
  const scopes = await page.locator("#pw-scope option").evaluateAll((os) => os.map((o) => o.value));
  const building = scopes.find((v) => v.startsWith("b:"));
  check(building, `the scope picker lists the area's buildings (${scopes.join(", ")})`);

  await page.selectOption("#pw-scope", building);
  await page.selectOption("#pw-kind", "power_off");
  await page.fill("#pw-start", "22:00");
  await page.fill("#pw-end", "22:00");
  await Promise.all([page.waitForLoadState("load"), page.click("#policy-window button[type=submit]")]);
  check(await page.locator("#policy-error").isVisible(), "start = end is refused with a reason");
  check((await page.locator("#policy-windows tbody tr").count()) === 0, "and nothing was stored");

  await page.selectOption("#pw-scope", building);
  await page.selectOption("#pw-kind", "power_off");
  await page.fill("#pw-start", "23:30");
  await page.fill("#pw-end", "06:00");
  for (const d of ["d5", "d6"]) await page.uncheck(`#pw-days input[name=${d}]`);
  await Promise.all([page.waitForURL(/done=window/), page.click("#policy-window button[type=submit]")]);
  check(await page.locator("#policy-notice").isVisible(), "the hours are saved");
  const row = page.locator(`#policy-windows tr[data-scope='${building}'][data-kind='power_off']`);
  check((await row.count()) === 1, "they are listed for the building");
  const when = await row.locator(".when").textContent();
  check(when.includes("周一至周五") && when.includes("23:30–06:00"), `as Monday to Friday overnight (${when.trim()})`);
  await snap(page, "policy-windows");

  await Promise.all([page.waitForURL(/done=window-cleared/), row.locator("button[type=submit]").click()]);
  check((await page.locator("#policy-windows tbody tr").count()) === 0, "the cleared hours are gone");

  await page.goto(base + "/staff/audit");
  const log = await page.locator("#audit").textContent();
  check(log.includes("policy_window_set") && log.includes("policy_window_cleared"), "both changes are in the audit log");
});
