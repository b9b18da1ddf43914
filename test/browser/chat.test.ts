import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import test, { type ExecutionContext } from "ava";
import type { Page } from "playwright-core";
import { startWebClient } from "../../dev/web-client.ts";
import { CHROMIUM, launch, message, SHOTS, signIn, WAIT } from "../support/browser.ts";
import { connect, withRegion } from "../support/region.ts";
import { regionList, withRegions } from "../support/regions.ts";

/**
 * The web client (web/, served by dev/web-client.ts) in a real browser: Debian's chromium,
 * headless, driven by playwright-core (never a downloaded browser). Screenshots of the main
 * screens go to test/browser/screenshots/ (ignored by git, except the one the README shows).
 */

/** setup starts a region on free ports, the web client's server for it, and a browser. */
async function setup(t: ExecutionContext, historyPageSize?: number) {
  const region = await withRegion(t);
  const web = await startWebClient({
    regions: [{ name: "", url: region.wsUrl }],
    issuerUrl: region.issuer.url,
    historyPageSize,
  });
  t.teardown(() => web.close());
  return { region, url: web.url, browser: await launch(t) };
}

async function shot(page: Page, name: string): Promise<void> {
  await mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: new URL(`${name}.png`, SHOTS).pathname });
}

// The tests run one after another: each starts Chromium and a region (or two), and four at
// once on a 2-core machine starve the other suites' regions (their canaries time out).
if (!existsSync(CHROMIUM)) {
  const reason = `${CHROMIUM} is missing: apt-get install chromium`;
  if (process.env.CI === "true") test("the browser tests have chromium", (t) => t.fail(reason));
  else test.skip(`browser tests (${reason})`, () => {});
} else {
  test.serial(
    "two browsers chat 1:1 with delivered/read states, and a reload resumes without duplicates",
    async (t) => {
      t.timeout(60_000);
      const started = Date.now();
      const { region, url, browser } = await setup(t);

      const alice = await signIn(browser, url, "alice");
      // The region the page is connected to is on screen.
      t.is(await alice.locator("#region").textContent(), region.region);
      const bob = await signIn(browser, url, "bob");

      // Alice starts a 1:1 with bob and sends, with the keyboard (Enter sends).
      await alice.getByLabel("Direct chat with (user id)", { exact: true }).fill("bob");
      await alice.getByLabel("Direct chat with (user id)", { exact: true }).press("Enter");
      await alice.locator("#conversation-title", { hasText: "bob" }).waitFor(WAIT);
      await t.notThrowsAsync(
        alice.locator("#text:focus").waitFor(WAIT),
        "the message box has the focus",
      );
      await alice.keyboard.type("hello bob");
      await alice.keyboard.press("Enter");

      // Bob's list shows the new conversation, unread; alice's message is delivered, not read.
      const bobsEntry = bob.getByRole("button", { name: "alice (direct), 1 unread" });
      await bobsEntry.waitFor(WAIT);
      const sent = message(alice, "hello bob");
      await sent.and(alice.locator('[data-state="delivered"]')).waitFor(WAIT);
      await shot(bob, "conversation-list-unread");

      // Bob opens it: he sees the message, and alice sees it read.
      await bobsEntry.click();
      await message(bob, "hello bob").waitFor(WAIT);
      await sent.and(alice.locator('[data-state="read"]')).waitFor(WAIT);
      // Read: no unread count left. Presence is shared once both have written: offline so far.
      await bob.getByRole("button", { name: "alice (direct), offline", exact: true }).waitFor(WAIT);

      // Alice types: bob sees it, and sees it stop when her message arrives.
      await alice.getByLabel("Message", { exact: true }).pressSequentially("hi a");
      await bob.locator("#typing", { hasText: "alice is typing…" }).waitFor(WAIT);
      await shot(bob, "typing");
      await alice.getByLabel("Message", { exact: true }).fill("");
      await bob.locator("#typing:empty").waitFor(WAIT);

      // Bob answers; alice has the conversation open, so she reads it at once.
      await bob.getByLabel("Message", { exact: true }).fill("hi alice");
      await bob.getByLabel("Message", { exact: true }).press("Enter");
      await message(alice, "hi alice").waitFor(WAIT);
      await message(bob, "hi alice").and(bob.locator('[data-state="read"]')).waitFor(WAIT);
      // Both have written: each sees the other online, in the list and over the messages.
      await bob.getByRole("button", { name: "alice (direct), online", exact: true }).waitFor(WAIT);
      await bob.locator("#presence", { hasText: "alice is online" }).waitFor(WAIT);
      await alice.locator("#presence", { hasText: "bob is online" }).waitFor(WAIT);
      await shot(alice, "conversation");

      // Bob reloads: the tab is the same device, resumes from its saved inbox position, reopens
      // the conversation and shows every message once, and then what arrives next, once.
      const device = await bob.evaluate(() => sessionStorage.getItem("chat.device"));
      t.truthy(await bob.evaluate((d) => sessionStorage.getItem(`chat.state.bob.${d}`), device));
      await bob.reload();
      await bob
        .getByRole("status")
        .filter({ hasText: `(${device})` })
        .waitFor(WAIT);
      await message(bob, "hi alice").waitFor(WAIT);
      await bob.locator("#conversation-title", { hasText: "alice" }).waitFor(WAIT);
      await alice.getByLabel("Message", { exact: true }).fill("after the reload");
      await alice.getByLabel("Message", { exact: true }).press("Enter");
      await message(bob, "after the reload").waitFor(WAIT);
      // Let a late replay or a live copy arrive, if one were coming.
      await bob.waitForTimeout(500);
      t.deepEqual(await bob.locator("#messages li .text").allTextContents(), [
        "hello bob",
        "hi alice",
        "after the reload",
      ]);
      t.deepEqual(await alice.locator("#messages li .text").allTextContents(), [
        "hello bob",
        "hi alice",
        "after the reload",
      ]);
      await shot(bob, "after-reload");

      const signInPage = await (await browser.newContext()).newPage();
      await signInPage.goto(url);
      await shot(signInPage, "sign-in");
      t.log(`browser test took ${Date.now() - started} ms`);
    },
  );

  test.serial(
    "a group: members who are online see messages at once, one who was offline catches up",
    async (t) => {
      t.timeout(60_000);
      const started = Date.now();
      const { url, browser } = await setup(t);
      const alice = await signIn(browser, url, "alice");
      const bob = await signIn(browser, url, "bob");

      await alice.getByLabel("Group title", { exact: true }).fill("club");
      await alice
        .getByLabel("Members (user ids, comma-separated)", { exact: true })
        .fill("bob, carol");
      await alice.getByRole("button", { name: "Create group" }).click();
      await alice.locator("#conversation-title", { hasText: "club" }).waitFor(WAIT);
      await alice
        .locator("#messages li.system", { hasText: "alice created “club” with" })
        .waitFor(WAIT);
      await alice.getByLabel("Message", { exact: true }).fill("hello club");
      await alice.getByLabel("Message", { exact: true }).press("Enter");

      // Bob gets it; carol has not connected yet, so it is not delivered to every member.
      const bobsEntry = bob.getByRole("button", { name: "club (group), 1 unread" });
      await bobsEntry.waitFor(WAIT);
      const hello = message(alice, "hello club");
      await hello.and(alice.locator('[data-state="sent"]')).waitFor(WAIT);
      await bobsEntry.click();
      await message(bob, "hello club").waitFor(WAIT);
      await bob.getByLabel("Message", { exact: true }).fill("hi all");
      await bob.getByLabel("Message", { exact: true }).press("Enter");
      await message(alice, "hi all").locator(".sender", { hasText: "bob" }).waitFor(WAIT);
      t.is(await hello.getAttribute("data-state"), "sent");

      // Carol signs in: both messages are waiting for her, then everyone has read alice's.
      const carol = await signIn(browser, url, "carol");
      const carolsEntry = carol.getByRole("button", { name: "club (group), 2 unread" });
      await carolsEntry.waitFor(WAIT);
      await shot(carol, "group-unread");
      await carolsEntry.click();
      await message(carol, "hi all").waitFor(WAIT);
      await hello.and(alice.locator('[data-state="read"]')).waitFor(WAIT);
      t.deepEqual(await carol.locator("#messages li .text").allTextContents(), [
        "hello club",
        "hi all",
      ]);
      await shot(alice, "group");
      t.log(`group test took ${Date.now() - started} ms`);
    },
  );

  test.serial("history pages in as the message list scrolls up, each message once", async (t) => {
    t.timeout(60_000);
    const { region, url, browser } = await setup(t, 15);
    // 40 messages from SDK clients in Node, before the page opens the conversation.
    const dave = await connect(t, region, "dave");
    const erin = await connect(t, region, "erin");
    const dm = await dave.createDirect("erin");
    for (let i = 1; i <= 40; i++) await (i % 2 ? dave : erin).send(dm.id, `message ${i}`);

    const page = await signIn(browser, url, "erin");
    await page.getByRole("button", { name: "dave (direct), 20 unread" }).click();
    await message(page, "message 40").waitFor(WAIT);
    const texts = () => page.locator("#messages li .text").allTextContents();
    const range = (from: number, to: number) =>
      Array.from({ length: to - from + 1 }, (_, i) => `message ${from + i}`);
    t.deepEqual(await texts(), range(26, 40));

    // Scrolling up to the top loads the page before, without moving what is on screen.
    const list = page.locator("#scroller");
    await list.hover();
    await page.mouse.wheel(0, -10_000);
    await message(page, "message 11").waitFor(WAIT);
    t.deepEqual(await texts(), range(11, 40));
    await page.mouse.wheel(0, -10_000);
    await message(page, "message 1").waitFor(WAIT);
    t.deepEqual(await texts(), range(1, 40));
    // Nothing older: the button for keyboard users is gone.
    await page.locator("#older").waitFor({ state: "hidden", ...WAIT });
    await shot(page, "history");

    // A message arriving now is added once, at the end.
    await dave.send(dm.id, "message 41");
    await message(page, "message 41").waitFor(WAIT);
    t.deepEqual(await texts(), range(1, 41));
  });

  test.serial(
    "two regions: a page fails over when its region dies, shows the new one, loses and doubles nothing",
    async (t) => {
      t.timeout(60_000);
      const started = Date.now();
      const regions = await withRegions(t);
      const web = await startWebClient({
        regions: regionList(regions),
        issuerUrl: regions.issuer.url,
      });
      t.teardown(() => web.close());
      const browser = await launch(t);
      const alice = await signIn(browser, web.url, "alice");
      const bob = await signIn(browser, web.url, "bob");
      const names = regions.regions.map((r) => r.name);
      const first = (await alice.locator("#region").textContent()) ?? "";
      t.true(names.includes(first), `alice is on ${first}`);

      await alice.getByLabel("Direct chat with (user id)", { exact: true }).fill("bob");
      await alice.getByLabel("Direct chat with (user id)", { exact: true }).press("Enter");
      await alice.getByLabel("Message", { exact: true }).fill("before");
      await alice.getByLabel("Message", { exact: true }).press("Enter");
      await bob.getByRole("button", { name: "alice (direct), 1 unread" }).click();
      await message(bob, "before").waitFor(WAIT);
      await message(alice, "before").and(alice.locator('[data-state="read"]')).waitFor(WAIT);

      // Alice's region dies: her page moves to the other region and says so.
      await regions.region(first).kill();
      const other = names.find((n) => n !== first) as string;
      await alice.locator("#region", { hasText: other }).waitFor({ timeout: 20_000 });
      await alice
        .getByRole("status")
        .filter({ hasText: `moved from ${first}` })
        .waitFor(WAIT);
      await bob.locator("#region", { hasText: other }).waitFor({ timeout: 20_000 });
      await shot(alice, "failover");

      await bob.getByLabel("Message", { exact: true }).fill("after");
      await bob.getByLabel("Message", { exact: true }).press("Enter");
      await message(alice, "after").waitFor({ timeout: 20_000 });
      await alice.getByLabel("Message", { exact: true }).fill("again");
      await alice.getByLabel("Message", { exact: true }).press("Enter");
      await message(bob, "again").waitFor({ timeout: 20_000 });
      await bob.waitForTimeout(500);
      for (const page of [alice, bob]) {
        t.deepEqual(await page.locator("#messages li .text").allTextContents(), [
          "before",
          "after",
          "again",
        ]);
      }
      t.log(`failover test took ${Date.now() - started} ms`);
    },
  );
}
