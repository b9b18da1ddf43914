import test from "ava";
import { Backoff } from "../../client/backoff.ts";
import {
  ConfigError,
  loadGatewayConfig,
  loadMessagingConfig,
  loadNotificationConfig,
} from "../../services/shared/config.ts";
import { directConversationId, groupConversationId } from "../../services/shared/ids.ts";
import { KeyedLock } from "../../services/shared/keyed-lock.ts";
import { latestMembership } from "../../services/shared/ports/chat-store.ts";
import {
  dominates,
  mergeMax,
  vectorFromProto,
  vectorToProto,
} from "../../services/shared/version-vector.ts";

test("backoff grows exponentially with full jitter up to a ceiling, and resets", (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 1_000, random: () => 0.999 });
  t.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [99, 199, 399, 799, 999]);
  b.reset();
  t.is(b.next(), 99);
  const low = new Backoff({ initialMs: 100, random: () => 0 });
  t.is(low.next(), 0);
});

test("the keyed lock runs work one at a time per key, in order, and survives failures", async (t) => {
  const lock = new KeyedLock();
  const log: string[] = [];
  const step = (name: string, ms: number, fail = false) =>
    lock.run("k", async () => {
      log.push(`${name}+`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`${name}-`);
      if (fail) throw new Error(name);
    });
  const other = lock.run("other", async () => log.push("other"));
  await Promise.allSettled([step("a", 20, true), step("b", 1), step("c", 1)]);
  await other;
  t.deepEqual(
    log.filter((x) => x !== "other"),
    ["a+", "a-", "b+", "b-", "c+", "c-"],
  );
  t.true(log.indexOf("other") < log.indexOf("a-"), "other keys do not wait");
});

test("version vectors convert, merge and compare entry by entry", (t) => {
  const a = new Map([
    ["x", 3n],
    ["y", 1n],
  ]);
  const b = new Map([
    ["x", 2n],
    ["z", 4n],
  ]);
  t.deepEqual(
    mergeMax(a, b),
    new Map([
      ["x", 3n],
      ["y", 1n],
      ["z", 4n],
    ]),
  );
  t.true(dominates(mergeMax(a, b), b));
  t.false(dominates(a, b));
  t.deepEqual(
    vectorFromProto(
      vectorToProto(
        new Map([
          ["x", 5n],
          ["zero", 0n],
        ]),
      ),
    ),
    new Map([["x", 5n]]),
  );
});

test("membership merges to the item with the greatest (hlc, region), the same everywhere", (t) => {
  const items = new Map([
    ["us-east-1", { member: true, hlc: 10n }],
    ["eu-west-1", { member: false, hlc: 12n }],
  ]);
  t.false(latestMembership(items)?.member);
  items.set("ap-south-1", { member: true, hlc: 12n });
  t.false(latestMembership(items)?.member, "ties break by region name: eu-west-1 > ap-south-1");
  items.set("us-west-2", { member: true, hlc: 12n });
  t.true(latestMembership(items)?.member);
});

test("conversation ids are derived deterministically", (t) => {
  t.is(directConversationId("a", "b"), directConversationId("b", "a"));
  t.not(directConversationId("a", "b"), directConversationId("a", "c"));
  t.regex(directConversationId("a", "b"), /^d_[A-Za-z0-9_-]{26}$/);
  t.is(groupConversationId("a", "x"), groupConversationId("a", "x"));
  t.not(groupConversationId("a", "x"), groupConversationId("b", "x"));
});

test("configuration errors name the variable and the bad value", (t) => {
  const err = t.throws(
    () =>
      loadGatewayConfig({
        AUTH_JWKS_URL: "not a url",
        CHAT_REGION: "US East",
        PORT: "99999",
        HEARTBEAT_INTERVAL_MS: "soon",
      }),
    { instanceOf: ConfigError },
  );
  t.regex(err.message, /AUTH_JWKS_URL: .*\(got "not a url"\)/);
  t.regex(err.message, /CHAT_REGION: must be lowercase letters, digits and '-'.*\(got "US East"\)/);
  t.regex(err.message, /PORT: .*\(got "99999"\)/);
  t.regex(err.message, /HEARTBEAT_INTERVAL_MS: .*\(got "soon"\)/);
  t.throws(() => loadGatewayConfig({}), { message: /AUTH_JWKS_URL/ });
  t.throws(() => loadNotificationConfig({ PUSH_PROVIDER: "webhook" }), {
    message: /PUSH_WEBHOOK_URL: required/,
  });
  t.throws(() => loadMessagingConfig({ CHAT_BUS: "rabbitmq" }), { message: /CHAT_BUS/ });
  const ok = loadMessagingConfig({
    CHAT_REGION: "eu-west-1",
    CHAT_PEER_REGIONS: "us-east-1, eu-west-1",
  });
  t.deepEqual(
    [ok.region, ok.peers, ok.mirrors, ok.port],
    ["eu-west-1", ["us-east-1"], ["us-east-1"], 8081],
  );
  const msk = loadMessagingConfig({
    CHAT_REGION: "us-east-1",
    CHAT_PEER_REGIONS: "eu-west-1=msk-chat-eu-a1b2c3,ap-south-1",
  });
  t.deepEqual(msk.peers, ["eu-west-1", "ap-south-1"]);
  t.deepEqual(msk.mirrors, ["msk-chat-eu-a1b2c3", "ap-south-1"], "MSK Replicator's alias prefixes");
  t.throws(() => loadMessagingConfig({ CHAT_PEER_REGIONS: "eu-west-1=bad prefix" }), {
    message: /CHAT_PEER_REGIONS: topic prefixes are letters/,
  });
});
