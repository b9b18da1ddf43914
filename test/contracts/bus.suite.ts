import test from "ava";
import type { Bus, BusRecord } from "../../services/shared/ports/bus.ts";

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
  until(pred: () => boolean, ms = 10_000): Promise<void> {
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

let counter = 0;
const uid = (p: string) => `${p}-${process.pid}-${++counter}`;

/** busContract registers the Bus contract tests for one implementation. */
export function busContract(name: string, factory: BusFactory): void {
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

  test(`${name}: a group shares records among its members; each group gets them all`, async (t) => {
    const { bus, topic } = await withBus(t);
    const name = await topic(uid("groups"));
    const group = uid("g");
    const [m1, m2, other] = [new Collector(), new Collector(), new Collector()];
    await bus.subscribe({
      groupId: group,
      topics: [name],
      fromBeginning: true,
      handler: async (b) => m1.add(b),
    });
    await bus.subscribe({
      groupId: group,
      topics: [name],
      fromBeginning: true,
      handler: async (b) => m2.add(b),
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
    await m1.until(() => new Set([...m1.values(), ...m2.values()]).size >= n);
    t.is(new Set(other.values()).size, n);
    t.is(m1.records.length + m2.records.length >= n, true);
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
}
