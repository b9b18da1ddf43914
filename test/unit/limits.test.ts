import { create } from "@bufbuild/protobuf";
import test from "ava";
import { PushTokenSchema } from "../../gen/chat/v1/persistence_pb.ts";
import { PushPlatform } from "../../gen/chat/v1/types_pb.ts";
import { RateLimiter } from "../../services/messaging/rate-limit.ts";
import { newestTokens } from "../../services/notification/push/device-cap.ts";

test("a rate limiter gives a minute's worth at once, then one per share of the minute, per key", (t) => {
  let now = 1_000_000;
  const limiter = new RateLimiter({ perMinute: 3, now: () => now });
  t.deepEqual(
    [1, 2, 3].map(() => limiter.take("alice")),
    [0, 0, 0],
  );
  t.is(limiter.take("alice"), 20_000, "the next token comes in a third of a minute");
  t.is(limiter.take("bob"), 0, "every key has its own bucket");
  now += 10_000;
  t.is(limiter.take("alice"), 10_000, "a refused take spends nothing");
  now += 10_000;
  t.is(limiter.take("alice"), 0);
  now += 3_600_000;
  t.deepEqual(
    [1, 2, 3, 4].map(() => limiter.take("alice") === 0),
    [true, true, true, false],
    "no more than a minute's worth is saved up",
  );
});

test("the tokens kept for a user are the most recently registered, and the one just registered", (t) => {
  const token = (deviceId: string, registeredAtMs: number) =>
    create(PushTokenSchema, {
      deviceId,
      platform: PushPlatform.FCM,
      token: `t-${deviceId}`,
      registeredAtMs: BigInt(registeredAtMs),
    });
  const tokens = [token("a", 10), token("b", 30), token("c", 20), token("d", 30), token("e", 5)];
  t.deepEqual(
    newestTokens(tokens, 3).map((x) => x.deviceId),
    ["b", "d", "c"],
    "newest first; equal times in device order, the same in every task",
  );
  t.deepEqual(
    newestTokens(tokens, 3, "e").map((x) => x.deviceId),
    ["e", "b", "d"],
    "the device registering now is never the one forgotten",
  );
  t.is(newestTokens(tokens, 10).length, 5);
});
