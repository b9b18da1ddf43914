import test from "ava";
import { bin, run } from "../support/tools.ts";

test("the code is formatted and passes the linter (biome)", async (t) => {
  const r = await run(bin("biome"), ["check", "."]);
  t.is(r.code, 0, `${r.stdout}${r.stderr}\nrun npm run format`);
});

test("the code type-checks in strict mode (tsc)", async (t) => {
  const r = await run(bin("tsc"), ["-p", "."]);
  t.is(r.code, 0, r.stdout + r.stderr);
});

test("the web client and the SDK type-check against the DOM (tsc -p web)", async (t) => {
  const r = await run(bin("tsc"), ["-p", "web"]);
  t.is(r.code, 0, r.stdout + r.stderr);
});

test("the lockfile is complete enough for npm ci (run scripts/lock-platform-packages.ts)", async (t) => {
  const { readFileSync } = await import("node:fs");
  const { missingPlatformPackages } = await import("../../scripts/lock-platform-packages.ts");
  const lock = JSON.parse(
    readFileSync(new URL("../../package-lock.json", import.meta.url), "utf8"),
  );
  t.deepEqual(
    missingPlatformPackages(lock).map((m) => m.name),
    [],
  );
});
