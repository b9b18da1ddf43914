import test from "ava";
import {
  type Bus,
  type BusRecord,
  type ConsumerStatus,
  RetryLater,
} from "../../services/shared/ports/bus.ts";

/** BusFactory makes a bus on a fresh backend (or fresh topics of a shared one). */
export type BusFactory = () => Promise<{
  bus: Bus;
  topic: (name: string) => Promise<string>;
  dispose?: () => Promise<void>;
}>;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Collector gathers consumed records and resolves when a condition holds. */
class Collector {
  readonly records: BusRecord[] = [];
  #check: (() => void) | undefined;
  add(batch: BusRecord[]) {
    this.records.push(...batch);
    this.#check?.();
  }
  values() {
    return this.records.map((r) => dec.decode(r.value));
  }
  until(pred: () => boolean, ms = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out with ${this.records.length} records`)),
        ms,
      );
      this.#check = () => {
        if (pred()) {
          clearTimeout(timer);
          this.#check = undefined;
          resolve();
        }
      };
      this.#check();
    });
  }
}

/** until polls `holds` until it is true, or fails after `ms` saying what `state` shows. */
async function until(holds: () => boolean, state: () => string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!holds()) {
    if (Date.now() > deadline) throw new Error(`timed out; consumers: ${state()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

let counter = 0;
const uid = (p: string) => `${p}-${process.pid}-${++counter}`;

/**
 * Outage gives a suite a backend of its own whose broker it can take down and bring back,
 * so the outage cannot disturb the other tests.
 */
export type Outage = () => Promise<{
  made: Awaited<ReturnType<BusFactory>>;
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}>;

/** busContract registers the Bus contract tests for one implementation. */
export function busContract(
  name: string,
  factory: BusFactory,
  opts: { outage?: Outage } = {},
): void {
  const withBus = async (t: { teardown: (f: () => Promise<void>) => void }) => {
    const made = await factory();
    t.teardown(async () => {
      await made.bus.close();
      await made.dispose?.();
    });
    return made;
  };

  test(`${name}: records with one key arrive in publish order`, async (t) => {
    const { bus, topic } = await withBus(t);
    const name = await topic(uid("order"));
    const got = new Collector();
    await bus.subscribe({
      groupId: uid("g"),
      topics: [name],
      fromBeginning: true,
      handler: async (b) => got.add(b),
    });
    for (let i = 0; i < 50; i++) {
      await bus.publish(name, [
        { key: "k1", value: enc.encode(`a${i}`) },
        { key: "k2", value: enc.encode(`b${i}`) },
      ]);
    }
    await got.until(() => got.records.length >= 100);
    t.deepEqual(
      got.values().filter((v) => v.startsWith("a")),
      Array.from({ length: 50 }, (_, i) => `a${i}`),
    );
    t.deepEqual(
      got.values().filter((v) => v.startsWith("b")),
      Array.from({ length: 50 }, (_, i) => `b${i}`),
    );
    t.true(got.records.every((r) => r.topic === name && r.key.startsWith("k")));
  });

  test(`${name}: records keep their headers; records without keep none`, async (t) => {
    const { bus, topic } = await withBus(t);
    const name = await topic(uid("headers"));
    const got = new Collector();
    await bus.subscribe({
      groupId: uid("g"),
      topics: [name],
      fromBeginning: true,
      handler: async (b) => got.add(b),
    });
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await bus.publish(name, [
      { key: "k", value: enc.encode("traced"), headers: { traceparent, tracestate: "a=1" } },
      { key: "k", value: enc.encode("plain") },
    ]);
    await got.until(() => got.records.length >= 2);
    const [traced, plain] = got.records;
    t.is(dec.decode(traced?.value), "traced");
    t.deepEqual(traced?.headers, { traceparent, tracestate: "a=1" });
    t.is(dec.decode(plain?.value), "plain");
    t.is(plain?.headers, undefined);
  });

  test(`${name}: a group shares records among its members; each group gets them all`, async (t) => {
    const { bus, topic } = await withBus(t);
    const name = await topic(uid("groups"));
    const group = uid("g");
    // members collects what both members of the group got, so that waiting on it sees both.
    const [m1, m2, members, other] = [
      new Collector(),
      new Collector(),
      new Collector(),
      new Collector(),
    ];
    await bus.subscribe({
      groupId: group,
      topics: [name],
      fromBeginning: true,
      handler: async (b) => {
        m1.add(b);
        members.add(b);
      },
    });
    await bus.subscribe({
      groupId: group,
      topics: [name],
      fromBeginning: true,
      handler: async (b) => {
        m2.add(b);
        members.add(b);
      },
    });
    await bus.subscribe({
      groupId: uid("g"),
      topics: [name],
      fromBeginning: true,
      handler: async (b) => other.add(b),
    });
    const n = 200;
    await bus.publish(
      name,
      Array.from({ length: n }, (_, i) => ({ key: `key-${i}`, value: enc.encode(String(i)) })),
    );
    await other.until(() => other.records.length >= n);
    await members.until(() => new Set(members.values()).size >= n);
    t.is(new Set(other.values()).size, n);
    t.is(m1.records.length + m2.records.length >= n, true);
  });

  test(`${name}: consumers report the partitions they hold; one that leaves hands its share over`, async (t) => {
    const { bus, topic } = await withBus(t);
    const name = await topic(uid("owners"));
    const group = uid("g");
    const join = () =>
      bus.subscribe({
        groupId: group,
        topics: [name],
        fromBeginning: true,
        handler: async () => {},
      });
    const first = await join();
    await join();
    const mine = () => bus.consumers().filter((c) => c.groupId === group);
    const held = (c: ConsumerStatus) => [...(c.partitions[name] ?? [])].sort((x, y) => x - y);
    // Settled: both consuming, each with a share, and no partition in both (a member learns
    // of a rebalance only at its next heartbeat, so for a moment its list may be the old one).
    const settled = () => {
      const [a, b] = mine();
      return (
        a !== undefined &&
        b !== undefined &&
        mine().length === 2 &&
        mine().every((c) => c.state === "consuming" && held(c).length > 0) &&
        !held(a).some((p) => held(b).includes(p))
      );
    };
    await until(settled, () => JSON.stringify(mine()));
    const [a, b] = mine() as [ConsumerStatus, ConsumerStatus];
    t.deepEqual(
      held(a).filter((p) => held(b).includes(p)),
      [],
      "no partition is held twice",
    );
    const all = [...held(a), ...held(b)].sort((x, y) => x - y);
    await first.close();
    // The member left takes over the other's share (and any partition that was between owners
    // when the shares were read: a superset of them, not necessarily equal).
    const takenOver = () => {
      const left = mine()[0];
      return left !== undefined && all.every((p) => held(left).includes(p));
    };
    await until(
      () => mine().length === 1 && mine()[0]?.state === "consuming" && takenOver(),
      () => JSON.stringify(mine()),
    );
    t.true(takenOver(), "the member left holds every partition the two held");
  });

  test(`${name}: a batch whose handler throws is delivered again`, async (t) => {
    const { bus, topic } = await withBus(t);
    const name = await topic(uid("retry"));
    const got = new Collector();
    let failures = 0;
    await bus.subscribe({
      groupId: uid("g"),
      topics: [name],
      fromBeginning: true,
      handler: async (b) => {
        if (failures < 2) {
          failures++;
          throw new Error("transient");
        }
        got.add(b);
      },
    });
    await bus.publish(name, [{ key: "k", value: enc.encode("x") }]);
    await got.until(() => got.records.length >= 1);
    t.is(failures, 2);
    t.deepEqual(got.values(), ["x"]);
  });

  test(`${name}: close waits for the handler in flight, and a new member resumes after it`, async (t) => {
    const { bus, topic } = await withBus(t);
    const name = await topic(uid("close"));
    const group = uid("g");
    let release!: () => void;
    const blocked = new Promise<void>((r) => {
      release = r;
    });
    const first = new Collector();
    let entered!: () => void;
    const inHandler = new Promise<void>((r) => {
      entered = r;
    });
    const sub = await bus.subscribe({
      groupId: group,
      topics: [name],
      fromBeginning: true,
      handler: async (b) => {
        entered();
        await blocked;
        first.add(b);
      },
    });
    await bus.publish(name, [{ key: "k", value: enc.encode("one") }]);
    await inHandler;
    let closed = false;
    const closing = sub.close().then(() => {
      closed = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    t.false(closed, "close waits for the handler");
    release();
    await closing;
    t.deepEqual(first.values(), ["one"]);

    await bus.publish(name, [{ key: "k", value: enc.encode("two") }]);
    const second = new Collector();
    await bus.subscribe({
      groupId: group,
      topics: [name],
      fromBeginning: true,
      handler: async (b) => second.add(b),
    });
    await second.until(() => second.values().includes("two"));
    t.false(second.values().includes("one"), "the finished batch was committed");
  });

  test(`${name}: a new group starts at the end unless it asks for the beginning`, async (t) => {
    const { bus, topic } = await withBus(t);
    const name = await topic(uid("start"));
    await bus.publish(name, [{ key: "k", value: enc.encode("old") }]);
    const fromStart = new Collector();
    const fromEnd = new Collector();
    await bus.subscribe({
      groupId: uid("g"),
      topics: [name],
      fromBeginning: true,
      handler: async (b) => fromStart.add(b),
    });
    await bus.subscribe({
      groupId: uid("g"),
      topics: [name],
      fromBeginning: false,
      handler: async (b) => fromEnd.add(b),
    });
    await fromStart.until(() => fromStart.records.length >= 1);
    // Give the latest-offset consumer time to join before publishing.
    await new Promise((r) => setTimeout(r, 500));
    await bus.publish(name, [{ key: "k", value: enc.encode("new") }]);
    await fromEnd.until(() => fromEnd.values().includes("new"));
    await fromStart.until(() => fromStart.values().includes("new"));
    t.deepEqual(fromStart.values(), ["old", "new"]);
    t.deepEqual(fromEnd.values(), ["new"]);
  });

  test(`${name}: RetryLater hands the same batch back later, holding only its partition`, async (t) => {
    const { bus, topic } = await withBus(t);
    const name = await topic(uid("later"));
    const got = new Collector();
    let slowPartition = -1;
    let asked = 0;
    let deferred!: () => void;
    const firstDeferral = new Promise<void>((r) => {
      deferred = r;
    });
    await bus.subscribe({
      groupId: uid("g"),
      topics: [name],
      fromBeginning: true,
      handler: async (b) => {
        if (b.some((r) => dec.decode(r.value) === "slow") && asked++ === 0) {
          slowPartition = b[0]?.partition ?? -1;
          deferred();
          throw new RetryLater(1_500);
        }
        got.add(b);
      },
    });
    await bus.publish(name, [{ key: "slow-key", value: enc.encode("slow") }]);
    await firstDeferral;
    // Records on other partitions flow while the slow one waits.
    const fast: string[] = [];
    for (let i = 0; fast.length < 3; i++) {
      const key = `fast-${i}`;
      fast.push(`fast${i}`);
      await bus.publish(name, [{ key, value: enc.encode(`fast${i}`) }]);
    }
    await got.until(() => got.values().includes("slow"));
    const firstOther = got.records.findIndex((r) => r.partition !== slowPartition);
    const slowAt = got.values().indexOf("slow");
    t.true(asked >= 2, "the batch came back");
    t.true(firstOther >= 0 && firstOther < slowAt, "another partition was consumed meanwhile");
  });

  test(`${name}: RetryLater after part of a batch commits that part; only the rest comes again`, async (t) => {
    const { bus, topic } = await withBus(t);
    const name = await topic(uid("prefix"));
    const group = uid("g");
    await bus.publish(
      name,
      ["a", "b", "c"].map((v) => ({ key: "one-key", value: enc.encode(v) })),
    );
    let first: string[] | undefined;
    let deferred!: () => void;
    const handedBack = new Promise<void>((r) => {
      deferred = r;
    });
    const a = await bus.subscribe({
      groupId: group,
      topics: [name],
      fromBeginning: true,
      handler: async (b) => {
        first ??= b.map((r) => dec.decode(r.value));
        deferred();
        // The first record is done; the others are not due for a long while.
        throw new RetryLater(2_000, 1);
      },
    });
    await handedBack;
    await a.close();
    t.deepEqual(first, ["a", "b", "c"], "the three records came as one batch");
    // Another member of the group starts after the part that was handled.
    const got = new Collector();
    await bus.subscribe({
      groupId: group,
      topics: [name],
      fromBeginning: true,
      handler: async (b) => got.add(b),
    });
    await got.until(() => got.values().includes("c"));
    t.deepEqual(got.values(), ["b", "c"]);
  });

  test(`${name}: what a member never finished is redelivered to the members after a rebalance`, async (t) => {
    const { bus, topic } = await withBus(t);
    const name = await topic(uid("rebalance"));
    const group = uid("g");
    const attemptedByA = new Set<string>();
    let aTried!: () => void;
    const aHasTried = new Promise<void>((r) => {
      aTried = r;
    });
    // Member A takes records but never finishes them (as a member that is stuck, then crashes).
    const a = await bus.subscribe({
      groupId: group,
      topics: [name],
      fromBeginning: true,
      handler: async (b) => {
        for (const r of b) attemptedByA.add(dec.decode(r.value));
        aTried();
        throw new Error("member A fails");
      },
    });
    await bus.publish(
      name,
      Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: enc.encode(`r${i}`) })),
    );
    await aHasTried;
    const b = new Collector();
    await bus.subscribe({
      groupId: group,
      topics: [name],
      fromBeginning: true,
      handler: async (batch) => b.add(batch),
    });
    await a.close();
    await b.until(() => new Set(b.values()).size >= 20, 30_000);
    t.deepEqual(
      [...new Set(b.values())].sort(),
      Array.from({ length: 20 }, (_, i) => `r${i}`).sort(),
    );
    t.true(
      [...attemptedByA].every((v) => b.values().includes(v)),
      "everything A held came to B",
    );
  });

  const outage = opts.outage;
  if (outage) {
    test(`${name}: a broker going down and coming back loses nothing acknowledged`, async (t) => {
      const broker = await outage();
      t.teardown(async () => {
        await broker.made.bus.close();
        await broker.stop();
      });
      const { bus, topic } = broker.made;
      const name = await topic(uid("outage"));
      const seen = new Set<string>();
      const got = new Collector();
      await bus.subscribe({
        groupId: uid("g"),
        topics: [name],
        fromBeginning: true,
        handler: async (b) => {
          // An idempotent consumer: redeliveries are recognised and shown once.
          const fresh = b.filter((r) => !seen.has(dec.decode(r.value)));
          for (const r of fresh) seen.add(dec.decode(r.value));
          got.add(fresh);
        },
      });
      const acked: string[] = [];
      // A publish that fails (the brokers did not take it in time) is not acknowledged; the
      // caller retries it, as every publisher here does.
      const produce = async (from: number, to: number) => {
        for (let i = from; i < to; i++) {
          for (let attempt = 0; ; attempt++) {
            try {
              await bus.publish(name, [{ key: `k${i % 7}`, value: enc.encode(`v${i}`) }]);
              break;
            } catch (err) {
              if (attempt >= 20) throw err;
            }
          }
          acked.push(`v${i}`);
        }
      };
      await produce(0, 20);
      await broker.down();
      const during = produce(20, 40);
      await new Promise((r) => setTimeout(r, 2_000));
      await broker.up();
      await during;
      await produce(40, 60);
      await got.until(() => seen.size >= 60, 30_000);
      t.deepEqual([...seen].sort(), [...acked].sort(), "every acknowledged record arrived");
      t.is(got.records.length, 60, "and was handled once");
    });
  }
}
