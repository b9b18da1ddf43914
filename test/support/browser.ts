import type { ExecutionContext } from "ava";
import { type Browser, chromium, type Locator, type Page } from "playwright-core";

/** CHROMIUM is Debian's chromium (never a downloaded browser); CHROMIUM_PATH overrides it. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
/** SHOTS is where the browser tests write their screenshots (ignored by git). */
export const SHOTS = new URL("../browser/screenshots/", import.meta.url);
export const WAIT = { timeout: 10_000 };

/** launch starts headless chromium for one test, closed with it. */
export async function launch(t: ExecutionContext): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox"],
  });
  t.teardown(() => browser.close());
  return browser;
}

/** signIn opens the web client at `url` in a fresh browser context (its own device) as `user`. */
export async function signIn(browser: Browser, url: string, user: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  await page.goto(url);
  await page.getByLabel("User id", { exact: true }).fill(user);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page
    .getByRole("status")
    .filter({ hasText: `Signed in as ${user}` })
    .waitFor(WAIT);
  return page;
}

/** message is the list item of the open conversation that holds `text`. */
export const message = (page: Page, text: string): Locator =>
  page.locator("#messages li", { has: page.locator(".text").getByText(text, { exact: true }) });
