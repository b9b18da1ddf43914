import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import test from "ava";
import type { Page } from "playwright-core";
import { regionsControl, startWebClient } from "../../dev/web-client.ts";
import { CHROMIUM, launch, message, SHOTS, signIn, WAIT } from "../support/browser.ts";
import { regionList, withRegions } from "../support/regions.ts";

/**
 * The live regions view (/regions on the dev web server of a two-region run) in Debian's
 * chromium: a region is killed from the view, the chat page connected to it fails over and
 * keeps chatting, the view's counts add up with nothing shown twice, and the region comes back.
 */
const FAILOVER = { timeout: 20_000 };

async function say(page: Page, text: string): Promise<void> {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByLabel("Message", { exact: true }).press("Enter");
}

if (!existsSync(CHROMIUM)) {
  const reason = `${CHROMIUM} is missing: apt-get install chromium`;
  if (process.env.CI === "true") test("the browser tests have chromium", (t) => t.fail(reason));
  else test.skip(`regions view tests (${reason})`, () => {});
} else {
  test("the regions view kills a region, its page fails over and keeps chatting, and restores it", async (t) => {
    t.timeout(90_000);
    const started = Date.now();
    const regions = await withRegions(t);
    const web = await startWebClient({
      regions: regionList(regions),
      issuerUrl: regions.issuer.url,
      control: regionsControl(regions),
    });
    t.teardown(() => web.close());
    const browser = await launch(t);

    const view = await (
      await browser.newContext({ viewport: { width: 1000, height: 460 } })
    ).newPage();
    await view.goto(`${web.url}/regions`);
    const row = (name: string) => view.locator(`#regions tbody tr[data-region="${name}"]`);
    const cellOf = (name: string, column: string) => row(name).locator(`td.col-${column}`);
    const names = regions.regions.map((r) => r.name);
    for (const name of names) {
      await cellOf(name, "health").getByText("healthy", { exact: true }).waitFor(WAIT);
      t.is(await cellOf(name, "state").textContent(), "running");
    }
    t.deepEqual(await view.locator("#regions thead th").allTextContents(), [
      "Region",
      "State",
      "Health",
      "Replication lag",
      "Devices",
      "Actions",
    ]);

    // Alice in one region, bob in the other: the view's "Chat in …" links, as a user opens them.
    const [first, other] = names as [string, string];
    const chatIn = async (name: string) => {
      const href = await view
        .getByRole("link", { name: `Chat in ${name}`, exact: true })
        .getAttribute("href");
      return `${web.url}${href}`;
    };
    const alice = await signIn(browser, await chatIn(first), "alice");
    t.is(await alice.locator("#region").textContent(), first);
    const bob = await signIn(browser, await chatIn(other), "bob");
    t.is(await bob.locator("#region").textContent(), other);
    await cellOf(first, "devices").getByText("1", { exact: true }).waitFor(WAIT);
    await cellOf(other, "devices").getByText("1", { exact: true }).waitFor(WAIT);

    await alice.getByLabel("Direct chat with (user id)", { exact: true }).fill("bob");
    await alice.getByLabel("Direct chat with (user id)", { exact: true }).press("Enter");
    await say(alice, "before");
    await bob.getByRole("button", { name: "alice (direct), 1 unread" }).click();
    await message(bob, "before").waitFor(WAIT);
    await say(bob, "across the regions");
    await message(alice, "across the regions").waitFor(WAIT);

    // Alice's region is killed from the view: it shows it down, and her page moves.
    await view.getByRole("button", { name: `Kill ${first}`, exact: true }).click();
    await cellOf(first, "state").getByText("killed", { exact: true }).waitFor(WAIT);
    t.is(await cellOf(first, "health").textContent(), "unhealthy");
    t.true(await view.getByRole("button", { name: `Kill ${first}`, exact: true }).isDisabled());
    await alice.locator("#region", { hasText: other }).waitFor(FAILOVER);
    await alice
      .getByRole("status")
      .filter({ hasText: `moved from ${first}` })
      .waitFor(WAIT);
    await cellOf(other, "devices").getByText("2", { exact: true }).waitFor(FAILOVER);

    // They keep chatting, on the region left.
    await say(bob, "after");
    await message(alice, "after").waitFor(FAILOVER);
    await say(alice, "again");
    await message(bob, "again").waitFor(FAILOVER);
    await bob.waitForTimeout(500);
    for (const page of [alice, bob]) {
      t.deepEqual(await page.locator("#messages li .text").allTextContents(), [
        "before",
        "across the regions",
        "after",
        "again",
      ]);
    }

    // The view sums what the pages report: 4 sent, 4 acked, 4 delivered, none shown twice.
    const counts = async () =>
      Object.fromEntries(
        await Promise.all(
          ["sent", "acked", "delivered", "duplicates"].map(async (id) => [
            id,
            await view.locator(`#${id}`).textContent(),
          ]),
        ),
      );
    const expected = { sent: "4", acked: "4", delivered: "4", duplicates: "0" };
    const deadline = Date.now() + 10_000;
    while (JSON.stringify(await counts()) !== JSON.stringify(expected) && Date.now() < deadline) {
      await view.waitForTimeout(200);
    }
    t.deepEqual(await counts(), expected);
    t.is(await view.locator("#pages").textContent(), "2");
    await mkdir(SHOTS, { recursive: true });
    const shot = new URL("regions.png", SHOTS).pathname;
    await view.screenshot({ path: shot });

    // Another site cannot kill a region: without the view's header, or from another origin.
    const other403 = await fetch(`${web.url}/api/regions/${other}/kill`, { method: "POST" });
    t.is(other403.status, 403);
    const foreign = await fetch(`${web.url}/api/regions/${other}/kill`, {
      method: "POST",
      headers: { "x-regions-view": "1", origin: "https://elsewhere.example" },
    });
    t.is(foreign.status, 403);
    t.true(regions.region(other).up);

    // Restored from the view: running and healthy again.
    await view.getByRole("button", { name: `Restore ${first}`, exact: true }).click();
    await cellOf(first, "state").getByText("running", { exact: true }).waitFor(FAILOVER);
    await cellOf(first, "health").getByText("healthy", { exact: true }).waitFor(FAILOVER);
    t.true(regions.region(first).up);
    t.log(`regions view test took ${Date.now() - started} ms`);
  });
}
