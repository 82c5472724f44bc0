// Reports and exports (issue 14 item 7): a cashier sells at the counter so
// today's sales are not empty (the demo's history has readings, no orders);
// the administrator opens the sales report, sees its chart and totals,
// downloads the XLSX (a real browser download) and has it read back with
// calamine by `dormwatt report --read FILE --json` (the crate that reads
// imports): its amount and order totals equal the page's, its days are
// dates and its amounts numbers. The CSV export's totals equal the page's
// too, and a backwards range is refused with its reason and no file.
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CASHIER = "cashier-reports-e2e";
const PASSWORD = "reports e2e passphrase";
const METER = "201701010001";

/** `12.34` as hundredths. */
const cents = (s) => {
  const [a, b = "00"] = s.trim().split(".");
  return Number(a) * 100 + Number(b.padEnd(2, "0").slice(0, 2));
};

await scenario("sales report, XLSX and CSV exports", async (newPage) => {
  const adminPage = await newPage();
  await login(adminPage, admin, adminPassword);
  await adminPage.goto(base + "/staff/operators");
  await adminPage.fill("#op-name", CASHIER);
  await adminPage.selectOption("#op-role", "cashier");
  await adminPage.fill("#op-password", PASSWORD);
  await adminPage.fill("#op-areas", "cuc");
  await Promise.all([adminPage.waitForNavigation(), adminPage.click("#operator-new button[type=submit]")]);
  check((await adminPage.textContent("#operators-notice")).includes(CASHIER), "the administrator created a cashier");

  const cashier = await newPage();
  await login(cashier, CASHIER, PASSWORD);
  await cashier.goto(base + "/staff/shifts");
  await Promise.all([cashier.waitForNavigation(), cashier.click("#shift-open button")]);
  await cashier.goto(base + "/staff/counter");
  await cashier.fill("#cf-number", METER.slice(0, 10));
  const hit = cashier.locator("#cf-number-list a", { hasText: METER });
  await hit.first().waitFor();
  await Promise.all([cashier.waitForNavigation(), hit.first().click()]);
  await cashier.fill("#cs-kwh", "8");
  await cashier.check("input[name=tender][value=cash]");
  await Promise.all([cashier.waitForNavigation(), cashier.click("#counter-submit")]);
  check(/\/staff\/counter\/receipts\/\d+$/.test(cashier.url()), "the cashier sold 8 kWh");

  const page = adminPage;
  await page.goto(base + "/staff/reports");
  check(await page.isVisible("a[href='/staff/reports/sales']"), "the reports index lists the sales report");
  await Promise.all([page.waitForNavigation(), page.click("a[href='/staff/reports/sales']")]);
  check(await page.isVisible("#report-chart"), "the sales report draws its chart");
  const total = async (key) => (await page.textContent(`#report-total td[data-key=${key}]`)).trim();
  const amount = await total("amount_yuan");
  const orders = await total("orders");
  check(cents(amount) > 0 && Number(orders) >= 1, `the page totals ${orders} orders, ¥${amount}`);
  const cashiers = await page.locator("#report tbody").textContent();
  check(cashiers.includes(CASHIER), "the counter sale is listed under its cashier");
  await snap(page, "sales");

  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#report-xlsx")]);
  check(/^dormwatt-sales-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.xlsx$/.test(download.suggestedFilename()), `the XLSX downloads (${download.suggestedFilename()})`);
  const file = join(mkdtempSync(join(tmpdir(), "dw-reports-")), "sales.xlsx");
  await download.saveAs(file);
  const back = JSON.parse(execFileSync(process.env.E2E_BIN, ["report", "--read", file, "--json"], { encoding: "utf8" }));
  const col = (header) => back.columns.find((c) => c.header === header);
  check(col("日期").cells === "dates", "its days are dates");
  check(col("金额（元）").cells === "numbers" && col("笔数").cells === "numbers", "its amounts and counts are numbers");
  check(Math.round(col("金额（元）").sum * 100) === cents(amount), `its amount total equals the page's (${col("金额（元）").sum})`);
  check(col("笔数").sum === Number(orders), "its order total equals the page's");

  const csvHref = await page.getAttribute("#report-csv", "href");
  const csv = await page.context().request.get(base + csvHref);
  check(csv.status() === 200, "the CSV export downloads");
  const body = await csv.text();
  const lines = body.replace(/^\uFEFF/, "").split(/\r?\n/).filter((l) => l);
  const header = lines[0].split(",");
  const at = header.indexOf("金额（元）");
  check(at >= 0, `the CSV has its header (${lines[0]})`);
  const sum = lines.slice(1).reduce((s, l) => s + cents(l.split(",")[at]), 0);
  check(sum === cents(amount), "the CSV's amount total equals the page's");

  // The demo's history has usage: the usage report charts it by building.
  await page.goto(base + "/staff/reports/usage");
  check(await page.isVisible("#report-chart") && cents(await total("usage_kwh")) > 0, "the usage report charts the demo's history");
  await snap(page, "usage");
  await page.goto(base + "/staff/reports/read-success");
  check(await page.isVisible("#report-range"), "the read-success report opens");
  await snap(page, "read-success");

  const bad = await page.context().request.get(base + "/staff/reports/sales.xlsx?from=2026-12-10&to=2026-12-01");
  check(bad.status() === 400 && !bad.headers()["content-disposition"], "a backwards range is a 400 with no file");
  await page.goto(base + "/staff/reports/sales?from=2026-12-10&to=2026-12-01");
  check((await page.textContent("#report-error")).includes("结束日期早于开始日期"), "and the page says why");
});
