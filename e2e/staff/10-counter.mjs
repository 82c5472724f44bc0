// Counter sale and shift cash-up (issue 13 item 3): the administrator
// creates a cashier; the cashier opens a shift, finds a reference meter by
// type-ahead, sells 30 kWh in cash, prints the receipt (80 mm wide in print
// media, the console frame hidden), sees the delivery complete, closes the
// shift with the cash counted, and the cash-up shows 30 kWh and its amount.
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";

const CASHIER = "cashier-e2e";
const PASSWORD = "counter e2e passphrase";
const METER = "201701010001";
/** 80 mm at 96 px per inch. */
const RECEIPT_PX = (80 / 25.4) * 96;

await scenario("counter sale, receipt and cash-up", async (newPage) => {
  const adminPage = await newPage();
  await login(adminPage, admin, adminPassword);
  await adminPage.goto(base + "/staff/operators");
  await adminPage.fill("#op-name", CASHIER);
  await adminPage.selectOption("#op-role", "cashier");
  await adminPage.fill("#op-password", PASSWORD);
  await adminPage.fill("#op-areas", "cuc");
  await Promise.all([adminPage.waitForNavigation(), adminPage.click("#operator-new button[type=submit]")]);
  check((await adminPage.textContent("#operators-notice")).includes(CASHIER), "the administrator created the cashier");

  const page = await newPage();
  await login(page, CASHIER, PASSWORD);
  await page.goto(base + "/staff/counter");
  check(await page.isVisible("#counter-no-shift"), "without a shift the counter asks to open one");
  await page.goto(base + "/staff/shifts");
  await Promise.all([page.waitForNavigation(), page.click("#shift-open button")]);
  const shiftUrl = page.url();
  check(/\/staff\/shifts\/\d+$/.test(shiftUrl), "the shift opened");

  await page.goto(base + "/staff/counter");
  check(await page.isVisible("#counter-shift"), "the counter shows the open shift");
  await page.fill("#cf-number", METER.slice(0, 10));
  const hit = page.locator("#cf-number-list a", { hasText: METER });
  await hit.first().waitFor();
  check(true, "the type-ahead suggests the meter");
  await Promise.all([page.waitForNavigation(), hit.first().click()]);
  check((await page.textContent("#meter-number")).trim() === METER, "the meter is chosen");
  check((await page.textContent("#meter-balance")).includes("kWh"), "its balance is shown");
  await page.fill("#cs-kwh", "30");
  await page.check("input[name=tender][value=cash]");
  await snap(page, "counter");
  await Promise.all([page.waitForNavigation(), page.click("#counter-submit")]);
  check(/\/staff\/counter\/receipts\/\d+$/.test(page.url()), "the sale shows its receipt");

  const text = async (sel) => (await page.textContent(sel)).trim();
  const orderNo = await text("#receipt-no");
  check(orderNo.length >= 8, `the receipt has the order number (${orderNo})`);
  check((await text("#receipt-meter")) === METER, "the receipt has the meter number");
  check((await text("#receipt-room")).length > 0, "the receipt has the room");
  check((await text("#receipt-kwh")) === "30", "the receipt has 30 kWh");
  const amount = await text("#receipt-amount");
  check(/^¥\d+\.\d\d$/.test(amount), `the receipt has the amount (${amount})`);
  check((await text("#receipt-channel")).includes("现金"), "the receipt says cash");
  check((await text("#receipt-operator")) === CASHIER, "the receipt names the cashier");
  check(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(await text("#receipt-time")), "the receipt has the time");
  check((await page.getAttribute("#receipt-qr", "src")).startsWith("data:image/svg+xml,"), "the receipt has the QR code");

  await page.emulateMedia({ media: "print" });
  const box = await page.locator("#receipt").boundingBox();
  check(Math.abs(box.width - RECEIPT_PX) <= 3, `in print the receipt is 80 mm wide (${box.width.toFixed(1)} px)`);
  check(!(await page.isVisible(".staff-nav")) && !(await page.isVisible(".staff-top")), "in print the console frame is hidden");
  check(!(await page.isVisible("#receipt-print")), "in print the buttons are hidden");
  await snap(page, "receipt-print");
  await page.emulateMedia({ media: "screen" });

  await page.waitForFunction(
    () => document.getElementById("receipt-live").getAttribute("data-state") === "completed",
    null,
    { timeout: 120_000, polling: 500 },
  );
  check((await text("#receipt-state")) === "已完成", "the receipt follows the delivery to completed");
  await snap(page, "receipt-completed");

  await page.goto(shiftUrl);
  await page.fill("#sc-counted", amount.slice(1));
  await Promise.all([page.waitForNavigation(), page.click("#shift-close button")]);
  const cells = (await page.locator("#shift-total td").allTextContents()).map((c) => c.trim());
  check(cells[1] === "1" && cells[2] === "30.00" && cells[3] === amount, `the cash-up shows 1 sale, 30 kWh and ${amount} (${cells.join(" | ")})`);
  const cash = (await page.locator("#shift-totals tbody tr").first().locator("td").allTextContents()).map((c) => c.trim());
  check(cash[0] === "现金" && cash[2] === "30.00" && cash[3] === amount, `the cash line has it (${cash.join(" | ")})`);
  check((await text("#shift-expected")) === amount, "the expected cash is the sale's amount");
  check((await text("#shift-difference")) === "¥0.00", "no difference");
  check((await page.locator("#shift-close").count()) === 0, "the closed shift has no close form");
  await snap(page, "cash-up");
});
