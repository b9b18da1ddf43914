import {
  type Bus,
  BusClosedError,
  type BusRecord,
  type BusRecordInput,
  type ConsumerStatus,
  RetryLater,
  type SubscribeOptions,
  type Subscription,
} from "../../ports/bus.ts";

interface Partition {
  records: BusRecord[];
  /** offset of records[0] */
  base: number;
  wake: Set<() => void>;
}

interface Member {
  id: number;
  topics: Set<string>;
  /** since is when it joined (it consumes from then on). */
  since: number;
  handler: (batch: BusRecord[]) => Promise<void>;
  inflight: Set<Promise<void>>;
}

interface Group {
  id: string;
  fromBeginning: boolean;
  members: Member[];
  /** topic\0partition → next offset to consume */
  committed: Map<string, number>;
  /** topic\0partition → member currently assigned */
  owners: Map<string, Member>;
  workers: Set<string>;
  /** naps are the retry waits in progress: a rebalance cuts them short. */
  naps: Set<() => void>;
}

/**
 * MemoryBus is an in-process stand-in for Kafka with the same contract: keyed partitions kept
 * in order, consumer groups sharing partitions, at-least-once redelivery of batches whose
 * handler threw, and backpressure through the handler's promise. It works only within one
 * process. Unlike Kafka, a group with no members does not hold back retention: records all
 * active groups have consumed are dropped.
 */
export class MemoryBus implements Bus {
  readonly #topics = new Map<string, Partition[]>();
  readonly #groups = new Map<string, Group>();
  readonly #partitions: number;
  readonly #maxBatch: number;
  readonly #retryMs: number;
  #nextMember = 1;
  #closed = false;

  constructor(opts: { partitions?: number; maxBatch?: number; retryBackoffMs?: number } = {}) {
    this.#partitions = opts.partitions ?? 8;
    this.#maxBatch = opts.maxBatch ?? 500;
    this.#retryMs = opts.retryBackoffMs ?? 100;
  }

  async publish(topic: string, records: BusRecordInput[]): Promise<void> {
    if (this.#closed) throw new BusClosedError();
    const partitions = this.#topic(topic);
    const touched = new Set<Partition>();
    const now = Date.now();
    for (const r of records) {
      const partition = partitionOf(r.key, partitions.length);
      const p = partitions[partition] as Partition;
      const record: BusRecord = {
        topic,
        partition,
        offset: String(p.base + p.records.length),
        key: r.key,
        value: r.value,
        timestampMs: now,
      };
      if (r.headers) record.headers = r.headers;
      p.records.push(record);
      touched.add(p);
    }
    for (const p of touched) {
      const wake = [...p.wake];
      p.wake.clear();
      for (const w of wake) w();
    }
  }

  async subscribe(opts: SubscribeOptions): Promise<Subscription> {
    if (this.#closed) throw new BusClosedError();
    let group = this.#groups.get(opts.groupId);
    if (!group) {
      group = {
        id: opts.groupId,
        fromBeginning: opts.fromBeginning ?? false,
        members: [],
        committed: new Map(),
        owners: new Map(),
        workers: new Set(),
        naps: new Set(),
      };
      this.#groups.set(opts.groupId, group);
    }
    for (const t of opts.topics) this.#topic(t);
    const member: Member = {
      id: this.#nextMember++,
      topics: new Set(opts.topics),
      since: Date.now(),
      handler: opts.handler,
      inflight: new Set(),
    };
    group.members.push(member);
    this.#rebalance(group);
    const g = group;
    return {
      close: async () => {
        const i = g.members.indexOf(member);
        if (i >= 0) g.members.splice(i, 1);
        this.#rebalance(g);
        await Promise.allSettled([...member.inflight]);
      },
    };
  }

  consumers(): ConsumerStatus[] {
    const out: ConsumerStatus[] = [];
    for (const g of this.#groups.values()) {
      for (const m of g.members) {
        const partitions: Record<string, number[]> = {};
        for (const [tp, owner] of g.owners) {
          if (owner !== m) continue;
          const [topic, p] = tp.split("\u0000") as [string, string];
          partitions[topic] = [...(partitions[topic] ?? []), Number(p)];
        }
        out.push({
          groupId: g.id,
          topics: [...m.topics],
          state: "consuming",
          partitions,
          restarts: 0,
          sinceMs: m.since,
        });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const inflight: Promise<void>[] = [];
    for (const g of this.#groups.values()) {
      for (const m of g.members) inflight.push(...m.inflight);
      g.members = [];
      this.#rebalance(g);
    }
    await Promise.allSettled(inflight);
  }

  #topic(name: string): Partition[] {
    let t = this.#topics.get(name);
    if (!t) {
      t = Array.from({ length: this.#partitions }, () => ({
        records: [],
        base: 0,
        wake: new Set(),
      }));
      this.#topics.set(name, t);
    }
    return t;
  }

  /** rebalance assigns each partition of each topic round-robin to the members subscribed to it. */
  #rebalance(group: Group) {
    // A partition waiting to retry may have a new owner (or none): look again now.
    for (const wake of [...group.naps]) wake();
    group.owners.clear();
    const topics = new Set(group.members.flatMap((m) => [...m.topics]));
    for (const topic of topics) {
      const members = group.members.filter((m) => m.topics.has(topic));
      const partitions = this.#topic(topic);
      for (let p = 0; p < partitions.length; p++) {
        const tp = `${topic}\u0000${p}`;
        group.owners.set(tp, members[p % members.length] as Member);
        if (!group.workers.has(tp)) {
          group.workers.add(tp);
          void this.#work(group, topic, p);
        }
      }
    }
    for (const p of this.#topics.values()) for (const part of p) for (const w of part.wake) w();
  }

  /** work consumes one partition for a group, handing batches to whoever owns it now. */
  async #work(group: Group, topic: string, partition: number) {
    const tp = `${topic}\u0000${partition}`;
    const p = (this.#topics.get(topic) as Partition[])[partition] as Partition;
    let failures = 0;
    try {
      for (;;) {
        const owner = group.owners.get(tp);
        if (!owner || this.#closed) return;
        let next = group.committed.get(tp);
        if (next === undefined || next < p.base) {
          next = next === undefined && !group.fromBeginning ? p.base + p.records.length : p.base;
          group.committed.set(tp, next);
        }
        const start = next - p.base;
        if (start >= p.records.length) {
          await new Promise<void>((resolve) => p.wake.add(resolve));
          continue;
        }
        const batch = p.records.slice(start, start + this.#maxBatch);
        const run = owner.handler(batch);
        owner.inflight.add(run);
        try {
          await run;
          failures = 0;
          group.committed.set(tp, next + batch.length);
          this.#trim(topic, partition, p);
        } catch (err) {
          if (err instanceof RetryLater) {
            if (err.handled > 0) {
              group.committed.set(tp, next + Math.min(err.handled, batch.length));
              this.#trim(topic, partition, p);
            }
            await nap(group, err.delayMs);
          } else {
            failures++;
            await nap(group, Math.min(this.#retryMs * 2 ** (failures - 1), 5_000));
          }
        } finally {
          owner.inflight.delete(run);
        }
      }
    } finally {
      group.workers.delete(tp);
    }
  }

  #trim(topic: string, partition: number, p: Partition) {
    const tp = `${topic}\u0000${partition}`;
    let min = Number.POSITIVE_INFINITY;
    for (const g of this.#groups.values()) {
      if (g.members.length === 0 || !g.owners.has(tp)) continue;
      min = Math.min(min, g.committed.get(tp) ?? p.base);
    }
    const drop = Math.min(min, p.base + p.records.length) - p.base;
    // Trim in chunks: splicing the head of a large array on every commit would be quadratic.
    if (drop >= 1024 || (drop > 0 && drop === p.records.length)) {
      p.records.splice(0, drop);
      p.base += drop;
    }
  }
}

/** partitionOf maps a key to a partition (FNV-1a), the same for every publisher. */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

/** nap waits `ms`, or less if the group rebalances meanwhile. */
function nap(group: Group, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      group.naps.delete(wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    group.naps.add(wake);
  });
}
