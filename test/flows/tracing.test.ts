import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import test, { type ExecutionContext } from "ava";
import type { LocalRegion } from "../../services/region/region.ts";
import { startTracing, stopTracing } from "../../services/shared/tracing.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { connect, withRegion } from "../support/region.ts";

// Tracing is per process (ava runs each test file in its own): on for this file only, with
// every span kept in memory as it ends.
const exporter = new InMemorySpanExporter();
test.before(async () => {
  await startTracing({ service: "region", exporter });
});
test.after.always(() => stopTracing());

const serviceOf = (s: ReadableSpan) => s.resource.attributes["service.name"];

/** eventually polls `find` until it returns something, or fails saying what it waited for. */
async function eventually<T>(find: () => T | undefined, what: string, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * ancestry walks from `span` up its parents (and, for a span whose parent is not in the
 * trace, its first link that is) and returns the spans on the way, `span` first.
 */
function ancestry(span: ReadableSpan, byId: Map<string, ReadableSpan>): ReadableSpan[] {
  const chain = [span];
  let at: ReadableSpan | undefined = span;
  while (at) {
    const up: ReadableSpan | undefined =
      (at.parentSpanContext && byId.get(at.parentSpanContext.spanId)) ??
      at.links.map((l) => byId.get(l.context.spanId)).find((s) => s !== undefined);
    if (up) chain.push(up);
    at = up;
  }
  return chain;
}

/**
 * sendIsTraced sends a message from `from` to `to` through `region` and checks its trace, from
 * the sender's frame to the recipient's socket.
 */
async function sendIsTraced(t: ExecutionContext, region: LocalRegion, from: string, to: string) {
  const sender = await connect(t, region, from);
  const recipient = await connect(t, region, to);
  const recipientSaw = new MessageRecorder(recipient);
  const dm = await sender.createDirect(to);

  await sender.send(dm.id, "traced hello");
  await recipientSaw.count(1, dm.id);

  const frame = await eventually(
    () =>
      exporter
        .getFinishedSpans()
        .find((s) => s.name === "frame send" && s.attributes["chat.user_id"] === from),
    `${from}'s send frame span`,
  );
  const traceId = frame.spanContext().traceId;
  const inTrace = () =>
    exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  const delivery = await eventually(
    () => inTrace().find((s) => s.name === "deliver" && s.attributes["chat.user_id"] === to),
    `${to}'s delivery span in the frame's trace`,
  );
  t.is(frame.parentSpanContext, undefined, "the frame starts the trace");
  t.is(frame.kind, SpanKind.SERVER);
  t.is(serviceOf(frame), "gateway");
  t.is(serviceOf(delivery), "gateway");
  t.is(delivery.attributes["chat.session_id"] !== undefined, true);

  // Every span of the trace hangs from another of it, up to the frame (the spans end in any
  // order: wait until the parents of those ended so far have ended too).
  const connected = await eventually(() => {
    const spans = inTrace();
    const ids = new Set(spans.map((s) => s.spanContext().spanId));
    const orphans = spans.filter(
      (s) => s !== frame && !(s.parentSpanContext && ids.has(s.parentSpanContext.spanId)),
    );
    return orphans.length === 0 ? spans : undefined;
  }, "every span of the trace to have its parent in it");
  const byId = new Map(connected.map((s) => [s.spanContext().spanId, s]));

  // The delivery's ancestry is the path of the message, back to the frame.
  const path = ancestry(delivery, byId).reverse();
  t.is(path[0], frame, "the delivery descends from the sender's frame");
  const steps = path.map((s) => `${serviceOf(s)} ${SpanKind[s.kind]} ${s.name}`);
  const expected = [
    "gateway SERVER frame send",
    "gateway CLIENT chat.v1.MessagingService/BatchSendMessages",
    "messaging SERVER chat.v1.MessagingService/BatchSendMessages",
    "messaging PRODUCER publish message.stored",
    "messaging CONSUMER process message.stored",
    "messaging PRODUCER fanout",
    "gateway CONSUMER deliver",
  ];
  t.deepEqual(
    steps.filter((s) => !s.includes(" batch ")),
    expected,
    `the path: ${steps.join(" → ")}`,
  );

  // The steps that branch off that path are in the trace too, and descend from the frame:
  // the message written by persistence, the inbox appends, inbox.appended for other regions
  // and push.
  const branch = (name: string, service: string) => {
    const span = connected.find((s) => s.name === name && serviceOf(s) === service);
    t.truthy(span, `${service}: ${name} is in the trace`);
    if (span) t.is(ancestry(span, byId).at(-1), frame, `${name} descends from the frame`);
    return span;
  };
  branch("chat.v1.PersistenceService/BatchAppendMessages", "persistence");
  const append = branch("chat.v1.PersistenceService/AppendInbox", "persistence");
  const published = branch("publish inbox.appended", "messaging");
  const routed = path.find((s) => s.name === "process message.stored");
  if (append && routed) {
    t.true(
      ancestry(append, byId).includes(routed),
      "the inbox append is part of routing the stored message",
    );
  }
  if (published && routed) t.true(ancestry(published, byId).includes(routed));
}

test("one trace follows a message from the sender's frame to the recipient's socket", async (t) => {
  await sendIsTraced(t, await withRegion(t), "alice", "bob");
});

test("the trace goes on over gRPC between services as separate tasks call them", async (t) => {
  await sendIsTraced(t, await withRegion(t, { calls: "loopback" }), "carol", "dave");
});
