import test, { type ExecutionContext } from "ava";
import type { LocalRegion } from "../../services/region/region.ts";
import { withRegion } from "../support/region.ts";
import { Terminal } from "../support/terminal.ts";
import { ROOT } from "../support/tools.ts";

/** terminal starts `npm run chat` as `user` on `region`. */
function terminal(t: ExecutionContext, region: LocalRegion, user: string): Terminal {
  return new Terminal(t, ["--user", user, "--url", region.wsUrl, "--issuer", region.issuer.url]);
}

test("two terminal clients chat 1:1 and in a group, and an offline user catches up", async (t) => {
  const region = await withRegion(t);
  const alice = terminal(t, region, "alice");
  const bob = terminal(t, region, "bob");
  await alice.see("connected to local as alice");
  await bob.see("connected to local as bob");

  alice.type("/dm bob");
  await alice.see("now in @bob");
  alice.type("hello bob");
  await bob.see(/@alice alice: hello bob/);
  bob.type("/list");
  await bob.see("1. @alice");
  bob.type("/open 1");
  await bob.see("now in @alice");
  bob.type("hi alice");
  await alice.see(/@bob bob: hi alice/);

  alice.type("/group club bob carol");
  await alice.see("now in #club");
  alice.type("welcome to the club");
  await bob.see(/#club alice: welcome to the club/);

  // carol was never online: she gets everything when she first connects.
  const carol = terminal(t, region, "carol");
  await carol.see(/\* alice created "club" with alice, bob, carol/);
  await carol.see(/#club alice: welcome to the club/);
  t.pass();
});

test("the terminal client explains how to use it", async (t) => {
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync(process.execPath, ["client/cli.ts"], { cwd: ROOT, encoding: "utf8" });
  t.is(r.status, 2);
  t.regex(r.stdout, /usage: npm run chat -- --user <name>/);
});
