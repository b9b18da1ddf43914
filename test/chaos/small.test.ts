import test from "ava";
import { formatReport } from "../../chaos/report.ts";
import { runChaos } from "../../chaos/run.ts";

// The small chaos run: two embedded regions, a few dozen devices sending open loop, a whole
// region killed and later a replication partition, then the recorded histories checked against
// what both regions' stores hold (`npm run chaos` is the large one, on real backends).

test("a region killed and a partition under load: nothing acked lost, shown twice or out of order", async (t) => {
  const run = await runChaos({
    mode: "embedded",
    users: 16,
    groups: 3,
    groupSize: 4,
    secondDeviceEvery: 4,
    sendsPerSecond: 12,
    loadMs: 26_000,
    settleMs: 20_000,
    farMs: 40,
    faults: [
      { kind: "region-kill", atMs: 5_000, durationMs: 6_000 },
      { kind: "partition", atMs: 15_000, durationMs: 6_000 },
    ],
  });
  const { report } = run;
  t.log(formatReport(report, { maxViolations: 20 }));
  t.deepEqual(report.byGuarantee, { G1: 0, G2: 0, G3: 0, G5: 0 });
  t.true(report.ok);
  t.true(report.counts.acked > 200, `${report.counts.acked} sends acknowledged`);
  const kill = report.faults.find((f) => f.fault === "region-kill");
  t.truthy(kill?.failover && kill.failover.clients > 0, "some clients were in the killed region");
  t.is(kill?.failover?.notFailedOver.length, 0, "every one of them failed over");
  t.truthy(report.faults.find((f) => f.fault === "partition"));
});

test("the checker fails a run whose replication loses one message", async (t) => {
  let seen = 0;
  const run = await runChaos({
    mode: "embedded",
    users: 6,
    groups: 1,
    groupSize: 4,
    secondDeviceEvery: 0,
    sendsPerSecond: 10,
    loadMs: 6_000,
    settleMs: 8_000,
    farMs: 40,
    faults: [],
    // A broken table replicator: the 15th message the east writes never reaches the west.
    replication: { table: { lose: (what) => / msg#us-east-1#/.test(what) && ++seen === 15 } },
  });
  const { report } = run;
  t.false(report.ok);
  t.true(report.byGuarantee.G1 >= 1, "an acked send is missing from the west's history");
  t.true(report.byGuarantee.G5 >= 1, "the two histories differ");
  t.regex(formatReport(report), /not-in-history/);
});
