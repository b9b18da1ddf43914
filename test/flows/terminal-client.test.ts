import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import test, { type ExecutionContext } from "ava";
import type { LocalRegion } from "../../services/region/region.ts";
import { withRegion } from "../support/region.ts";
import { ROOT } from "../support/tools.ts";

/** Terminal drives `npm run chat` (client/cli.ts) through its stdin and stdout. */
class Terminal {
  readonly proc: ChildProcessWithoutNullStreams;
  output = "";
  #waiters: Array<() => void> = [];

  constructor(t: ExecutionContext, region: LocalRegion, user: string) {
    this.proc = spawn(
      process.execPath,
      ["client/cli.ts", "--user", user, "--url", region.wsUrl, "--issuer", region.issuer.url],
      { cwd: ROOT },
    );
    this.proc.stdout.on("data", (d) => {
      this.output += d;
      for (const w of this.#waiters.splice(0)) w();
    });
    this.proc.stderr.on("data", (d) => {
      this.output += d;
    });
    t.teardown(() => {
      this.proc.kill();
    });
  }

  type(line: string) {
    this.proc.stdin.write(`${line}\n`);
  }

  /** see waits until the output contains `text` (after `from`), and returns where it ends. */
  see(text: string | RegExp, from = 0, ms = 10_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`never saw ${text} in:\n${this.output}`)),
        ms,
      );
      const check = () => {
        const rest = this.output.slice(from);
        const m = typeof text === "string" ? rest.indexOf(text) : rest.search(text);
        if (m >= 0) {
          clearTimeout(timer);
          resolve(from + m + 1);
          return;
        }
        this.#waiters.push(check);
      };
      check();
    });
  }
}

test("two terminal clients chat 1:1 and in a group, and an offline user catches up", async (t) => {
  const region = await withRegion(t);
  const alice = new Terminal(t, region, "alice");
  const bob = new Terminal(t, region, "bob");
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
  const carol = new Terminal(t, region, "carol");
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
