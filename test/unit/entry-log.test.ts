import { create } from "@bufbuild/protobuf";
import test from "ava";
import { MessageSchema } from "../../gen/chat/v1/types_pb.ts";
import { EntryLog } from "../../services/shared/adapters/memory/entry-log.ts";

const m = (id: string) => create(MessageSchema, { clientMsgId: id });
const seqs = (log: EntryLog) =>
  [...log].map(([seq, k]) => `${seq}:${k.message.clientMsgId}@${k.atMs}`);

test("entries arriving in any order, with holes, are kept and read by ascending seq", (t) => {
  const log = new EntryLog();
  log.set(5n, { message: m("e"), atMs: 50 });
  log.set(7n, { message: m("g"), atMs: 70 });
  log.set(2n, { message: m("b"), atMs: 20 }); // below the oldest held
  log.set(6n, { message: m("f"), atMs: 60 });
  t.deepEqual(seqs(log), ["2:b@20", "5:e@50", "6:f@60", "7:g@70"]);
  t.is(log.size, 4);
  t.false(log.has(3n));
  t.false(log.has(1n));
  t.false(log.has(8n));
  t.is(log.get(6n)?.atMs, 60);
  t.is(log.last(), 7n);
  log.set(6n, { message: m("f2"), atMs: 61 });
  t.is(log.size, 4, "a seq written again replaces its entry");
});

test("the oldest entries drop first, holes with them, and the log refills after emptying", (t) => {
  const log = new EntryLog();
  for (let i = 1n; i <= 3000n; i++) log.set(i, { message: m(String(i)), atMs: Number(i) });
  log.set(3002n, { message: m("3002"), atMs: 3002 });
  for (let i = 0; i < 2999; i++) log.dropFirst();
  t.deepEqual(seqs(log), ["3000:3000@3000", "3002:3002@3002"]);
  t.deepEqual(log.first()?.[0], 3000n);
  log.dropFirst();
  t.deepEqual(log.first()?.[0], 3002n);
  log.dropFirst();
  t.is(log.size, 0);
  t.is(log.first(), undefined);
  t.is(log.last(), 0n);
  log.set(9000n, { message: m("x"), atMs: 1 });
  t.deepEqual(seqs(log), ["9000:x@1"]);
});
