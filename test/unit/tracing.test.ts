import { PassThrough } from "node:stream";
import { trace } from "@opentelemetry/api";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace";
import test from "ava";
import { MemoryBus } from "../../services/shared/adapters/memory/memory-bus.ts";
import { Batcher } from "../../services/shared/batcher.ts";
import { createLogger, silentLogger } from "../../services/shared/logger.ts";
import { createMetrics } from "../../services/shared/metrics.ts";
import type { BusRecord } from "../../services/shared/ports/bus.ts";
import { consumeEvents, type Event, publishEvents, TOPICS } from "../../services/shared/topics.ts";
import {
  contextFrom,
  inSpan,
  startTracing,
  stopTracing,
  traceCarrier,
  traceFields,
  tracingOn,
} from "../../services/shared/tracing.ts";

// Tracing is per process, and ava runs each file in its own: these tests run in order, the
// first with tracing off, the others with it on.
const exporter = new InMemorySpanExporter();
test.after.always(() => stopTracing());

const spanNamed = (name: string) => exporter.getFinishedSpans().find((s) => s.name === name);

/** consumeOne publishes `publish` and resolves with the first event the consumer gets. */
async function consumeOne(publish: (bus: MemoryBus) => Promise<void>) {
  const bus = new MemoryBus({ partitions: 1 });
  let got!: (e: { event: Event<unknown>; activeTraceId?: string }) => void;
  const first = new Promise<{ event: Event<unknown>; activeTraceId?: string }>((r) => {
    got = r;
  });
  const sub = await consumeEvents({
    bus,
    topic: TOPICS.userDisconnected,
    groupId: "g",
    log: silentLogger,
    metrics: createMetrics("t", { processMetrics: false }),
    handler: async (events) => {
      const event = events[0] as Event<unknown>;
      got({ event, activeTraceId: trace.getActiveSpan()?.spanContext().traceId });
    },
  });
  await publish(bus);
  const out = await first;
  await sub.close();
  await bus.close();
  return out;
}

const disconnected = { key: "u1", value: { userId: "u1", deviceId: "d", sessionId: "s" } };

test.serial("off by default: nothing is recorded, carried or logged", async (t) => {
  t.false(await startTracing({ service: "t", env: {} }));
  t.false(tracingOn());
  t.is(traceCarrier(), undefined);
  t.is(
    contextFrom({ traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }),
    undefined,
  );
  t.deepEqual(traceFields(), {});
  const lines: string[] = [];
  const out = new PassThrough().on("data", (c: Buffer) => lines.push(c.toString()));
  const log = createLogger({ service: "t", region: "local", destination: out });
  log.info({ url: "x" }, "one");
  log.info("two");
  await new Promise((r) => setImmediate(r));
  t.deepEqual(
    lines.map((l) => JSON.parse(l).url),
    ["x", undefined],
    "log lines are as without tracing",
  );
  t.is(await inSpan("x", {}, async () => 7), 7);
  const b = new Batcher<number, number>({
    maxBatch: 10,
    maxInflight: 1,
    run: async (items) => items,
  });
  t.deepEqual(await Promise.all([b.add(1), b.add(2)]), [1, 2]);
  const { event } = await consumeOne((bus) =>
    publishEvents(bus, TOPICS.userDisconnected, [disconnected]),
  );
  t.is(event.record.headers, undefined, "no headers on the records");
  t.is(event.trace, undefined);
});

test.serial("on with OTEL_TRACES_EXPORTER=otlp, or with an exporter given", async (t) => {
  t.true(await startTracing({ service: "t", exporter }));
  t.true(tracingOn());
  // A second start (say, OTLP from the environment) changes nothing.
  t.true(await startTracing({ service: "other", env: { OTEL_TRACES_EXPORTER: "otlp" } }));
});

test.serial("trace ids start with the time, as X-Ray requires", async (t) => {
  exporter.reset();
  await inSpan("timed", {}, async () => {});
  const id = spanNamed("timed")?.spanContext().traceId ?? "";
  t.regex(id, /^[0-9a-f]{32}$/);
  const seconds = Number.parseInt(id.slice(0, 8), 16);
  t.true(Math.abs(seconds - Date.now() / 1000) < 5, `${id} starts with the time`);
});

test.serial("log lines written in a span carry its trace and span ids", async (t) => {
  const out = new PassThrough();
  const lines: Array<Record<string, unknown>> = [];
  out.on("data", (chunk: Buffer) => {
    for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l));
  });
  const log = createLogger({ service: "t", region: "local", destination: out }).child({ c: 1 });
  let ids = { traceId: "", spanId: "" };
  await inSpan("logged", {}, async () => {
    ids = trace.getActiveSpan()?.spanContext() ?? ids;
    log.info("inside");
  });
  log.info({ url: "x" }, "outside");
  log.info("after");
  await new Promise((r) => setImmediate(r));
  const [inside, outside, after] = lines;
  t.is(inside?.trace_id, ids.traceId);
  t.is(inside?.span_id, ids.spanId);
  t.is(inside?.xray_trace_id, `1-${ids.traceId.slice(0, 8)}-${ids.traceId.slice(8)}`);
  t.is(outside?.trace_id, undefined);
  t.is(outside?.url, "x");
  t.is(after?.url, undefined, "a line's fields stay its own");
});

test.serial(
  "a bus record carries its publish's context; its consumer span continues it",
  async (t) => {
    exporter.reset();
    const { event, activeTraceId } = await consumeOne((bus) =>
      inSpan("sender", {}, () => publishEvents(bus, TOPICS.userDisconnected, [disconnected])),
    );
    const record = event.record as BusRecord;
    t.regex(record.headers?.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const sender = spanNamed("sender");
    const publish = spanNamed("publish user.disconnected");
    const process = await (async () => {
      for (let i = 0; i < 50 && !spanNamed("process user.disconnected"); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      return spanNamed("process user.disconnected");
    })();
    t.is(publish?.parentSpanContext?.spanId, sender?.spanContext().spanId);
    t.is(process?.parentSpanContext?.spanId, publish?.spanContext().spanId);
    t.is(process?.spanContext().traceId, sender?.spanContext().traceId);
    t.is(activeTraceId, sender?.spanContext().traceId, "the handler runs in the record's trace");
    t.is(
      event.trace && trace.getSpan(event.trace)?.spanContext().spanId,
      process?.spanContext().spanId,
      "the event carries its consumer span's context",
    );
    t.is(process?.attributes["messaging.destination.name"], "user.disconnected");
  },
);

test.serial(
  "a batch of one runs in its item's context; a batch of many in a span linked to each",
  async (t) => {
    exporter.reset();
    const seen: Array<string | undefined> = [];
    const b = new Batcher<number, number>({
      name: "numbers",
      maxBatch: 10,
      maxInflight: 1,
      run: async (items) => {
        seen.push(trace.getActiveSpan()?.spanContext().spanId);
        return items;
      },
    });
    await inSpan("alone", {}, () => b.add(1));
    const alone = spanNamed("alone");
    t.is(seen[0], alone?.spanContext().spanId, "the lone item's own span");

    await Promise.all([inSpan("first", {}, () => b.add(2)), inSpan("second", {}, () => b.add(3))]);
    const [first, second, batch] = ["first", "second", "batch numbers"].map(spanNamed);
    t.truthy(batch);
    t.is(seen[1], batch?.spanContext().spanId, "the batch runs in its own span");
    t.is(batch?.parentSpanContext?.spanId, first?.spanContext().spanId, "child of the first item");
    t.deepEqual(
      batch?.links.map((l) => l.context.spanId).sort(),
      [first?.spanContext().spanId, second?.spanContext().spanId].sort(),
      "linked to every item",
    );
    t.is(batch?.attributes["chat.batch.items"], 2);
  },
);

test.serial("a carrier round-trips a context", async (t) => {
  let carrier: Record<string, string> | undefined;
  let spanId = "";
  await inSpan("carried", {}, async () => {
    carrier = traceCarrier();
    spanId = trace.getActiveSpan()?.spanContext().spanId ?? "";
  });
  const ctx = contextFrom(carrier);
  t.is(ctx && trace.getSpanContext(ctx)?.spanId, spanId);
  t.true(ctx && trace.getSpanContext(ctx)?.isRemote);
});
