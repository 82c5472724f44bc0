// Issue 13 item 7: the administrator publishes a notice for one building;
// a student bound to a meter in that building sees it on the overview, a
// student bound in another building of the same area does not.
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";

// Area 01: building 01 and building 02 (docs: the reference numbering plan).
const here = process.env.E2E_NOTICE_METER || "201701010001";
const there = process.env.E2E_NOTICE_OTHER_METER || "201701020001";
const title = `停水通知 ${Date.now() % 100000}`;

/** A new demo student bound to `meter`; returns the page on the overview. */
async function student(newPage, name, meter) {
  const page = await newPage();
  await page.goto(base + "/");
  await page.fill("#demo-name", name);
  await Promise.all([page.waitForURL(/\/bind\?first=1/), page.click("#demo-new")]);
  await page.fill("#meter", meter);
  await page.fill("#password", "000000");
  await Promise.all([page.waitForURL(/\/overview\?bound=1/), page.click("#bind-submit")]);
  return page;
}

await scenario("notices", async (newPage) => {
  // Where the first meter is, as its student's overview names it ("area · building room").
  const a = await student(newPage, "公告同学甲", here);
  const place = ((await a.locator("#meter-card .row span").first().textContent()) || "").trim();
  const [area, rest] = place.split(" · ");
  const building = rest.slice(0, rest.lastIndexOf(" "));
  check(area && building, `the first meter is in ${area} · ${building}`);

  const staff = await newPage();
  await login(staff, admin, adminPassword);
  await staff.click("nav a[href='/staff/notices']");
  await Promise.all([staff.waitForURL(/\/staff\/notices\/new/), staff.click("#notice-new")]);
  check((await staff.locator("#notice-form").textContent()).includes("不会发出任何推送"), "the form says push is only stored");
  // A bad one first: no title.
  await staff.fill("#n-body", "周三 9:00–12:00 停水，请提前储水。");
  await staff.check("input[name=target][value=buildings]");
  await staff.locator("#n-buildings label", { hasText: `${area} · ${building}` }).first().locator("input").check();
  await staff.evaluate(() => document.querySelector("#n-title").removeAttribute("required"));
  await Promise.all([staff.waitForLoadState("load"), staff.click("#notice-save")]);
  check((await staff.locator("#notice-error").textContent()).includes("请填写标题"), "a notice without a title is refused with the reason");
  await staff.fill("#n-title", title);
  await staff.check("input[name=pinned]");
  await snap(staff, "notice-form");
  await Promise.all([staff.waitForURL(/\/staff\/notices\?saved=/), staff.click("#notice-save")]);
  const row = staff.locator("#notices tr", { hasText: title });
  check((await row.count()) === 1, "the notice is listed");
  check((await row.textContent()).includes("显示中"), "its state is showing");
  check((await row.textContent()).includes(building), "its target is the building");
  await snap(staff, "notices");

  await a.goto(base + "/overview");
  check((await a.locator("#notices").textContent()).includes(title), "the student in that building sees it");
  await snap(a, "overview-with-notice");
  const b = await student(newPage, "公告同学乙", there);
  const otherPlace = ((await b.locator("#meter-card .row span").first().textContent()) || "").trim();
  check(!otherPlace.includes(building + " "), `the second meter is elsewhere (${otherPlace})`);
  check(!(await b.locator("#notices").textContent()).includes(title), "a student in another building does not");
  await snap(b, "overview-without-notice");
});
