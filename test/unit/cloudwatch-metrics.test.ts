import test from "ava";
import { DeliveryCanary } from "../../services/gateway/canary.ts";
import {
  emfLine,
  NAMESPACE,
  startCloudWatchMetrics,
} from "../../services/gateway/cloudwatch-metrics.ts";
import { silentLogger } from "../../services/shared/logger.ts";

test("a line is a valid Embedded Metric Format event: every metric and dimension is a member", (t) => {
  const event = JSON.parse(emfLine("eu-west-1", { connections: 42, canaryFailures: 1 }, 1_000));
  const [directive] = event._aws.CloudWatchMetrics;
  t.is(event._aws.Timestamp, 1_000);
  t.is(directive.Namespace, NAMESPACE);
  // CloudWatch drops an event whose metric or dimension has no member of that name.
  for (const d of directive.Dimensions.flat()) t.is(typeof event[d], "string", d);
  for (const m of directive.Metrics) t.is(typeof event[m.Name], "number", m.Name);
  t.like(event, { Env: "eu-west-1", Service: "gateway", Connections: 42, CanaryFailures: 1 });
});

test("the writer reports each interval's figures until stopped", async (t) => {
  const lines: string[] = [];
  let n = 0;
  const stop = startCloudWatchMetrics({
    env: "us-east-1",
    intervalMs: 10,
    read: () => ({ connections: ++n, canaryFailures: 0 }),
    write: (l) => lines.push(l),
  });
  await new Promise((r) => setTimeout(r, 55));
  stop();
  const count = lines.length;
  await new Promise((r) => setTimeout(r, 30));
  t.true(count >= 3, `${count} lines`);
  t.is(lines.length, count, "nothing after stop");
  t.deepEqual(
    lines.map((l) => JSON.parse(l).Connections),
    Array.from({ length: count }, (_, i) => i + 1),
  );
});

test("the canary counts the canaries that did not come back in time", (t) => {
  let now = 0;
  const published: bigint[] = [];
  const canary = new DeliveryCanary({
    region: "us-east-1",
    instanceId: "g1",
    intervalMs: 1_000,
    timeoutMs: 3_000,
    bus: {
      publish: async (_topic, records) => {
        published.push(BigInt(records.length));
      },
    },
    health: { setCheck: () => undefined },
    log: silentLogger,
    now: () => now,
  });
  canary.start(); // sends the first canary at 0
  canary.stop();
  t.is(canary.lost, 0);
  // Nothing came back: once it is older than the timeout, the next send counts it lost.
  now = 5_000;
  canary.start();
  canary.stop();
  t.is(canary.lost, 1);
});
