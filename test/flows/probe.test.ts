import { execFile } from "node:child_process";
import { promisify } from "node:util";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import test from "ava";
import {
  CreateConversationRequestSchema,
  CreateConversationResponseSchema,
  SendMessageRequestSchema,
  SendMessageResponseSchema,
} from "../../gen/chat/v1/messaging_pb.ts";
import { ConversationKind } from "../../gen/chat/v1/types_pb.ts";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.ts";
import { SERVICE_NAMES } from "../../services/region/region.ts";
import { withRegion } from "../support/region.ts";

const run = promisify(execFile);
const BUF = new URL("../../node_modules/.bin/buf", import.meta.url).pathname;

async function bufCurl(...args: string[]): Promise<string> {
  const { stdout } = await run(BUF, ["curl", "--http2-prior-knowledge", ...args], {
    timeout: 30_000,
  });
  return stdout;
}

test("buf curl lists, calls and health-checks every service through reflection", async (t) => {
  const region = await withRegion(t);
  // The gateway's gRPC services are on its admin listener (its public port is /ws).
  const ports: Record<keyof typeof SERVICE_NAMES, string> = {
    gateway: region.urls.gatewayAdmin,
    messaging: region.urls.messaging,
    notification: region.urls.notification,
    persistence: region.urls.persistence,
  };
  for (const [name, url] of Object.entries(ports) as Array<[keyof typeof SERVICE_NAMES, string]>) {
    const services = (await bufCurl("--list-services", url)).trim().split("\n");
    t.deepEqual(
      services.sort(),
      [
        SERVICE_NAMES[name],
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ].sort(),
      `${name} lists its services`,
    );
    const v1alpha = await bufCurl("--reflect-protocol", "grpc-v1alpha", "--list-services", url);
    t.true(v1alpha.includes(SERVICE_NAMES[name]), `${name} answers v1alpha reflection`);
    const health = JSON.parse(
      await bufCurl("--protocol", "grpc", "-d", "{}", `${url}/grpc.health.v1.Health/Check`),
    );
    t.deepEqual(health, { status: "SERVING" }, `${name} is healthy`);
    const named = JSON.parse(
      await bufCurl(
        "-d",
        JSON.stringify({ service: SERVICE_NAMES[name] }),
        `${url}/grpc.health.v1.Health/Check`,
      ),
    );
    t.deepEqual(named, { status: "SERVING" });
  }
  // Services behind the gateway want an internal token: here the gateway's, acting for alice.
  const asAlice = `Authorization: Bearer ${await region.internalToken("messaging", "alice", "gateway")}`;
  const created = JSON.parse(
    await bufCurl(
      "--protocol",
      "grpc",
      "-H",
      asAlice,
      "-d",
      JSON.stringify({
        conversation: { kind: "CONVERSATION_KIND_DIRECT", memberIds: ["bob"], clientMsgId: "x" },
      }),
      `${region.urls.messaging}/chat.v1.MessagingService/CreateConversation`,
    ),
  );
  t.deepEqual(
    created.conversation.memberIds,
    ["alice", "bob"],
    "one call, acting for the user the token names",
  );
  // As the README probes: an operator's read-only token from the dev issuer.
  const res = await fetch(`${region.issuer.url}/internal-token?to=messaging&user=alice`);
  const { token } = (await res.json()) as { token: string };
  const listed = JSON.parse(
    await bufCurl(
      "-H",
      `Authorization: Bearer ${token}`,
      "-d",
      "{}",
      `${region.urls.messaging}/chat.v1.MessagingService/ListConversations`,
    ),
  );
  t.is(listed.page.conversations.length, 1, "alice's conversation, read with an operator token");
  const refused = await bufCurl(
    "--protocol",
    "grpc",
    "-H",
    asAlice,
    "-d",
    JSON.stringify({ draft: { conversationId: "x", clientMsgId: "", text: "" } }),
    `${region.urls.messaging}/chat.v1.MessagingService/SendMessage`,
  ).catch((e: { stderr?: string; stdout?: string }) => `${e.stdout}${e.stderr}`);
  t.regex(refused, /invalid_argument/, "bad input is refused by validation with InvalidArgument");
  // The operator API, as the README probes it: with an operator token, on the admin listener.
  const sessions = JSON.parse(
    await bufCurl(
      "-H",
      `Authorization: Bearer ${await region.issuer.operatorToken("ops")}`,
      "-d",
      JSON.stringify({ userId: "nobody" }),
      `${region.urls.gatewayAdmin}/chat.v1.GatewayService/ListSessions`,
    ),
  );
  t.deepEqual(sessions, {}, "nobody has no sessions");
  const anonymous = await bufCurl(
    "-d",
    JSON.stringify({ userId: "nobody" }),
    `${region.urls.gatewayAdmin}/chat.v1.GatewayService/ListSessions`,
  ).catch((e: { stderr?: string; stdout?: string }) => `${e.stdout}${e.stderr}`);
  t.regex(anonymous, /unauthenticated/, "without a token the operator API refuses");
});

/** unary calls a method with a plain @grpc/grpc-js client and protobuf-es serializers. */
function unary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  path: string,
  input: I,
  output: O,
  request: MessageShape<I>,
  metadata = new grpc.Metadata(),
): Promise<MessageShape<O>> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b),
      request,
      metadata,
      { deadline: Date.now() + 5_000 },
      (err, res) => (err || !res ? reject(err) : resolve(res)),
    );
  });
}

test("a plain @grpc/grpc-js client interoperates with the services", async (t) => {
  const region = await withRegion(t);
  const client = new grpc.Client(
    new URL(region.urls.messaging).host,
    grpc.credentials.createInsecure(),
  );
  t.teardown(() => client.close());

  const health = await unary(
    client,
    "/grpc.health.v1.Health/Check",
    HealthCheckRequestSchema,
    HealthCheckResponseSchema,
    create(HealthCheckRequestSchema, {}),
  );
  t.is(health.status, 1);

  // A service's credential, as metadata: the gateway's token acting for alice's device.
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${await region.internalToken("messaging", "alice", "gateway")}`);
  const conv = await unary(
    client,
    "/chat.v1.MessagingService/CreateConversation",
    CreateConversationRequestSchema,
    CreateConversationResponseSchema,
    create(CreateConversationRequestSchema, {
      conversation: {
        kind: ConversationKind.GROUP,
        title: "via grpc-js",
        memberIds: ["bob"],
        clientMsgId: "g1",
      },
    }),
    md,
  );
  t.is(conv.conversation?.title, "via grpc-js");
  const sent = await unary(
    client,
    "/chat.v1.MessagingService/SendMessage",
    SendMessageRequestSchema,
    SendMessageResponseSchema,
    create(SendMessageRequestSchema, {
      draft: {
        conversationId: conv.conversation?.id ?? "",
        clientMsgId: "m1",
        text: "hello from grpc-js",
      },
    }),
    md,
  );
  t.is(sent.message?.seq, 2n);

  const err = await unary(
    client,
    "/chat.v1.MessagingService/SendMessage",
    SendMessageRequestSchema,
    SendMessageResponseSchema,
    create(SendMessageRequestSchema, {
      draft: { conversationId: conv.conversation?.id ?? "", clientMsgId: "m2", text: "x" },
    }),
  ).catch((e: grpc.ServiceError) => e);
  t.is(
    (err as grpc.ServiceError).code,
    grpc.status.UNAUTHENTICATED,
    "a call without a token is refused",
  );
});
