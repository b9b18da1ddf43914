import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import type { BenchResults } from "../../bench/report/results.ts";
import { bin, run } from "../support/tools.ts";

// Behaviour only: the benchmark runs end to end against every target and writes its report.
// Its figures belong to bench/results, never to assertions here.
test("npm run bench -- --quick measures every target and writes results, summary and chart", async (t) => {
  t.timeout(300_000);
  const out = await mkdtemp(join(tmpdir(), "bench-"));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const res = await run(
    bin("node"),
    [
      "--max-semi-space-size=4",
      "bench/main.ts",
      "--quick",
      // As light as a run can be, so as not to crowd the tests running beside it.
      "--connections",
      "8",
      "--group-size",
      "4",
      "--start-rate",
      "10",
      "--max-steps",
      "1",
      "--warmup",
      "0",
      "--duration",
      "0.5",
      "--idle-connections",
      "8",
      "--no-pin",
      "--out",
      out,
    ],
    { timeoutMs: 280_000 },
  );
  t.is(res.code, 0, res.stderr);
  const results = JSON.parse(await readFile(join(out, "results.json"), "utf8")) as BenchResults;
  t.deepEqual(
    results.targets.map((r) => r.name),
    ["connect-chat", "connect-chat-real", "raw-ws", "socket.io"],
  );
  for (const r of results.targets) {
    t.is(r.error, undefined, `${r.name} failed`);
    // Without CI a missing backend program skips the real-backends target, with a reason.
    if (r.skipped && process.env.CI !== "true") continue;
    t.is(r.skipped, undefined, `${r.name} skipped`);
    const steps = r.sweep?.steps ?? [];
    t.true(steps.length >= 1, `${r.name} ran a step`);
    if (r.name !== "connect-chat-real") {
      // Every target but the one on emulated backends delivers a light load in full.
      t.true(
        steps.some((s) => s.achievedDeliveriesPerSecond > 0),
        `${r.name} delivered`,
      );
    }
    t.truthy(r.idle, `${r.name} measured idle connections`);
  }
  const summary = await readFile(join(out, "summary.md"), "utf8");
  t.regex(summary, /\| connect-chat \|/);
  t.regex(summary, /\| socket\.io \|/);
  t.regex(await readFile(join(out, "chart.svg"), "utf8"), /^<svg/);
  t.regex(res.stdout + res.stderr, /raw-ws/);
});
