import {
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  Kafka,
  type KafkaConfig,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import { BackendError, Code } from "../../errors.ts";
import type { Logger } from "../../logger.ts";
import {
  type Bus,
  BusClosedError,
  type BusRecord,
  type BusRecordInput,
  type ConsumerStatus,
  type RecordHeaders,
  RetryLater,
  type SubscribeOptions,
  type Subscription,
} from "../../ports/bus.ts";
import { ensureTopics, type TopicPlan } from "./topic-admin.ts";

/** PUBLISH_TIMEOUT_MS is how long a publish waits for the brokers by default. */
export const PUBLISH_TIMEOUT_MS = 3_000;

/** KafkaBusOptions tune the consumers (the connection itself is a KafkaConfig). */
export interface KafkaBusOptions {
  /** sessionTimeoutMs: a member silent this long is dropped from its group (and a rebalance starts). */
  sessionTimeoutMs: number;
  /** maxWaitMs bounds how long a fetch waits for data (and how long a disconnect waits for a fetch). */
  maxWaitMs: number;
  /**
   * publishTimeoutMs bounds how long a publish waits for the brokers: past it, publish fails
   * with a retryable UNAVAILABLE error (kafkajs would retry for a minute, past every caller's
   * deadline). The records may still be written after it; consumers are idempotent. Default
   * PUBLISH_TIMEOUT_MS.
   */
  publishTimeoutMs?: number;
  /**
   * ensureTopics, when set, creates missing topics before the first publish or subscription
   * (local runs and tests; a deployment creates them once, with the kafka-topics job).
   */
  ensureTopics?: TopicPlan;
}

/**
 * KafkaBus is the Bus on Kafka (Amazon MSK in production), through kafkajs.
 *
 * Publishing uses the Java client's murmur2 partitioner, so a key lands on the same partition
 * whoever publishes it, and waits for all in-sync replicas (acks=-1). Each subscription is one
 * consumer of its group; it handles a batch per partition, partitions concurrently, commits
 * a batch's offsets only after its handler resolved, heartbeats while a handler runs, and on
 * RetryLater pauses just that partition and resumes it from the batch's first offset.
 * The idempotent producer stays off: at-least-once with idempotent consumers is the contract,
 * and the local mock broker cannot serve it.
 */
export class KafkaBus implements Bus {
  readonly #kafka: Kafka;
  readonly #producerKafka: Kafka;
  readonly #opts: KafkaBusOptions;
  readonly #log: Logger;
  readonly #consumers = new Set<Consumer>();
  readonly #statuses = new Set<ConsumerStatus>();
  #producer: Promise<Producer> | undefined;
  #topicsReady: Promise<void> | undefined;
  #closed = false;

  constructor(config: KafkaConfig, opts: KafkaBusOptions, log: Logger) {
    this.#opts = opts;
    this.#log = log;
    const client = (retry: { retries: number; maxRetryTime: number }) =>
      new Kafka({
        connectionTimeout: 3_000,
        requestTimeout: 10_000,
        retry: { initialRetryTime: 100, ...retry },
        logLevel: logLevel.WARN,
        logCreator: () => (entry) => {
          const { message, ...rest } = entry.log;
          const level =
            entry.level === logLevel.ERROR
              ? "error"
              : entry.level === logLevel.WARN
                ? "warn"
                : "debug";
          // kafkajs reports every heartbeat refused during a rebalance as an error; it is routine.
          const routine = /rebalancing|re-joining|The group is rebalancing/i.test(message);
          log[routine ? "debug" : level]({ kafka: entry.namespace, ...rest }, message);
        },
        ...config,
      });
    this.#kafka = client({ retries: 30, maxRetryTime: 2_000 });
    // Publishes have their own client: its retries (connecting included) last a few seconds,
    // enough for a broker's partitions to move to another (a failover, a rolling update), not
    // the minute the consumers' last. A send's caller has had its answer at publishTimeoutMs
    // and retries by itself; a send still retrying would only keep a closed bus's process alive.
    this.#producerKafka = client({ retries: 10, maxRetryTime: 1_000 });
  }

  async publish(topic: string, records: BusRecordInput[]): Promise<void> {
    if (this.#closed) throw new BusClosedError();
    if (records.length === 0) return;
    const timeoutMs = this.#opts.publishTimeoutMs ?? PUBLISH_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new BackendError(
              Code.Unavailable,
              "bus",
              `unavailable: ${topic} not acknowledged by the brokers within ${timeoutMs} ms; retry`,
              undefined,
            ),
          ),
        timeoutMs,
      );
    });
    const sending = (async () => {
      const producer = await this.#connectProducer();
      await producer.send({
        topic,
        acks: -1,
        messages: records.map((r) => ({
          key: r.key,
          value: Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength),
          headers: r.headers,
        })),
      });
    })();
    // The send goes on after a timeout; its failure then has nobody to tell.
    sending.catch(() => {});
    try {
      await Promise.race([sending, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  async subscribe(opts: SubscribeOptions): Promise<Subscription> {
    if (this.#closed) throw new BusClosedError();
    await this.#ensureTopics();
    let consumer: Consumer | undefined;
    let closed = false;
    let restartTimer: NodeJS.Timeout | undefined;
    const status: ConsumerStatus = {
      groupId: opts.groupId,
      topics: [...opts.topics],
      state: "joining",
      partitions: {},
      restarts: 0,
      sinceMs: Date.now(),
    };
    const enter = (state: ConsumerStatus["state"], partitions: Record<string, number[]> = {}) => {
      if (status.state !== state) status.sinceMs = Date.now();
      status.state = state;
      status.partitions = partitions;
    };
    this.#statuses.add(status);
    /** backoff is how many crashes in a row the next restart waits for (reset on a join). */
    let backoff = 0;
    const start = async () => {
      const c = this.#kafka.consumer({
        groupId: opts.groupId,
        sessionTimeout: this.#opts.sessionTimeoutMs,
        rebalanceTimeout: Math.max(this.#opts.sessionTimeoutMs, 10_000),
        heartbeatInterval: Math.max(100, Math.floor(this.#opts.sessionTimeoutMs / 10)),
        maxWaitTimeInMs: this.#opts.maxWaitMs,
        allowAutoTopicCreation: false,
        retry: {
          retries: 30,
          initialRetryTime: 100,
          maxRetryTime: 2_000,
          // kafkajs restarts a consumer that crashed while rejoining, closed bus or not.
          restartOnFailure: async () => !closed && !this.#closed,
        },
      });
      consumer = c;
      this.#consumers.add(c);
      // kafkajs gives up for good on an error it deems not retriable (a broker answering a
      // group request with an error it does not expect): the consumer leaves its group and
      // consumes nothing, silently. A consumer of this bus never gives up: it starts again.
      c.on(c.events.CRASH, ({ payload }) => {
        if (closed || this.#closed) return;
        status.error = payload.error.message;
        if (payload.restart) {
          // A retriable error (a broker away for longer than the retries): kafkajs rejoins.
          enter("joining");
          return;
        }
        enter("restarting");
        this.#consumers.delete(c);
        status.restarts++;
        const delayMs = Math.min(30_000, 500 * 2 ** backoff++);
        this.#log.error(
          { groupId: opts.groupId, err: payload.error, delayMs },
          "bus consumer crashed; starting it again",
        );
        restartTimer = setTimeout(() => {
          if (!closed && !this.#closed)
            start().catch((err) => this.#log.error({ err }, "bus consumer restart failed"));
        }, delayMs);
      });
      c.on(c.events.REBALANCING, () => {
        if (status.state !== "restarting") enter("joining");
      });
      c.on(c.events.GROUP_JOIN, ({ payload }) => {
        backoff = 0;
        enter("consuming", payload.memberAssignment);
      });
      await c.connect();
      if (closed || this.#closed) {
        // Closed while this (re)start was connecting: the close did not see this consumer.
        this.#consumers.delete(c);
        await c.disconnect();
        return;
      }
      await c.subscribe({ topics: opts.topics, fromBeginning: opts.fromBeginning ?? false });
      await c.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 16,
        eachBatch: (payload) => this.#handle(c, opts.handler, payload),
      });
    };
    await start();
    return {
      close: async () => {
        closed = true;
        clearTimeout(restartTimer);
        this.#statuses.delete(status);
        if (consumer) {
          this.#consumers.delete(consumer);
          await consumer.disconnect();
        }
      },
    };
  }

  consumers(): ConsumerStatus[] {
    return [...this.#statuses].map((s) => ({ ...s, partitions: { ...s.partitions } }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    // A consumer's own restart timer checks #closed; the consumers running now stop here.
    await Promise.all([...this.#consumers].map((c) => c.disconnect()));
    this.#consumers.clear();
    this.#statuses.clear();
    // A producer that never connected has nothing to disconnect.
    await this.#producer?.then(
      (p) => p.disconnect(),
      () => undefined,
    );
  }

  async #handle(
    consumer: Consumer,
    handler: (batch: BusRecord[]) => Promise<void>,
    {
      batch,
      heartbeat,
      resolveOffset,
      commitOffsetsIfNecessary,
      isRunning,
      isStale,
    }: EachBatchPayload,
  ): Promise<void> {
    if (batch.messages.length === 0 || !isRunning() || isStale()) return;
    const records: BusRecord[] = batch.messages.map((m) => {
      const record: BusRecord = {
        topic: batch.topic,
        partition: batch.partition,
        offset: m.offset,
        key: m.key?.toString("utf8") ?? "",
        value: m.value
          ? new Uint8Array(m.value.buffer, m.value.byteOffset, m.value.byteLength)
          : new Uint8Array(),
        timestampMs: Number(m.timestamp),
      };
      const headers = m.headers && headersOf(m.headers);
      if (headers) record.headers = headers;
      return record;
    });
    // Commit now, not on a timer: a batch handled is a batch nobody else gets again. (The
    // payload's commit, unlike consumer.commitOffsets, still commits while the consumer stops.)
    const commitThrough = async (offset: string) => {
      resolveOffset(offset);
      const next = (BigInt(offset) + 1n).toString();
      await commitOffsetsIfNecessary({
        topics: [
          { topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] },
        ],
      });
      return next;
    };
    // Keep the membership alive however long the handler takes.
    const beat = setInterval(
      () => {
        heartbeat().catch(() => undefined);
      },
      Math.max(100, Math.floor(this.#opts.sessionTimeoutMs / 3)),
    );
    try {
      await handler(records);
    } catch (err) {
      if (!(err instanceof RetryLater)) throw err; // kafkajs retries the batch, then restarts
      const tp = [{ topic: batch.topic, partitions: [batch.partition] }];
      consumer.pause(tp);
      const done = Math.min(err.handled, records.length);
      const last = records[done - 1];
      const afterHandled = last ? await commitThrough(last.offset) : undefined;
      consumer.seek({
        topic: batch.topic,
        partition: batch.partition,
        offset: records[done]?.offset ?? afterHandled ?? batch.firstOffset() ?? "0",
      });
      setTimeout(() => {
        try {
          consumer.resume(tp);
        } catch {
          // The consumer stopped meanwhile; whoever owns the partition next starts after the
          // committed records.
        }
      }, err.delayMs).unref();
      return;
    } finally {
      clearInterval(beat);
    }
    await commitThrough(batch.lastOffset());
  }

  #connectProducer(): Promise<Producer> {
    if (this.#producer) return this.#producer;
    const connecting = (async () => {
      await this.#ensureTopics();
      const producer = this.#producerKafka.producer({
        createPartitioner: Partitioners.DefaultPartitioner,
        allowAutoTopicCreation: false,
        idempotent: false,
      });
      await producer.connect();
      return producer;
    })();
    this.#producer = connecting;
    // A connect that failed (the brokers were away) is tried again by the next publish; kept,
    // it would fail every publish of this process for good.
    connecting.catch(() => {
      if (this.#producer === connecting) this.#producer = undefined;
    });
    return connecting;
  }

  #ensureTopics(): Promise<void> {
    const wanted = this.#opts.ensureTopics;
    if (!wanted) return Promise.resolve();
    this.#topicsReady ??= (async () => {
      const admin = this.#kafka.admin();
      await admin.connect();
      try {
        await ensureTopics(admin, wanted, this.#log);
      } finally {
        await admin.disconnect();
      }
    })();
    const ready = this.#topicsReady;
    ready.catch(() => {
      if (this.#topicsReady === ready) this.#topicsReady = undefined;
    });
    return ready;
  }
}

/**
 * headersOf reads a consumed record's headers as strings (kafkajs hands them over as bytes;
 * a header repeated keeps its last value), or undefined when it has none.
 */
function headersOf(raw: IHeaders): RecordHeaders | undefined {
  let out: Record<string, string> | undefined;
  for (const name in raw) {
    const v = raw[name];
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last === undefined) continue;
    out ??= {};
    out[name] = typeof last === "string" ? last : last.toString("utf8");
  }
  return out;
}
