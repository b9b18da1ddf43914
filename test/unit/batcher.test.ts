import test from "ava";
import { Batcher, inChunks, MAX_BATCH_ITEMS } from "../../services/shared/batcher.ts";

test("items added while a batch is in flight leave together in the next one, answered in order", async (t) => {
  const calls: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const b = new Batcher<number, number>({
    maxBatch: 100,
    maxInflight: 1,
    run: async (items) => {
      calls.push(items);
      if (calls.length === 1) await gate;
      return items.map((i) => i * 10);
    },
  });
  const first = b.add(1);
  await new Promise((r) => setImmediate(r));
  const later = [b.add(2), b.add(3), b.add(4)];
  release();
  t.deepEqual(await Promise.all([first, ...later]), [10, 20, 30, 40]);
  t.deepEqual(calls, [[1], [2, 3, 4]]);
});

test("a batch that fails fails each of its items, and the next batch still runs", async (t) => {
  let n = 0;
  const b = new Batcher<string, string>({
    maxBatch: 2,
    maxInflight: 1,
    run: async (items) => {
      if (n++ === 0) throw new Error("down");
      return items;
    },
  });
  const results = await Promise.allSettled([b.add("a"), b.add("b"), b.add("c")]);
  t.deepEqual(
    results.map((r) => r.status),
    ["rejected", "rejected", "fulfilled"],
  );
});

test("a batch answered with the wrong number of results fails, rather than mismatching", async (t) => {
  const b = new Batcher<number, number>({ maxBatch: 10, maxInflight: 1, run: async () => [1] });
  const err = await Promise.all([b.add(1), b.add(2)]).catch((e: Error) => e);
  t.regex(String(err), /batch of 2 answered with 1 results/);
});

test("inChunks keeps every call within the contracts' item limit and the results in order", async (t) => {
  const sizes: number[] = [];
  const items = Array.from({ length: MAX_BATCH_ITEMS * 2 + 5 }, (_, i) => i);
  const out = await inChunks(items, async (chunk) => {
    sizes.push(chunk.length);
    return chunk;
  });
  t.deepEqual(sizes, [MAX_BATCH_ITEMS, MAX_BATCH_ITEMS, 5]);
  t.deepEqual(out, items);
});

test("with lingerMs, items nobody waits on gather for that long and leave in one batch", async (t) => {
  const calls: number[][] = [];
  const b = new Batcher<number, number>({
    maxBatch: 3,
    maxInflight: 1,
    lingerMs: 1_000,
    run: async (items) => {
      calls.push(items);
      return items;
    },
  });
  const first = b.add(1);
  await new Promise((r) => setTimeout(r, 20));
  const second = b.add(2);
  t.deepEqual(await Promise.all([first, second]), [1, 2]);
  t.deepEqual(calls, [[1, 2]], "one call for items 20 ms apart");
  // A full batch does not wait.
  const full = [b.add(3), b.add(4), b.add(5)];
  const started = performance.now();
  await Promise.all(full);
  t.deepEqual(calls[1], [3, 4, 5]);
  t.true(performance.now() - started < 500, "a full batch leaves at once, not after its linger");
});
