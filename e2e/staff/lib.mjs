// Shared by the staff console's browser tests (e2e/staff/*.mjs, run by
// e2e/staff.sh): a desktop Chromium, login, checks that fail the script, and
// screenshots. Each script is one scenario against the running demo.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const base = process.env.E2E_BASE;
export const admin = process.env.E2E_ADMIN || "demo-admin";
export const adminPassword = process.env.E2E_ADMIN_PASSWORD;
export const dbKind = process.env.E2E_DB_KIND || "sqlite";
if (!base || !adminPassword) {
  console.error("E2E_BASE and E2E_ADMIN_PASSWORD must be set (run e2e/staff.sh)");
  process.exit(2);
}

/** Bound of one step. */
export const STEP_MS = 15_000;

const artifacts = join(dirname(fileURLToPath(import.meta.url)), "..", "artifacts");
mkdirSync(artifacts, { recursive: true });
const prefix = process.env.E2E_SHOT_PREFIX || "staff";
let shot = 0;

const failures = [];

/** A check that stops the scenario when it fails. */
export function check(cond, what) {
  if (!cond) {
    failures.push(what);
    throw new Error("check failed: " + what);
  }
  console.log("  ok  " + what);
}

/** A full-page screenshot in e2e/artifacts/. */
export async function snap(page, name) {
  shot += 1;
  const file = join(artifacts, `${prefix}-${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

/** A desktop Chromium; returns { browser, newPage() } — each page its own context (own cookies). */
export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.E2E_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
    timeout: STEP_MS,
  });
  async function newPage(locale = "zh-CN") {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale });
    context.setDefaultTimeout(STEP_MS);
    const page = await context.newPage();
    page.on("pageerror", (e) => failures.push("page error: " + e.message));
    page.on("console", (m) => {
      if (/Content.Security.Policy/i.test(m.text())) failures.push(`CSP violation: ${m.text()}`);
    });
    page.on("dialog", async (d) => {
      failures.push(`a browser ${d.type()} dialog opened: ${d.message()}`);
      await d.dismiss();
    });
    return page;
  }
  return { browser, newPage };
}

/** Logs in at /staff/login and checks that the console opened. */
export async function login(page, name, password) {
  await page.goto(base + "/staff/login");
  await page.fill('input[name="name"]', name);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
  check(!page.url().includes("/staff/login"), `${name} logged in`);
}

/** Runs one scenario: prints failures and sets the exit code. */
export async function scenario(name, body) {
  console.log(`scenario: ${name} (${dbKind})`);
  const { browser, newPage } = await launch();
  try {
    await body(newPage);
  } catch (e) {
    if (!failures.length) failures.push(String(e && e.stack ? e.stack : e));
    else console.error(e);
  } finally {
    await browser.close();
  }
  if (failures.length) {
    console.error(`FAILED ${name}:\n  ` + failures.join("\n  "));
    process.exit(1);
  }
  console.log(`passed: ${name}`);
}
