import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import type { BenchResults } from "../../bench/report/results.ts";
import { bin, run } from "../support/tools.ts";

// Behaviour only: the benchmark runs end to end against every target and writes its report.
// Its figures belong to bench/results, never to assertions here. It runs with the default
// (light) load generator; test/bench/light.test.ts covers both generators step by step.
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
      // A window long enough that deliveries land in it even while the suites beside it load
      // the machine (a 0.5 s window with no warm-up once caught none from connect-chat).
      "--warmup",
      "0.5",
      "--duration",
      "1",
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
    ["connect-chat", "connect-chat-real", "connect-chat-mesh", "raw-ws", "socket.io"],
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
      for (const s of steps) {
        t.is(s.undelivered, 0, `${r.name} lost nothing`);
        t.is(s.sendErrors, 0, `${r.name} refused nothing`);
        t.true(s.work.wire.framesIn > 0, `${r.name}: frames to clients were counted`);
      }
    }
    if (r.name.startsWith("connect-chat")) {
      // The services' work is read from their metrics and the bus, per send.
      const s = steps.find((x) => x.work.sends > 0);
      t.is(s?.work.countersError, undefined, `${r.name} counters`);
      t.true((s?.work.perSend.rpcs ?? 0) > 0, `${r.name} RPCs per send`);
      t.true((s?.work.perSend.busPublished ?? 0) > 0, `${r.name} bus records per send`);
    }
    if (r.name === "connect-chat-mesh") {
      // Every service is a process of its own, and each one's CPU and collections are read.
      const s = steps[0];
      for (const p of ["gateway", "messaging", "notification", "persistence", "redis", "kafka"]) {
        t.true(p in (s?.serverCpuByProcess ?? {}), `mesh CPU of ${p}`);
      }
      for (const p of ["gateway", "messaging", "notification", "persistence"]) {
        t.truthy(s?.work.processes[p], `mesh collections of ${p}`);
      }
    }
    t.truthy(r.idle, `${r.name} measured idle connections`);
  }
  const summary = await readFile(join(out, "summary.md"), "utf8");
  t.regex(summary, /\| connect-chat \|/);
  t.regex(summary, /\| socket\.io \|/);
  t.regex(summary, /\| connect-chat-mesh \|/);
  t.regex(summary, /RPCs per send/);
  t.regex(await readFile(join(out, "chart.svg"), "utf8"), /^<svg/);
  t.regex(res.stdout + res.stderr, /raw-ws/);
});
