import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import test from "ava";
import { ConversationPositionSchema } from "../../gen/chat/v1/client_pb.ts";
import {
  type BatchDeliveredItemSchema,
  type Outcome,
  OutcomeSchema,
} from "../../gen/chat/v1/messaging_pb.ts";
import { AckRetry } from "../../services/gateway/ack-retry.ts";
import { silentLogger } from "../../services/shared/logger.ts";

type Item = MessageInitShape<typeof BatchDeliveredItemSchema>;

const position = (conversationId: string, seqs: Record<string, bigint>) =>
  create(ConversationPositionSchema, { conversationId, upTo: { seqs } });
const alice = { userId: "alice", deviceId: "phone" };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** calls records what each retry sent, and answers as `answer` says. */
function sender(answer: (call: number, items: Item[]) => Outcome[]) {
  const calls: Item[][] = [];
  return {
    calls,
    send: async (items: Item[]) => {
      calls.push(items);
      return answer(calls.length, items);
    },
  };
}

const ok = (items: Item[]) => items.map(() => create(OutcomeSchema));

test("a held ack is sent again until it goes through, merged with later acks of the same conversation", async (t) => {
  const s = sender((call, items) => {
    if (call === 1) throw new ConnectError("messaging unavailable", Code.Unavailable);
    return ok(items);
  });
  const retry = new AckRetry({ send: s.send, log: silentLogger, firstDelayMs: 20 });
  t.teardown(() => retry.close());
  retry.hold(alice, [position("c1", { "us-east-1": 3n })]);
  // A later ack of the same conversation, and one lower position that must not win.
  retry.hold(alice, [position("c1", { "us-east-1": 5n, "eu-west-1": 2n })]);
  retry.hold(alice, [position("c1", { "us-east-1": 4n }), position("c2", { "us-east-1": 1n })]);
  t.is(retry.size, 2);
  for (let i = 0; i < 100 && s.calls.length < 2; i++) await sleep(10);
  t.is(s.calls.length, 2, "failed once, then went through");
  t.deepEqual(s.calls[1], s.calls[0], "the retry sends the same merged positions");
  const [item] = s.calls[1] ?? [];
  t.deepEqual(item?.actor, alice);
  t.deepEqual(
    item?.conversations?.map((c) => [c.conversationId, c.upTo?.seqs]),
    [
      ["c1", { "us-east-1": 5n, "eu-west-1": 2n }],
      ["c2", { "us-east-1": 1n }],
    ],
  );
  t.is(retry.size, 0);
  await sleep(100);
  t.is(s.calls.length, 2, "nothing more once it went through");
});

test("an ack refused for good is dropped; one whose outcome is retryable is kept", async (t) => {
  const s = sender((call, items) =>
    items.map((item) => {
      const id = item.conversations?.[0]?.conversationId;
      if (id === "refused") {
        return create(OutcomeSchema, { error: { code: Code.PermissionDenied, message: "no" } });
      }
      if (id === "busy" && call === 1) {
        return create(OutcomeSchema, { error: { code: Code.Unavailable, message: "later" } });
      }
      return create(OutcomeSchema);
    }),
  );
  const retry = new AckRetry({ send: s.send, log: silentLogger, firstDelayMs: 20 });
  t.teardown(() => retry.close());
  retry.hold({ userId: "bob", deviceId: "phone" }, [position("refused", { "us-east-1": 1n })]);
  retry.hold({ userId: "cy", deviceId: "phone" }, [position("busy", { "us-east-1": 1n })]);
  for (let i = 0; i < 100 && s.calls.length < 2; i++) await sleep(10);
  t.is(s.calls.length, 2);
  t.deepEqual(
    s.calls[1]?.map((i) => i.conversations?.[0]?.conversationId),
    ["busy"],
    "only the retryable one came again",
  );
  await sleep(100);
  t.is(s.calls.length, 2);
});

test("an ack that keeps failing is given up after maxAgeMs", async (t) => {
  const s = sender(() => {
    throw new ConnectError("deadline", Code.DeadlineExceeded);
  });
  const retry = new AckRetry({
    send: s.send,
    log: silentLogger,
    firstDelayMs: 10,
    maxDelayMs: 20,
    maxAgeMs: 150,
  });
  t.teardown(() => retry.close());
  retry.hold(alice, [position("c1", { "us-east-1": 1n })]);
  await sleep(400);
  t.is(retry.size, 0, "nothing held any more");
  const calls = s.calls.length;
  // At least once, however late its timer fired (ten times, usually; a loaded machine's
  // stalled event loop may leave time for one).
  t.true(calls >= 1, `tried before given up (${calls})`);
  await sleep(100);
  t.is(s.calls.length, calls, "no more tries");
});

test("an ack is sent again at least once, even when its first retry comes after maxAgeMs", async (t) => {
  const s = sender(() => {
    throw new ConnectError("deadline", Code.DeadlineExceeded);
  });
  // maxAgeMs 0: every retry comes late, as after an event-loop stall.
  const retry = new AckRetry({ send: s.send, log: silentLogger, firstDelayMs: 5, maxAgeMs: 0 });
  t.teardown(() => retry.close());
  retry.hold(alice, [position("c1", { "us-east-1": 1n })]);
  await sleep(100);
  t.is(s.calls.length, 1, "tried once, then given up");
  t.is(retry.size, 0);
});

test("which failures are retried", (t) => {
  t.true(AckRetry.retryable(new ConnectError("x", Code.Unavailable)));
  t.true(AckRetry.retryable(new ConnectError("x", Code.DeadlineExceeded)));
  t.true(AckRetry.retryable(new ConnectError("x", Code.Canceled)));
  t.false(AckRetry.retryable(new ConnectError("x", Code.InvalidArgument)));
  t.false(AckRetry.retryable(new ConnectError("x", Code.Internal)));
  t.false(AckRetry.retryable(new Error("a bug")));
});
