// The console's frame: the demo administrator logs in and sees the landing
// page with the navigation; a wrong password is refused.
import { scenario, login, check, snap, base, admin, adminPassword } from "./lib.mjs";

await scenario("login", async (newPage) => {
  const page = await newPage();
  await page.goto(base + "/staff/login");
  await page.fill('input[name="name"]', admin);
  await page.fill('input[name="password"]', "not-the-password");
  await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
  check(page.url().includes("/staff/login"), "a wrong password stays on the login page");
  await login(page, admin, adminPassword);
  check((await page.locator("nav a").count()) >= 3, "the console's navigation is shown");
  await snap(page, "home");
});
