// A building manager trips and restores a room (issue 14 items 4-5): the
// administrator creates a manager for 4号楼; the manager opens the live
// building view, selects the room of a meter, trips it with a reason
// (the confirmation names the count), waits until the grid shows the
// relay open and the command confirmed by status word 3 read back from
// the demo simulator, then closes it from the meter's page; the audit log
// shows both requests and both outcomes.
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";

const MANAGER = "relay-manager-e2e";
const PASSWORD = "relay manager e2e passphrase";
const METER = "201701010002"; // 4号楼
const WAIT_MS = 90_000;

await scenario("building manager relay control", async (newPage) => {
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

  const page = await newPage();
  await login(page, MANAGER, PASSWORD);
  await page.goto(base + "/staff/buildings");
  const links = page.locator("#buildings tbody a");
  check((await links.count()) === 1, "the manager's index lists their one building");
  check((await links.first().textContent()).includes("4号楼"), "and it is 4号楼");
  await Promise.all([page.waitForNavigation(), links.first().click()]);
  const buildingUrl = page.url();

  // The meter's cell.
  await page.goto(base + "/staff/meters?area=1&number=" + METER);
  const found = page.locator("#meters a", { hasText: METER });
  let meterHref = (await found.count()) ? await found.first().getAttribute("href") : null;
  if (!meterHref) {
    await page.goto(base + "/staff/meters");
    await page.fill("#mf-number", METER);
    await Promise.all([page.waitForNavigation(), page.click("#meter-find-number button")]);
    meterHref = await page.locator("#meters a", { hasText: METER }).first().getAttribute("href");
  }
  const meterId = meterHref.split("/").pop();
  await page.goto(buildingUrl);
  const cell = page.locator(`.room[data-meter="${meterId}"]`);
  check((await cell.count()) === 1, "the building view shows the meter's room");
  await page.waitForFunction((id) => {
    const c = document.querySelector(`.room[data-meter="${id}"]`);
    return c && c.classList.contains("online") && c.classList.contains("on");
  }, meterId, { timeout: WAIT_MS });
  await snap(page, "building");

  // Trip it with a reason; the confirmation names the count.
  await cell.locator("input[type=checkbox]").check();
  await page.selectOption("#bv-action", "trip");
  await page.fill("#bv-reason", "违规电器（e2e）");
  await Promise.all([page.waitForNavigation(), page.click("#bv-next")]);
  const sentence = (await page.textContent("#relay-count")).trim();
  check(sentence === "将对 1 个房间拉闸", `the confirmation names the count (${sentence})`);
  await snap(page, "confirm");
  await Promise.all([page.waitForNavigation(), page.click("#relay-go")]);
  check((await page.textContent("#bv-notice")).includes("1"), "back in the building view, one command queued");
  // The grid refreshes by itself until the relay is open and nothing is pending.
  await page.waitForFunction((id) => {
    const c = document.querySelector(`.room[data-meter="${id}"]`);
    return c && c.classList.contains("off") && c.querySelector(".pending").textContent === "";
  }, meterId, { timeout: WAIT_MS });
  check((await cell.locator(".relay").textContent()).includes("拉闸"), "the grid shows the room tripped");
  await snap(page, "tripped");

  // Its page: the command confirmed by the status word read back.
  await Promise.all([page.waitForNavigation(), cell.locator("a").click()]);
  const first = page.locator("#relay-history tbody tr").first();
  await page.waitForFunction(() => {
    const s = document.querySelector("#relay-history tbody tr td.state");
    return s && s.getAttribute("data-state") === "done";
  }, null, { timeout: WAIT_MS });
  check(/[0-9A-F]{4}H/.test(await first.locator(".read-back").textContent()), "the status word read back is shown");
  check((await page.textContent("#meter-relay")).includes("拉闸"), "the meter's panel shows the relay open");

  // Restore it from the meter's page.
  await page.selectOption("#relay-action", "close");
  await page.fill("#relay-reason", "已移除违规电器（e2e）");
  await Promise.all([page.waitForNavigation(), page.click("#relay-send")]);
  await page.waitForFunction(() => {
    const rows = document.querySelectorAll("#relay-history tbody tr");
    const s = rows.length >= 2 ? rows[0].querySelector("td.state") : null;
    return s && s.getAttribute("data-state") === "done";
  }, null, { timeout: WAIT_MS });
  await page.waitForFunction(() => document.getElementById("meter-relay").textContent.includes("合闸"), null, { timeout: WAIT_MS });
  await snap(page, "restored");

  // The audit log shows both, requested and confirmed, in the manager's name.
  for (const action of ["relay_requested", "relay_done"]) {
    await adminPage.goto(base + `/staff/audit?operator=${MANAGER}&action=${action}`);
    const rows = adminPage.locator("#audit tbody tr", { hasText: `meter:${meterId}` });
    check((await rows.count()) === 2, `the audit log shows both ${action} rows (${await rows.count()})`);
  }
  await snap(adminPage, "audit");
});
