import { create, toBinary } from "@bufbuild/protobuf";
import test from "ava";
import { HistorySchema, MessageSchema } from "../../gen/chat/v1/types_pb.ts";
import { capHistory, historyLimit } from "../../services/gateway/history-cap.ts";

const message = (seq: number, text: string) =>
  create(MessageSchema, {
    conversationId: "c1",
    originRegion: "us-east-1",
    seq: BigInt(seq),
    senderId: "alice",
    senderDeviceId: "phone",
    clientMsgId: `m${seq}`,
    content: { case: "text", value: text },
  });
const page = (texts: string[]) =>
  create(HistorySchema, { messages: texts.map((text, i) => message(i + 1, text)) });

test("a page over the cap keeps its newest messages and says older ones are left", (t) => {
  const big = "x".repeat(10_000);
  const capped = capHistory(page([big, big, big, big, big]), 25_000);
  t.deepEqual(
    capped.messages.map((m) => Number(m.seq)),
    [4, 5],
  );
  t.true(capped.hasMore);
  t.true(toBinary(HistorySchema, capped).length <= 25_000, "the estimate does not undercount");
});

test("a page within the cap, and a single message over it, go out as they are", (t) => {
  const small = page(["a", "b", "c"]);
  t.is(capHistory(small, 1_024), small);
  const one = page(["y".repeat(20_000)]);
  t.is(capHistory(one, 16_384).messages.length, 1, "always at least one message");
});

test("no more messages are asked for than fit at the largest size", (t) => {
  t.is(historyLimit(200, 1_048_576), 62);
  t.is(historyLimit(0, 1_048_576), 50, "unset is the default of 50");
  t.is(historyLimit(20, 1_048_576), 20);
  t.is(historyLimit(0, 262_144), 15);
  t.is(historyLimit(200, 16_384), 1);
});
