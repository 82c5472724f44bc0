// Issue 14 items 1–2: the administrator downloads the meter template,
// uploads a 500-meter XLSX with three bad rows, the dry run lists exactly
// those three with reasons, the fixed file is dry-run and applied, and the
// head-end reads the new meters without a restart (hot reload; the demo's
// simulator follows the registry).
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const bin = process.env.E2E_BIN;
const dbUrl = process.env.E2E_DB_URL;
if (!bin || !dbUrl) {
  console.error("E2E_BIN and E2E_DB_URL must be set (run e2e/staff.sh)");
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), "dw-e2e-import-"));

/** `dormwatt import …` against the demo's database: stdout as bytes. */
function dormwatt(args) {
  return execFileSync(bin, ["--database-url", dbUrl, "import", ...args], { maxBuffer: 64 << 20 });
}

/** The registry's free bus places filled with 500 meters; `bad` of them broken. */
function meters(bad) {
  const file = join(dir, `meters-${bad}.xlsx`);
  writeFileSync(file, dormwatt(["--example", "meters", "--rows", "500", "--bad", String(bad), "--format", "xlsx"]));
  return file;
}

/** Uploads `file` for a dry run on the import page. */
async function dryRun(page, file) {
  await page.goto(base + "/staff/import");
  await page.setInputFiles("#import-file", file);
  await Promise.all([page.waitForLoadState("load"), page.click("#import-upload button[type=submit]")]);
}

await scenario("registry import", async (newPage) => {
  const page = await newPage();
  await login(page, admin, adminPassword);
  await Promise.all([page.waitForURL(/\/staff\/import$/), page.click("nav a[href='/staff/import']")]);
  check(true, "the import page opens from the navigation");

  // The meter template, downloaded as XLSX and read back by the importer.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#template-meters-xlsx")]);
  const template = join(dir, "template.xlsx");
  await download.saveAs(template);
  const bytes = readFileSync(template);
  check(bytes.subarray(0, 4).toString("latin1") === "PK\x03\x04", "the template is an XLSX workbook");
  let answer;
  try {
    answer = JSON.parse(dormwatt([template, "--dry-run", "--json"]).toString());
  } catch (e) {
    answer = JSON.parse(e.stdout.toString()); // exit 1 when an example row fails here
  }
  check(answer.rows === 3, `the template has its example rows (${answer.rows})`);

  // Generated before either upload: the two files differ only in the bad rows.
  const badFile = meters(3);
  const goodFile = meters(0);
  const csv = dormwatt(["--example", "meters", "--rows", "500", "--bad", "0", "--format", "csv"]).toString();
  const firstRow = csv.replace(/^\uFEFF/, "").split("\r\n")[1];

  await dryRun(page, badFile);
  const rows = page.locator("#import-errors tbody tr");
  check((await rows.count()) === 3, `the dry run lists three failing rows (${await rows.count()})`);
  const text = (await page.locator("#import-errors").textContent()) || "";
  check(/duplicate of row/.test(text), "one is a repeated address");
  check(/12 digits/.test(text), "one is a malformed address");
  check(/unknown building/.test(text), "one is an unknown building");
  check((await page.locator("#import-summary").textContent()).includes("497"), "497 rows pass");
  check((await page.locator("#import-apply").count()) === 0, "nothing can be applied while rows fail");
  await snap(page, "dry-run-errors");

  await dryRun(page, goodFile);
  check((await page.locator("#import-errors").count()) === 0, "the fixed file has no failing row");
  await snap(page, "dry-run-ok");
  await Promise.all([page.waitForURL(/\/staff\/import\?imported=500/), page.click("#import-apply button")]);
  check((await page.locator("#import-notice").textContent()).includes("500"), "500 meters imported");
  await snap(page, "imported");

  // A new meter's page: the head-end reads it without a restart. The
  // first imported row, from the same file as CSV (written before the apply).
  const [, area, building] = firstRow.split(",");
  const address = firstRow.split(",")[0];
  await page.goto(base + "/staff/registry");
  await page.selectOption("#registry-building", { label: `${area} · ${building}` });
  await Promise.all([page.waitForLoadState("load"), page.click("#registry-filter button")]);
  const row = page.locator(`#meter-${address}`);
  check((await row.count()) === 1, `imported meter ${address} is listed in the registry under ${building}`);
  await snap(page, "registry");
  const action = await row.locator("form").first().getAttribute("action");
  const id = action.split("/")[4];
  let lastRead = "—";
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    await page.goto(`${base}/staff/meters/${id}`);
    lastRead = ((await page.locator("#meter-last-read").textContent()) || "").trim();
    if (lastRead !== "—" && lastRead !== "") break;
    await page.waitForTimeout(2000);
  }
  check(lastRead !== "—" && lastRead !== "", `the head-end read imported meter ${address} (${lastRead})`);
  await snap(page, "imported-meter-read");
});
