// Issue 13 items 1–2: the administrator creates an auditor; the auditor
// reads, searches and exports the audit log, but no page they can open has
// a write form (only logout and their own password), and a crafted POST
// with their valid anti-CSRF token to each write route is refused with 403.
import { readFileSync } from "node:fs";
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";

const name = `auditor${Date.now() % 100000}`;
const password = "read only, every day";

// Every write route of the console, read from the router itself so that a
// route added later is covered without editing this list (ids need not
// exist: the role is refused first). The auditor's own session routes stay.
const selfService = new Set(["/staff/login", "/staff/logout", "/staff/password"]);
const routerSrc = readFileSync(new URL("../../crates/web/src/staff/mod.rs", import.meta.url), "utf8");
const writes = routerSrc
  .split(".route(")
  .slice(1)
  .map((chunk) => [chunk.match(/"([^"]+)"/)?.[1], /\bpost\(/.test(chunk.split(".route_layer(")[0])])
  .filter(([path, post]) => path && post && !selfService.has(path))
  .map(([path]) => path.replaceAll("{id}", "1"));
if (writes.length < 15) throw new Error(`only ${writes.length} write routes found in the router: ${writes}`);

await scenario("auditor", async (newPage) => {
  const staff = await newPage();
  await login(staff, admin, adminPassword);
  await staff.goto(base + "/staff/operators");
  await staff.fill("#op-name", name);
  await staff.selectOption("#op-role", "auditor");
  await staff.fill("#op-password", password);
  await Promise.all([staff.waitForURL(/created=/), staff.click("#operator-new button[type=submit]")]);
  check((await staff.locator("#operators").textContent()).includes(name), "the administrator created the auditor");

  const page = await newPage();
  await login(page, name, password);
  await page.click("nav a[href='/staff/audit']");
  check((await page.locator("#audit tr").count()) > 1, "the auditor reads the audit log");
  await page.fill("#audit-search input[name=operator]", admin);
  await Promise.all([page.waitForLoadState("load"), page.click("#audit-search button[type=submit]")]);
  const cells = await page.locator("#audit tbody tr td:nth-child(3)").allTextContents();
  check(cells.length > 0 && cells.every((c) => c.trim() === admin), `the search shows ${admin}'s entries only`);
  check((await page.locator("#audit").textContent()).includes("operator_created"), "the auditor's creation is among them");
  await snap(page, "audit-search");
  const csvHref = await page.locator("#audit-export").getAttribute("href");
  const csv = await page.context().request.get(base + csvHref);
  check(csv.status() === 200, "the CSV export downloads");
  const lines = (await csv.text()).replace(/^\uFEFF/, "").split(/\r?\n/).filter((l) => l);
  check(/seq/i.test(lines[0]) && /action/i.test(lines[0]), `the CSV has its header (${lines[0]})`);
  check(lines.slice(1).some((l) => l.includes("operator_created") && l.includes(admin)), "and a row of the search");

  // Every page in the auditor's navigation: no write form.
  const hrefs = await page.locator("nav a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
  for (const href of hrefs) {
    await page.goto(base + href);
    const actions = await page
      .locator("form")
      .evaluateAll((fs) => fs.filter((f) => f.method.toLowerCase() === "post").map((f) => f.getAttribute("action")));
    const writeForms = actions.filter((a) => a !== "/staff/logout" && a !== "/staff/password");
    check(writeForms.length === 0, `${href}: no write form (${writeForms.join(", ") || "none"})`);
  }
  // Pages the navigation does not offer the auditor: refused or without a write form.
  for (const href of ["/staff/counter", "/staff/move-out", "/staff/notices/new", "/staff/meters/1/password"]) {
    const r = await page.goto(base + href);
    const actions = await page
      .locator("form")
      .evaluateAll((fs) => fs.filter((f) => f.method.toLowerCase() === "post").map((f) => f.getAttribute("action")));
    const writeForms = actions.filter((a) => a !== "/staff/logout" && a !== "/staff/password");
    check(r.status() === 403 || writeForms.length === 0, `${href}: ${r.status()}, no write form (${writeForms.join(", ") || "none"})`);
  }
  await page.goto(base + "/staff");
  await snap(page, "auditor-home");

  // Crafted POSTs from the auditor's own page, with their valid token.
  const csrf = await page.locator("form[action='/staff/logout'] input[name=csrf]").getAttribute("value");
  const statuses = await page.evaluate(
    async ({ writes, csrf }) => {
      const out = {};
      for (const w of writes) {
        const body = new URLSearchParams({
          csrf, name: "evil", role: "administrator", password: "a long passphrase",
          title: "x", body: "x", target: "campus", revision: "1",
          meter: "1", kwh: "30", tender: "cash", counted_fen: "0", note: "x", form_key: "k",
        });
        const r = await fetch(w, { method: "POST", body, redirect: "manual" });
        out[w] = r.status;
      }
      return out;
    },
    { writes, csrf },
  );
  for (const w of writes) check(statuses[w] === 403, `POST ${w} is refused with 403 (${statuses[w]})`);
  await page.goto(base + "/staff/audit?action=forbidden&operator=" + encodeURIComponent(name));
  check((await page.locator("#audit tbody tr").count()) >= writes.length, "every refusal is in the audit log");
});
