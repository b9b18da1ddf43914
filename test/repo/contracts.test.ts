import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import test from "ava";
import { exportProtoDeps } from "../../scripts/export-proto-deps.ts";
import { bin, ROOT, run } from "../support/tools.ts";

function tree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p, "utf8"));
    }
  };
  walk(dir);
  return out;
}

function tempDir(t: { teardown: (fn: () => void) => void }, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("buf lint passes on proto/", async (t) => {
  const r = await run(bin("buf"), ["lint"]);
  t.is(r.code, 0, r.stdout + r.stderr);
});

test("buf lint catches a contract that breaks the STANDARD rules", async (t) => {
  const dir = tempDir(t, "lint-");
  cpSync(join(ROOT, "buf.yaml"), join(dir, "buf.yaml"));
  cpSync(join(ROOT, "proto-deps"), join(dir, "proto-deps"), { recursive: true });
  cpSync(join(ROOT, "proto"), join(dir, "proto"), { recursive: true });
  writeFileSync(
    join(dir, "proto/chat/v1/bad.proto"),
    'syntax = "proto3";\npackage chat.v1;\nenum color { RED = 0; }\nmessage thing { string BadName = 1; }\n',
  );
  const r = await run(bin("buf"), ["lint"], { cwd: dir });
  t.not(r.code, 0);
  t.regex(r.stdout, /bad\.proto/);
});

test("gen/ is exactly what buf generate writes from proto/", async (t) => {
  const out = tempDir(t, "gen-");
  const r = await run(bin("buf"), ["generate", "--output", out], {
    env: { PATH: `${ROOT}node_modules/.bin:${process.env.PATH}` },
  });
  t.is(r.code, 0, r.stderr);
  const fresh = tree(join(out, "gen"));
  const committed = tree(join(ROOT, "gen"));
  t.deepEqual([...committed.keys()].sort(), [...fresh.keys()].sort(), "same files");
  for (const [file, content] of fresh) {
    t.true(committed.get(file) === content, `gen/${file} is stale: run npm run generate`);
  }
});

test("proto-deps/ matches the contracts of the pinned npm packages", async (t) => {
  const out = tempDir(t, "deps-");
  await exportProtoDeps(out);
  const fresh = tree(out);
  const committed = tree(join(ROOT, "proto-deps"));
  t.deepEqual([...committed.keys()].sort(), [...fresh.keys()].sort());
  for (const [file, content] of fresh) {
    t.true(committed.get(file) === content, `proto-deps/${file} is stale: run npm run proto:deps`);
  }
});

test("the contracts have no breaking change against the main branch", async (t) => {
  const refs = ["main", "origin/main"];
  let against: string | undefined;
  for (const ref of refs) {
    const r = await run("git", ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]);
    if (r.code === 0) {
      against = ref === "main" ? ".git#branch=main" : ".git#ref=origin/main";
      break;
    }
  }
  if (!against) {
    t.log("no main branch yet: nothing to compare against");
    t.pass();
    return;
  }
  const r = await run(bin("buf"), ["breaking", "--against", against]);
  t.is(r.code, 0, r.stdout + r.stderr);
});
