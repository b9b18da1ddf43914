import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { Context } from "@opentelemetry/api";
import {
  CanarySchema,
  InboxAppendedSchema,
  MessageStoredSchema,
  PresenceChangedSchema,
  PresenceLeaseSchema,
  ReceiptUpdatedSchema,
  TypingChangedSchema,
  UserConnectedSchema,
  UserDisconnectedSchema,
} from "../../gen/chat/v1/events_pb.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";
import {
  type Bus,
  type BusRecord,
  type BusRecordInput,
  type RecordHeaders,
  RetryLater,
  type Subscription,
} from "./ports/bus.ts";
import {
  contextFrom,
  inMerged,
  inSpan,
  type OpenSpan,
  openSpan,
  processAttributes,
  publishAttributes,
  SpanKind,
  traceCarrier,
  tracingOn,
} from "./tracing.ts";

/** Topic pairs a bus topic name with its payload schema and whether other regions read it. */
export interface Topic<S extends DescMessage = DescMessage> {
  readonly name: string;
  readonly schema: S;
  /** mirrored topics are replicated to every other region as `<region>.<name>`. */
  readonly mirrored: boolean;
  /**
   * untraced topics make no spans (tracing.ts): heartbeats that every instance sends every
   * few seconds, whose traces would say nothing and crowd out the ones that do.
   */
  readonly untraced?: boolean;
}

function topic<S extends DescMessage>(
  name: string,
  schema: S,
  mirrored: boolean,
  opts: { untraced?: boolean } = {},
): Topic<S> {
  return { name, schema, mirrored, ...opts };
}

/**
 * TOPICS is every topic of the bus and its payload, in one place (see proto/chat/v1/events.proto
 * for what each carries and who produces and consumes it).
 */
export const TOPICS = {
  messageStored: topic("message.stored", MessageStoredSchema, false),
  inboxAppended: topic("inbox.appended", InboxAppendedSchema, true),
  userConnected: topic("user.connected", UserConnectedSchema, false),
  userDisconnected: topic("user.disconnected", UserDisconnectedSchema, false),
  typing: topic("typing", TypingChangedSchema, true),
  receiptUpdated: topic("receipt.updated", ReceiptUpdatedSchema, true),
  presenceChanged: topic("presence.changed", PresenceChangedSchema, true),
  presenceLease: topic("presence.lease", PresenceLeaseSchema, true, { untraced: true }),
  canary: topic("canary", CanarySchema, true, { untraced: true }),
} as const;

/** mirroredName is the name a region's topic has in other regions (MirrorMaker 2 style). */
export function mirroredName(prefix: string, t: Topic): string {
  return `${prefix}.${t.name}`;
}

/** Sources says which copies of a topic a consumer reads: this region's, the peers', or both. */
export type Sources = "local" | "peers" | "all";

/** topicNames returns the names of a topic's copies a consumer reads. */
export function topicNames(
  t: Topic,
  mirrors: readonly string[],
  sources: Sources = "all",
): string[] {
  const local = sources === "peers" ? [] : [t.name];
  const remote =
    t.mirrored && sources !== "local" ? mirrors.map((prefix) => mirroredName(prefix, t)) : [];
  return [...local, ...remote];
}

/** allTopicNames are every topic a region's services use, the copies of mirrored ones included. */
export function allTopicNames(mirrors: readonly string[]): string[] {
  return Object.values(TOPICS).flatMap((t) => topicNames(t, mirrors));
}

/**
 * publishEvents encodes and publishes payloads to a topic. Traced, the publish is a producer
 * span and every record carries its context (headers), which the consumers continue.
 */
export async function publishEvents<S extends DescMessage>(
  bus: Pick<Bus, "publish">,
  t: Topic<S>,
  events: Array<{ key: string; value: MessageInitShape<S> }>,
): Promise<void> {
  const encode = (headers?: RecordHeaders): BusRecordInput[] =>
    events.map((e) => {
      const record: BusRecordInput = {
        key: e.key,
        value: toBinary(t.schema, create(t.schema, e.value)),
      };
      if (headers) record.headers = headers;
      return record;
    });
  if (!tracingOn() || t.untraced) {
    await bus.publish(t.name, encode());
    return;
  }
  await inSpan(
    `publish ${t.name}`,
    { kind: SpanKind.PRODUCER, attributes: publishAttributes(t.name, events.length) },
    () => bus.publish(t.name, encode(traceCarrier())),
  );
}

/** Event is a decoded bus record. */
export interface Event<T> {
  value: T;
  record: BusRecord;
  /**
   * trace, when tracing is on, is the context of this record's consumer span: work a handler
   * does for this event alone runs in it (inContext), continuing the event's own trace.
   */
  trace?: Context;
}

/**
 * consumeEvents subscribes to a topic (and its copies mirrored from other regions) and hands decoded
 * batches to the handler. A record that cannot be decoded is logged and skipped, so one poison
 * record never stalls a partition. Handler errors make the batch be redelivered.
 */
export async function consumeEvents<S extends DescMessage>(opts: {
  bus: Bus;
  topic: Topic<S>;
  mirrors?: readonly string[];
  /** sources picks the copies to read (default: all of them). */
  sources?: Sources;
  groupId: string;
  fromBeginning?: boolean;
  log: Logger;
  metrics: Metrics;
  /**
   * dueAtMs holds records back until their time: the handler gets the records of a batch up to
   * the first one not yet due, and the rest go back to the bus (RetryLater) undecoded, to be
   * looked at again when the first of them is due, and no sooner than holdGranularityMs. A
   * partition whose whole batch was due and reaches records that fell due within the last
   * holdGranularityMs (it has caught up) rests holdGranularityMs all the same: each look costs
   * the handler a read, and a broker that hands out a few records per fetch (librdkafka's mock
   * gives one produce request's worth) would otherwise have them looked at a few at a time. A
   * partition that is behind does not rest: resting after every batch would cap it at one
   * batch per granularity, and a busier topic would fall further behind for ever.
   */
  dueAtMs?: (record: BusRecord) => number;
  holdGranularityMs?: number;
  handler: (events: Array<Event<MessageShape<S>>>) => Promise<void>;
}): Promise<Subscription> {
  const { topic: t, log, metrics, dueAtMs } = opts;
  return opts.bus.subscribe({
    groupId: opts.groupId,
    topics: topicNames(t, opts.mirrors ?? [], opts.sources),
    fromBeginning: opts.fromBeginning ?? true,
    handler: async (all) => {
      let batch = all;
      let held: RetryLater | undefined;
      if (dueAtMs) {
        const now = Date.now();
        const first = all.findIndex((r) => dueAtMs(r) > now);
        if (first !== -1) {
          const waitMs = dueAtMs(all[first] as BusRecord) - now;
          held = new RetryLater(Math.max(waitMs, opts.holdGranularityMs ?? 0), first);
          batch = all.slice(0, first);
        } else if (
          opts.holdGranularityMs &&
          now - dueAtMs(all[all.length - 1] as BusRecord) < opts.holdGranularityMs
        ) {
          held = new RetryLater(opts.holdGranularityMs, all.length);
        }
      }
      const events: Array<Event<MessageShape<S>>> = [];
      for (const record of batch) {
        try {
          events.push({ value: fromBinary(t.schema, record.value), record });
        } catch (err) {
          metrics.consumed.inc({ topic: record.topic, outcome: "poison" });
          log.warn(
            { err, topic: record.topic, partition: record.partition, offset: record.offset },
            "skipping undecodable bus record",
          );
        }
      }
      const spans = tracingOn() && !t.untraced ? events.map((e) => consumerSpan(e)) : undefined;
      try {
        if (events.length > 0) {
          await (spans
            ? inMerged(
                `process ${t.name}`,
                events.map((e) => e.trace),
                () => opts.handler(events),
              )
            : opts.handler(events));
          metrics.consumed.inc({ topic: t.name, outcome: "ok" }, events.length);
        }
        if (held) throw held;
      } catch (err) {
        if (spans && err !== held) failSpans(spans, events, err);
        if (err === held) throw err;
        if (err instanceof RetryLater) {
          // handled counts events; the bus counts records, undecodable ones included.
          const last = events[err.handled - 1];
          throw err.handled > 0 && last
            ? new RetryLater(err.delayMs, batch.indexOf(last.record) + 1)
            : err;
        }
        metrics.consumed.inc({ topic: t.name, outcome: "retried" }, events.length);
        log.warn({ err, topic: t.name }, "bus handler failed; the batch will be redelivered");
        throw err;
      } finally {
        for (const s of spans ?? []) s?.end();
      }
    },
  });
}

/**
 * consumerSpan starts the consumer span of one record, the child of the publish that its
 * headers name (the trace goes on across the bus), and hands its context to the event.
 */
function consumerSpan<T>(e: Event<T>): OpenSpan | undefined {
  const s = openSpan(`process ${e.record.topic}`, {
    kind: SpanKind.CONSUMER,
    parent: contextFrom(e.record.headers),
    attributes: processAttributes(e.record),
  });
  e.trace = s?.context;
  return s;
}

/**
 * failSpans marks failed the consumer spans of the records a failed handler did not finish
 * (RetryLater names how many it did: those stay successful).
 */
function failSpans<T>(
  spans: Array<OpenSpan | undefined>,
  events: Array<Event<T>>,
  err: unknown,
): void {
  const done = err instanceof RetryLater ? Math.min(err.handled, events.length) : 0;
  for (let i = done; i < spans.length; i++) {
    if (err instanceof RetryLater) spans[i]?.span.setAttribute("chat.retry_later", true);
    else spans[i]?.fail(err);
  }
}
