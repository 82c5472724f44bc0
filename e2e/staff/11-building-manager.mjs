// A building manager sees their building's meters only (issue 13): the
// administrator creates a manager for one building; they open a meter of
// it, get 403 for a meter of another building, and the audit log shows the
// refusal to the administrator.
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";

const MANAGER = "manager-e2e";
const PASSWORD = "manager e2e passphrase";
const MINE = "201701010001"; // 4号楼
const OTHER = "201701020001"; // 7号楼, same area

async function meterLink(page, number) {
  await page.goto(base + "/staff/meters");
  await page.fill("#mf-number", number);
  await Promise.all([page.waitForNavigation(), page.click("#meter-find-number button")]);
  const link = page.locator("#meters a", { hasText: number });
  return link.count().then((n) => (n ? link.first().getAttribute("href") : null));
}

await scenario("building manager scope", async (newPage) => {
  const adminPage = await newPage();
  await login(adminPage, admin, adminPassword);
  await adminPage.goto(base + "/staff/operators");
  await adminPage.fill("#op-name", MANAGER);
  await adminPage.selectOption("#op-role", "building_manager");
  await adminPage.fill("#op-password", PASSWORD);
  await adminPage.fill("#op-areas", "cuc");
  await adminPage.fill("#op-buildings", "4号楼");
  await Promise.all([adminPage.waitForNavigation(), adminPage.click("#operator-new button[type=submit]")]);
  check((await adminPage.textContent("#operators-notice")).includes(MANAGER), "the administrator created the building manager");
  const otherHref = await meterLink(adminPage, OTHER);
  check(otherHref && /^\/staff\/meters\/\d+$/.test(otherHref), "the administrator finds the other building's meter");

  const page = await newPage();
  await login(page, MANAGER, PASSWORD);
  const mineHref = await meterLink(page, MINE);
  check(mineHref !== null, "the manager finds a meter of their building");
  await page.goto(base + mineHref);
  check((await page.textContent("#meter-number")).trim() === MINE, "the manager opens it");
  await snap(page, "own-meter");
  check((await meterLink(page, OTHER)) === null, "the other building's meter is not in the manager's results");
  const resp = await page.goto(base + otherHref);
  check(resp.status() === 403, `the other building's meter is refused (${resp.status()})`);
  await snap(page, "refused");

  await adminPage.goto(base + "/staff/audit?action=forbidden&operator=" + MANAGER);
  const rows = await adminPage.locator("table tbody tr", { hasText: otherHref }).count();
  check(rows >= 1, "the audit log shows the refusal row");
  await snap(adminPage, "audit");
});
