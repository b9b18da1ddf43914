import { Code, ConnectError } from "@connectrpc/connect";
import test, { registerCompletionHandler } from "ava";
import { MessagingService } from "../../gen/chat/v1/messaging_pb.ts";
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { ConversationKind } from "../../gen/chat/v1/types_pb.ts";
import { type LocalRegion, startLocalRegion } from "../../services/region/region.ts";
import { KafkaBus } from "../../services/shared/adapters/kafka/kafka-bus.ts";
import { openRegistry, openStores } from "../../services/shared/backends.ts";
import { createServiceClients, type ServiceClients } from "../../services/shared/clients.ts";
import { loadPersistenceConfig } from "../../services/shared/config.ts";
import { isRetryableCode } from "../../services/shared/errors.ts";
import { actingFor, signerOf } from "../../services/shared/internal-auth.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { type FaultBackends, startFaultBackends } from "../support/fault-backends.ts";
import { missingRealBackend } from "../support/real-backends.ts";

// A region on the real local backends (DynamoDB Local, redis-server, mock Kafka), each of which
// goes away under the running services: a request that needs it must fail as Unavailable
// (retryable), never as Internal, and the same request must succeed, once, when it is back.

const missing = missingRealBackend();

// A KafkaBus closed shortly after a Kafka outage can leave a kafkajs consumer behind: one still
// rejoining its group when the bus closes crashes, and kafkajs restarts it on its own timer
// (it asks KafkaBus nothing: no restartOnFailure), which keeps retrying and keeps this
// process alive. Until KafkaBus refuses those restarts once closed, end the worker when AVA
// is done.
registerCompletionHandler(() => process.exit());

interface Setup {
  backends: FaultBackends;
  region: LocalRegion;
  /** clients call as the gateway (messaging) and as messaging (persistence) would. */
  clients: { gateway: ServiceClients; messaging: ServiceClients };
  /** close closes the stores, bus and registry, which the region does not own. */
  close(): Promise<void>;
}
let setup: Setup | undefined;

const as = (userId: string) => actingFor({ userId, deviceId: "phone" });

/** failure returns the error a call failed with, or fails the test if it succeeded. */
async function failure(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    (v) => {
      throw new Error(
        `expected a failure, got ${JSON.stringify(v, (_, x) => (typeof x === "bigint" ? String(x) : x))}`,
      );
    },
    (e: unknown) => ConnectError.from(e),
  );
}

/** eventually retries `f` until it resolves (a client reconnects with backoff). */
async function eventually<T>(f: () => Promise<T>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

if (missing) {
  test.skip(`backend outages: ${missing}`, () => {});
} else {
  test.before(async () => {
    const backends = await startFaultBackends();
    const env = { ...backends.env, CHAT_REGION: "us-east-1", HOST: "127.0.0.1", LOG_LEVEL: "warn" };
    const config = loadPersistenceConfig({ ...env, PORT: "0" });
    const stores = openStores(config.backends.store, config.region, []);
    const registry = openRegistry(config.backends.registry, silentLogger);
    // The bus as production configures it, but giving up on a publish after ~1 s instead of
    // ~100 s (30 retries), so that the test sees the failure the caller gets.
    const bus = new KafkaBus(
      {
        clientId: "outage-test",
        brokers: backends.kafka.brokers,
        retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 },
      },
      { sessionTimeoutMs: 6_000, maxWaitMs: 100 },
      silentLogger,
    );
    const shared = {
      bus,
      registry: registry.registry,
      channel: registry.channel,
      close: async () => {
        await bus.close();
        await registry.close();
      },
    };
    const region = await startLocalRegion({
      env: { ...env, CANARY_TIMEOUT_MS: "120000", RPC_TIMEOUT_MS: "20000" },
      backends: { stores, shared },
    });
    setup = {
      backends,
      region,
      clients: {
        gateway: createServiceClients(30_000, signerOf(region.internalKeys, "gateway")),
        messaging: createServiceClients(30_000, signerOf(region.internalKeys, "messaging")),
      },
      close: async () => {
        await shared.close();
        await stores.close();
      },
    };
  });
  test.after.always(async () => {
    if (!setup) return;
    const { clients, region, backends, close } = setup;
    clients.gateway.close();
    clients.messaging.close();
    // Every backend up again, so that the region's consumers can leave their groups; bounded,
    // so that a backend that does not come back cannot hold the run.
    await Promise.race([
      (async () => {
        await backends.kafka.up(-1).catch(() => undefined);
        await backends.redis.start().catch(() => undefined);
        await backends.dynamo.start().catch(() => undefined);
      })(),
      new Promise((r) => setTimeout(r, 20_000).unref()),
    ]);
    await Promise.race([
      (async () => {
        await region.kill();
        await close();
      })().catch(() => undefined),
      new Promise((r) => setTimeout(r, 15_000).unref()),
    ]);
    await backends.stop();
  });

  const services = () => {
    const s = setup as Setup;
    return {
      ...s,
      messaging: s.clients.gateway.client(MessagingService, s.region.urls.messaging),
      persistence: s.clients.messaging.client(PersistenceService, s.region.urls.persistence),
    };
  };

  /** conversation creates a direct conversation of alice and `other` (backends up). */
  const conversation = async (other: string) => {
    const { messaging } = services();
    const res = await eventually(() =>
      messaging.createConversation(
        {
          conversation: {
            kind: ConversationKind.DIRECT,
            memberIds: [other],
            clientMsgId: `dm-${other}`,
          },
        },
        as("alice"),
      ),
    );
    return res.conversation?.id as string;
  };

  const texts = async (conversationId: string) => {
    const { persistence } = services();
    const res = await persistence.readHistory({ query: { conversationId, limit: 100 } });
    return (res.history?.messages ?? []).map((m) => `${m.clientMsgId}:${m.content.value}`);
  };

  test.serial(
    "DynamoDB down: sends and appends fail as Unavailable; the same send succeeds once it is back",
    async (t) => {
      t.timeout(120_000);
      const { backends, messaging, persistence } = services();
      const id = await conversation("bob");
      await messaging.sendMessage(
        { draft: { conversationId: id, clientMsgId: "before", text: "before" } },
        as("alice"),
      );

      t.teardown(() => backends.dynamo.start());
      await backends.dynamo.kill();
      const draft = { conversationId: id, clientMsgId: "during", text: "during the outage" };
      const send = await failure(messaging.sendMessage({ draft }, as("alice")));
      t.is(
        Code[send.code],
        "Unavailable",
        `send failed with ${Code[send.code]}: ${send.rawMessage}`,
      );
      t.true(isRetryableCode(send.code));
      t.regex(send.rawMessage, /^DynamoDB unavailable: /);
      t.notRegex(send.rawMessage, /127\.0\.0\.1|:\d{2,5}\b/, "no address leaks to the caller");

      const append = await failure(
        persistence.appendMessage({
          conversationId: id,
          senderId: "alice",
          senderDeviceId: "phone",
          clientMsgId: "during",
          content: { case: "text", value: "during the outage" },
        }),
      );
      t.is(Code[append.code], "Unavailable", `append failed with ${append.rawMessage}`);

      await backends.dynamo.start();
      const retried = await eventually(() => messaging.sendMessage({ draft }, as("alice")));
      t.is(retried.message?.clientMsgId, "during");
      t.false(retried.duplicate, "nothing was stored while DynamoDB was down");
      const again = await messaging.sendMessage({ draft }, as("alice"));
      t.true(again.duplicate);
      t.deepEqual(again.message, retried.message);
      t.deepEqual(await texts(id), ["before:before", "during:during the outage"]);
    },
  );

  test.serial(
    "Redis down: presence fails as Unavailable; the same request succeeds once it is back",
    async (t) => {
      t.timeout(120_000);
      const { backends, messaging } = services();
      const id = await conversation("carol");
      // Presence is shared between users who have both written in a conversation they share.
      for (const user of ["alice", "carol"]) {
        await messaging.sendMessage(
          { draft: { conversationId: id, clientMsgId: `hi-${user}`, text: "hi" } },
          as(user),
        );
      }
      const request = { userIds: ["carol"] };
      const before = await messaging.getPresence(request, as("alice"));
      t.deepEqual(
        before.users.map((u) => u.userId),
        ["carol"],
      );

      t.teardown(() => backends.redis.start());
      await backends.redis.kill();
      const err = await failure(messaging.getPresence(request, as("alice")));
      t.is(
        Code[err.code],
        "Unavailable",
        `presence failed with ${Code[err.code]}: ${err.rawMessage}`,
      );
      t.true(isRetryableCode(err.code));
      t.regex(err.rawMessage, /^Redis unavailable: /);
      await backends.redis.start();
      const after = await eventually(() => messaging.getPresence(request, as("alice")));
      t.deepEqual(
        after.users.map((u) => u.userId),
        ["carol"],
      );
    },
  );

  test.serial(
    "Kafka down: a send fails as Unavailable; the same send succeeds, stored once, once it is back",
    async (t) => {
      t.timeout(120_000);
      const { backends, messaging } = services();
      const id = await conversation("dave");
      await messaging.sendMessage(
        { draft: { conversationId: id, clientMsgId: "warm", text: "producer connected" } },
        as("alice"),
      );

      t.teardown(() => backends.kafka.up(-1));
      await backends.kafka.down(-1);
      const draft = { conversationId: id, clientMsgId: "k1", text: "while Kafka is down" };
      const err = await failure(messaging.sendMessage({ draft }, as("alice")));
      t.is(Code[err.code], "Unavailable", `send failed with ${Code[err.code]}: ${err.rawMessage}`);
      t.true(isRetryableCode(err.code));
      t.regex(err.rawMessage, /^Kafka unavailable: /);

      await backends.kafka.up(-1);
      const retried = await eventually(() => messaging.sendMessage({ draft }, as("alice")));
      // The message was durable before the publish failed: the retry finds it and publishes it.
      t.true(retried.duplicate);
      t.is(retried.message?.clientMsgId, "k1");
      t.deepEqual(await texts(id), ["warm:producer connected", "k1:while Kafka is down"]);
    },
  );
}
