import { create } from "@bufbuild/protobuf";
import test from "ava";
import { InboxAppendedSchema } from "../../gen/chat/v1/events_pb.ts";
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { type InboxEntry, PushPlatform } from "../../gen/chat/v1/types_pb.ts";
import { ApnsPushProvider } from "../../services/notification/push/apns-push.ts";
import { createPushProvider } from "../../services/notification/push/create.ts";
import { FcmPushProvider } from "../../services/notification/push/fcm-push.ts";
import { LogPushProvider } from "../../services/notification/push/log-push.ts";
import type {
  PushNote,
  PushProvider,
  PushTarget,
} from "../../services/notification/push/push-provider.ts";
import { SYSTEM_CLOCK } from "../../services/notification/push/retry.ts";
import { PlatformPushRouter } from "../../services/notification/push/router.ts";
import { WebhookPushProvider } from "../../services/notification/push/webhook-push.ts";
import { type AppendedEvent, PushScheduler } from "../../services/notification/push-scheduler.ts";
import {
  build as buildPersistence,
  PERSISTENCE_CALLERS,
} from "../../services/persistence/server.ts";
import { MemoryChatStore } from "../../services/shared/adapters/memory/memory-chat-store.ts";
import { MemoryInboxStore } from "../../services/shared/adapters/memory/memory-inbox-store.ts";
import { ConfigError, loadNotificationConfig } from "../../services/shared/config.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { createMetrics } from "../../services/shared/metrics.ts";
import { inMemoryClient, TEST_PEERS } from "../support/in-memory.ts";
import {
  apnsKeys,
  FakeApns,
  FakeFcm,
  FCM_ERRORS,
  serviceAccountKeys,
  testCertificate,
} from "../support/push-fakes.ts";

const fcmKeys = serviceAccountKeys();
const apns = apnsKeys();

/** Recording is a provider for some platforms that remembers what it was given. */
class Recording implements PushProvider {
  readonly sent: PushTarget[] = [];
  readonly platforms: readonly PushPlatform[];
  constructor(platforms: PushPlatform[]) {
    this.platforms = platforms;
  }
  async send(target: PushTarget, _note: PushNote) {
    this.sent.push(target);
    return "sent" as const;
  }
}

const note: PushNote = { title: "t", body: "b", conversationId: "c", collapseKey: "c", data: {} };

test("each token goes to the provider of its platform, the most specific first", async (t) => {
  const general = new Recording([PushPlatform.FCM, PushPlatform.APNS, PushPlatform.WEBHOOK]);
  const fcm = new Recording([PushPlatform.FCM]);
  const apnsOnly = new Recording([PushPlatform.APNS]);
  // The general one is listed first, and still gets only what no specific one serves.
  const router = new PlatformPushRouter([general, fcm, apnsOnly]);
  t.deepEqual(
    [...router.platforms].sort(),
    [PushPlatform.FCM, PushPlatform.APNS, PushPlatform.WEBHOOK].sort(),
  );
  for (const platform of [PushPlatform.FCM, PushPlatform.APNS, PushPlatform.WEBHOOK]) {
    t.is(await router.send({ platform, token: `t${platform}` }, note), "sent");
  }
  t.deepEqual(fcm.sent, [{ platform: PushPlatform.FCM, token: `t${PushPlatform.FCM}` }]);
  t.deepEqual(apnsOnly.sent, [{ platform: PushPlatform.APNS, token: `t${PushPlatform.APNS}` }]);
  t.deepEqual(general.sent, [
    { platform: PushPlatform.WEBHOOK, token: `t${PushPlatform.WEBHOOK}` },
  ]);
  // A platform nobody serves is not in `platforms` (the scheduler skips it), and never a
  // dead token if asked anyway.
  const onlyFcm = new PlatformPushRouter([fcm]);
  t.deepEqual(onlyFcm.platforms, [PushPlatform.FCM]);
  t.is(await onlyFcm.send({ platform: PushPlatform.APNS, token: "x" }, note), "failed");
});

/** fcmEnv and apnsEnv are complete settings for each provider. */
const fcmEnv = (tokenUri = "https://oauth2.googleapis.com/token") => ({
  FCM_SERVICE_ACCOUNT: fcmKeys.json(tokenUri),
});
const apnsEnv = {
  APNS_KEY: apns.key,
  APNS_KEY_ID: apns.keyId,
  APNS_TEAM_ID: apns.teamId,
  APNS_TOPIC: apns.topic,
};

test("PUSH_PROVIDER lists providers; each one's settings are read with production defaults", (t) => {
  t.deepEqual(loadNotificationConfig({}).push.providers, ["log"]);
  const c = loadNotificationConfig({
    PUSH_PROVIDER: " fcm, apns ,log,fcm",
    ...fcmEnv(),
    ...apnsEnv,
  });
  t.deepEqual(c.push.providers, ["fcm", "apns", "log"]);
  t.deepEqual(c.push.fcm, {
    projectId: fcmKeys.projectId,
    serviceAccount: {
      clientEmail: fcmKeys.clientEmail,
      privateKey: fcmKeys.privateKey,
      privateKeyId: fcmKeys.privateKeyId,
      tokenUri: "https://oauth2.googleapis.com/token",
    },
    endpoint: "https://fcm.googleapis.com",
    tokenUrl: "https://oauth2.googleapis.com/token",
  });
  t.deepEqual(c.push.apns, {
    key: apns.key,
    keyId: apns.keyId,
    teamId: apns.teamId,
    topic: apns.topic,
    endpoint: "https://api.push.apple.com",
  });
  const other = loadNotificationConfig({
    PUSH_PROVIDER: "fcm,apns",
    ...fcmEnv(),
    FCM_PROJECT_ID: "other-project",
    FCM_ENDPOINT: "https://127.0.0.1:9443",
    FCM_TOKEN_URL: "https://127.0.0.1:9443/token",
    ...apnsEnv,
    // A PEM flattened into one line, as it may be stored in a parameter.
    APNS_KEY: apns.key.replaceAll("\n", "\\n"),
    APNS_ENDPOINT: "https://api.sandbox.push.apple.com",
  });
  t.is(other.push.fcm?.projectId, "other-project");
  t.is(other.push.fcm?.endpoint, "https://127.0.0.1:9443");
  t.is(other.push.fcm?.tokenUrl, "https://127.0.0.1:9443/token");
  t.is(other.push.apns?.key, apns.key);
  t.is(other.push.apns?.endpoint, "https://api.sandbox.push.apple.com");
  // Settings of a provider not listed are not needed, nor kept.
  t.is(loadNotificationConfig({ PUSH_PROVIDER: "log", ...apnsEnv }).push.apns, undefined);
});

test("a listed provider's missing settings are all named; secrets are never repeated", (t) => {
  const missing = t.throws(() => loadNotificationConfig({ PUSH_PROVIDER: "fcm,apns,webhook" }), {
    instanceOf: ConfigError,
  });
  for (const name of [
    "PUSH_WEBHOOK_URL",
    "FCM_SERVICE_ACCOUNT",
    "APNS_KEY",
    "APNS_KEY_ID",
    "APNS_TEAM_ID",
    "APNS_TOPIC",
  ]) {
    t.regex(missing.message, new RegExp(`${name}: required when PUSH_PROVIDER includes`));
  }
  t.throws(() => loadNotificationConfig({ PUSH_PROVIDER: "fcm,pigeon" }), {
    message: /PUSH_PROVIDER: must be log, webhook, fcm or apns.*\(got "fcm,pigeon"\)/,
  });
  const noProject = JSON.parse(fcmKeys.json("https://oauth2.googleapis.com/token"));
  delete noProject.project_id;
  t.throws(
    () =>
      loadNotificationConfig({
        PUSH_PROVIDER: "fcm",
        FCM_SERVICE_ACCOUNT: JSON.stringify(noProject),
      }),
    { message: /FCM_PROJECT_ID: required/ },
  );
  // Wrong keys are found at start, and the error names the variable without the secret.
  const bad = t.throws(() =>
    loadNotificationConfig({
      PUSH_PROVIDER: "fcm,apns",
      FCM_SERVICE_ACCOUNT: JSON.stringify({
        ...JSON.parse(fcmKeys.json("https://oauth2.googleapis.com/token")),
        private_key: apns.key,
      }),
      ...apnsEnv,
      APNS_KEY: fcmKeys.privateKey,
      APNS_KEY_ID: "short",
    }),
  );
  t.regex(bad.message, /FCM_SERVICE_ACCOUNT: the key's private_key must be an RSA private key/);
  t.regex(bad.message, /APNS_KEY: must be the .p8 signing key/);
  t.regex(bad.message, /APNS_KEY_ID: must be the 10-character key id \(got "short"\)/);
  t.false(bad.message.includes("PRIVATE KEY"), "no key material in the message");
  t.throws(() => loadNotificationConfig({ PUSH_PROVIDER: "fcm", FCM_SERVICE_ACCOUNT: "{" }), {
    message: /FCM_SERVICE_ACCOUNT: must be a service account's JSON key$/m,
  });
});

test("createPushProvider builds one provider per listed name behind the router", async (t) => {
  const router = createPushProvider(
    loadNotificationConfig({
      PUSH_PROVIDER: "webhook,apns,fcm",
      PUSH_WEBHOOK_URL: "http://127.0.0.1:1/push",
      ...fcmEnv(),
      ...apnsEnv,
    }),
    silentLogger,
  ) as PlatformPushRouter;
  t.teardown(() => router.close());
  t.true(router.providerFor(PushPlatform.FCM) instanceof FcmPushProvider);
  t.true(router.providerFor(PushPlatform.APNS) instanceof ApnsPushProvider);
  t.true(router.providerFor(PushPlatform.WEBHOOK) instanceof WebhookPushProvider);
  const local = createPushProvider(loadNotificationConfig({}), silentLogger) as PlatformPushRouter;
  t.true(local.providerFor(PushPlatform.FCM) instanceof LogPushProvider);
});

/** persistence is persistence in memory, called as notification (and, to set up, messaging). */
function persistence() {
  const app = buildPersistence({
    peers: TEST_PEERS,
    store: new MemoryChatStore("us-east-1"),
    inbox: new MemoryInboxStore("us-east-1"),
    log: silentLogger,
    metrics: createMetrics("p", { processMetrics: false }),
  });
  const notification = inMemoryClient(app, PersistenceService, "notification");
  const messaging = inMemoryClient(app, PersistenceService, "messaging");
  const allowed = PERSISTENCE_CALLERS.notification ?? (() => false);
  return new Proxy(notification, {
    get: (target, name: string) => {
      const method = name.charAt(0).toUpperCase() + name.slice(1);
      return (allowed(method) ? target : messaging)[name as keyof typeof target];
    },
  });
}

async function message(p: ReturnType<typeof persistence>, text: string): Promise<AppendedEvent> {
  const { message } = await p.appendMessage({
    conversationId: "c1",
    senderId: "alice",
    clientMsgId: `alice-${text}`,
    content: { case: "text", value: text },
  });
  const { entries } = await p.appendInbox({ items: [{ userId: "bob", message }] });
  return {
    event: create(InboxAppendedSchema, { userId: "bob", entry: entries[0] as InboxEntry }),
    appendedAtMs: Date.now() - 60_000,
  };
}

test("end to end: FCM and APNs tokens go to their services; a dead FCM token is forgotten and never pushed again", async (t) => {
  const fcm = await new FakeFcm(fcmKeys, SYSTEM_CLOCK).start();
  const apple = await new FakeApns(apns, SYSTEM_CLOCK).start();
  const provider = createPushProvider(
    loadNotificationConfig({
      PUSH_PROVIDER: "fcm,apns",
      ...fcmEnv(fcm.tokenUrl),
      FCM_ENDPOINT: fcm.server.origin,
      ...apnsEnv,
      APNS_ENDPOINT: apple.server.origin,
    }),
    silentLogger,
    { ca: testCertificate().cert },
  );
  t.teardown(async () => {
    await provider.close?.();
    await fcm.server.close();
    await apple.server.close();
  });
  const p = persistence();
  const iphone = "ab".repeat(32);
  for (const [deviceId, platform, token] of [
    ["old-android", PushPlatform.FCM, "dead-fcm-token"],
    ["android", PushPlatform.FCM, "live-fcm-token"],
    ["iphone", PushPlatform.APNS, iphone],
  ] as const) {
    await p.savePushToken({ userId: "bob", token: { deviceId, platform, token } });
  }
  fcm.script.set("dead-fcm-token", [FCM_ERRORS.unregistered]);
  const scheduler = new PushScheduler({
    persistence: p,
    provider,
    log: silentLogger,
    delayMs: 10_000,
  });

  t.is(await scheduler.handle([await message(p, "hello")]), 2);
  t.deepEqual(fcm.sends.map((s) => s.message.token).sort(), ["dead-fcm-token", "live-fcm-token"]);
  t.deepEqual(
    apple.sends.map((s) => s.deviceToken),
    [iphone],
  );
  t.deepEqual(
    (await p.listPushTokens({ userId: "bob" })).tokens.map((tok) => tok.deviceId).sort(),
    ["android", "iphone"],
    "the dead token is forgotten",
  );

  const before = fcm.sends.length;
  t.is(await scheduler.handle([await message(p, "again")]), 2);
  t.deepEqual(
    fcm.sends.slice(before).map((s) => s.message.token),
    ["live-fcm-token"],
    "and never pushed again",
  );
  t.is(apple.sends.length, 2);
  t.deepEqual([...fcm.problems, ...apple.problems], []);
});
