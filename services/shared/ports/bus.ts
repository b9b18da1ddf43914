/**
 * Bus is the region's durable message bus (Kafka semantics): named topics split into
 * partitions, records with a key (same key, same partition, kept in order), consumer groups
 * that share the partitions of their topics, and at-least-once delivery: a record is
 * redelivered until a handler of its group has returned for it, so every handler must be
 * idempotent.
 *
 * Topics mirrored from another region appear as `<region>.<topic>` (MirrorMaker 2 naming).
 *
 * Implementations: MemoryBus (one process), KafkaBus.
 */
export interface Bus {
  /**
   * publish appends records to a topic and resolves once they are durable. Records with the
   * same key keep their relative order.
   */
  publish(topic: string, records: BusRecordInput[]): Promise<void>;

  /**
   * subscribe joins a consumer group. The handler gets batches of records from one partition
   * at a time, in order; the next batch of that partition waits until the handler resolves
   * (that is the backpressure). A handler that throws gets the same batch again after a
   * backoff (RetryLater sets the delay). Offsets are committed only for batches whose handler
   * resolved.
   */
  subscribe(opts: SubscribeOptions): Promise<Subscription>;

  /**
   * consumers tells what every open subscription is doing now: health and the operators read
   * it, so a consumer that stopped is never invisible.
   */
  consumers(): ConsumerStatus[];

  /** close stops every subscription and producer. */
  close(): Promise<void>;
}

/** ConsumerStatus is the state of one subscription. */
export interface ConsumerStatus {
  groupId: string;
  topics: string[];
  /**
   * joining: waiting for its group to (re)assign partitions; consuming: holds its share of
   * the partitions (possibly none, when the group has more members than partitions);
   * restarting: it crashed and is being started again.
   */
  state: "joining" | "consuming" | "restarting";
  /**
   * partitions held, by topic, as of the consumer's last join: during a rebalance a member
   * learns it must give partitions up at its next heartbeat, so for a moment two members may
   * list the same partition.
   */
  partitions: Record<string, number[]>;
  /** restarts counts the crashes it was started again after. */
  restarts: number;
  /** error is why it last crashed. */
  error?: string;
  /** sinceMs is when it entered its state (Unix ms). */
  sinceMs: number;
}

/** BusClosedError is what a closed bus answers (its task is shutting down). */
export class BusClosedError extends Error {
  override name = "BusClosedError";
  constructor() {
    super("bus is closed");
  }
}

/**
 * RetryLater, thrown by a handler, asks for the batch again after `delayMs` without counting
 * it as a failure. The first `handled` records of the batch are done: they are committed and
 * not delivered again, and the retry starts after them. The partition waits; other
 * partitions go on (Kafka: the partition is paused, then resumed from the first record not
 * handled).
 */
export class RetryLater extends Error {
  override name = "RetryLater";
  readonly delayMs: number;
  readonly handled: number;
  constructor(delayMs: number, handled = 0) {
    super(`retry in ${delayMs} ms${handled > 0 ? ` after the first ${handled} records` : ""}`);
    this.delayMs = delayMs;
    this.handled = handled;
  }
}

/**
 * RecordHeaders are a record's metadata beside its payload (Kafka record headers): the W3C
 * trace context of its publish (tracing.ts). Consumers never need them to handle the record.
 */
export type RecordHeaders = Readonly<Record<string, string>>;

/** BusRecordInput is a record to publish. */
export interface BusRecordInput {
  key: string;
  value: Uint8Array;
  headers?: RecordHeaders;
}

/** BusRecord is a consumed record. */
export interface BusRecord {
  topic: string;
  partition: number;
  offset: string;
  key: string;
  value: Uint8Array;
  timestampMs: number;
  /** headers are those it was published with; absent when it had none. */
  headers?: RecordHeaders;
}

/** SubscribeOptions configures a consumer. */
export interface SubscribeOptions {
  groupId: string;
  topics: string[];
  /** fromBeginning starts a group that has no committed offset at the oldest record. */
  fromBeginning?: boolean;
  handler: (batch: BusRecord[]) => Promise<void>;
}

/** Subscription is a running consumer. */
export interface Subscription {
  /** close stops fetching, waits for the handler in flight and commits what it finished. */
  close(): Promise<void>;
}
