import { createRequire } from "node:module";
import { Writable } from "node:stream";
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  DynamoDBServiceException,
  GetItemCommand,
  InternalServerError,
  ProvisionedThroughputExceededException,
  RequestLimitExceeded,
  ResourceNotFoundException,
  ThrottlingException,
  TransactionCanceledException,
  TransactionConflictException,
} from "@aws-sdk/client-dynamodb";
import { Code, ConnectError } from "@connectrpc/connect";
import test from "ava";
import { Redis, ReplyError } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { freePort } from "../../dev/backends/processes.ts";
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { build } from "../../services/persistence/server.ts";
import { MemoryBus } from "../../services/shared/adapters/memory/memory-bus.ts";
import { MemoryChatStore } from "../../services/shared/adapters/memory/memory-chat-store.ts";
import { MemoryInboxStore } from "../../services/shared/adapters/memory/memory-inbox-store.ts";
import { ChatError, isRetryableCode, toConnectError } from "../../services/shared/errors.ts";
import { createMetrics } from "../../services/shared/metrics.ts";
import { inMemoryClient, TEST_PEERS } from "../support/in-memory.ts";

// kafkajs spreads its error classes into its exports, which ESM cannot import by name.
const {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSRequestTimeoutError,
  KafkaJSSASLAuthenticationError,
} = createRequire(import.meta.url)("kafkajs") as typeof import("kafkajs");

// The classification of backend failures, over the error shapes each client library really
// produces (some made by the library against a closed port, others constructed as it does).

const meta = (httpStatusCode: number) => ({
  httpStatusCode,
  requestId: "RQ1",
  attempts: 6,
  totalRetryDelay: 1_400,
});

/** netError is a Node socket error as the AWS SDK rethrows it (with $metadata attached). */
function netError(code: string, message: string, sdk = true): Error {
  return Object.assign(new Error(message), {
    code,
    errno: -111,
    syscall: "connect",
    address: "10.0.3.7",
    port: 8000,
    ...(sdk ? { $metadata: { attempts: 6, totalRetryDelay: 900 } } : {}),
  });
}

const ddbError = (name: string, status: number, fault: "client" | "server") =>
  new DynamoDBServiceException({
    name,
    $fault: fault,
    message: `${name} at arn:aws:dynamodb:us-east-1:123456789012:table/connect-chat`,
    $metadata: meta(status),
  });

interface Expect {
  code: keyof typeof Code;
  message: RegExp;
}
const unavailable = (store: string) => ({
  code: "Unavailable" as const,
  message: new RegExp(`^${store} unavailable: [a-z]`),
});
const internal: Expect = { code: "Internal", message: /^internal error$/ };

function check(t: import("ava").ExecutionContext, err: unknown, want: Expect, label: string) {
  const ce = toConnectError(err);
  t.is(Code[ce.code], want.code, `${label}: ${ce.rawMessage}`);
  t.regex(ce.rawMessage, want.message, label);
  t.is(
    isRetryableCode(ce.code),
    want.code !== "Internal",
    `${label}: retryable exactly when not a bug`,
  );
  // Safe for callers: no addresses, ports, ARNs, account ids or stacks.
  t.notRegex(
    ce.rawMessage,
    /10\.0\.3\.7|127\.0\.0\.1|:\d{2,5}\b|arn:|123456789012|\n\s+at /,
    label,
  );
  // The original error stays reachable for the log.
  const chain: unknown[] = [];
  for (let e: unknown = ce; chain.length < 5; e = (e as Error).cause) {
    chain.push(e);
    if (!(e instanceof Error)) break;
  }
  if (!(err instanceof ConnectError)) t.true(chain.includes(err), `${label}: cause kept`);
}

test("DynamoDB: network failures after the SDK's retries are Unavailable", (t) => {
  const cases: Array<[string, unknown]> = [
    ["ECONNREFUSED", netError("ECONNREFUSED", "connect ECONNREFUSED 10.0.3.7:8000")],
    ["ECONNRESET", netError("ECONNRESET", "read ECONNRESET")],
    ["socket hang up", netError("ECONNRESET", "socket hang up")],
    ["ETIMEDOUT", netError("ETIMEDOUT", "connect ETIMEDOUT 10.0.3.7:8000")],
    ["EPIPE", netError("EPIPE", "write EPIPE")],
    ["ENOTFOUND", netError("ENOTFOUND", "getaddrinfo ENOTFOUND dynamodb.us-east-1.amazonaws.com")],
    [
      "TimeoutError",
      Object.assign(new Error("Connection timed out after 1000 ms"), {
        name: "TimeoutError",
        $metadata: { attempts: 6 },
      }),
    ],
    [
      "AggregateError (happy eyeballs)",
      Object.assign(
        new AggregateError(
          [
            netError("ECONNREFUSED", "connect ECONNREFUSED ::1:8000", false),
            netError("ECONNREFUSED", "connect ECONNREFUSED 10.0.3.7:8000", false),
          ],
          "",
        ),
        { code: "ECONNREFUSED", $metadata: { attempts: 6 } },
      ),
    ],
  ];
  for (const [label, err] of cases) check(t, err, unavailable("DynamoDB"), label);
});

test("DynamoDB: a real client against a closed port fails as Unavailable", async (t) => {
  const db = new DynamoDBClient({
    endpoint: `http://127.0.0.1:${await freePort()}`,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 2,
  });
  const err = await db
    .send(new GetItemCommand({ TableName: "t", Key: { pk: { S: "a" } } }))
    .catch((e: unknown) => e);
  db.destroy();
  check(t, err, unavailable("DynamoDB"), "refused");
  t.is(toConnectError(err).rawMessage, "DynamoDB unavailable: connection refused");
});

test("DynamoDB: 5xx and server faults are Unavailable", (t) => {
  check(
    t,
    new InternalServerError({ message: "Internal server error", $metadata: meta(500) }),
    unavailable("DynamoDB"),
    "InternalServerError",
  );
  check(t, ddbError("ServiceUnavailable", 503, "server"), unavailable("DynamoDB"), "503");
  check(t, ddbError("UnknownError", 502, "server"), unavailable("DynamoDB"), "502");
});

test("DynamoDB: throttling is ResourceExhausted, retryable", (t) => {
  const throttled: Expect = { code: "ResourceExhausted", message: /^DynamoDB throttled: / };
  check(
    t,
    new ProvisionedThroughputExceededException({ message: "rate", $metadata: meta(400) }),
    throttled,
    "ProvisionedThroughputExceeded",
  );
  check(
    t,
    new ThrottlingException({ message: "rate", $metadata: meta(400) }),
    throttled,
    "ThrottlingException",
  );
  check(
    t,
    new RequestLimitExceeded({ message: "account limit", $metadata: meta(400) }),
    throttled,
    "RequestLimitExceeded",
  );
  check(
    t,
    new TransactionCanceledException({
      message: "cancelled",
      $metadata: meta(400),
      CancellationReasons: [{ Code: "None" }, { Code: "ThrottlingError" }],
    }),
    throttled,
    "transaction cancelled by throttling",
  );
});

test("DynamoDB: transaction conflicts are Aborted, retryable", (t) => {
  const conflict: Expect = { code: "Aborted", message: /^DynamoDB transaction conflict/ };
  check(
    t,
    new TransactionCanceledException({
      message: "cancelled",
      $metadata: meta(400),
      CancellationReasons: [{ Code: "None" }, { Code: "TransactionConflict" }],
    }),
    conflict,
    "TransactionCanceled(TransactionConflict)",
  );
  check(
    t,
    new TransactionConflictException({ message: "conflict", $metadata: meta(400) }),
    conflict,
    "TransactionConflictException",
  );
});

test("DynamoDB: client faults that escape the adapters are bugs, Internal", (t) => {
  // A condition the adapter does not expect to fail (those it expects it turns into domain
  // outcomes: DuplicateSendError, SeqConflictError, "already there").
  check(
    t,
    new ConditionalCheckFailedException({ message: "failed", $metadata: meta(400) }),
    internal,
    "ConditionalCheckFailedException",
  );
  check(
    t,
    new TransactionCanceledException({
      message: "cancelled",
      $metadata: meta(400),
      CancellationReasons: [{ Code: "ConditionalCheckFailed" }, { Code: "None" }],
    }),
    internal,
    "TransactionCanceled(ConditionalCheckFailed)",
  );
  check(t, ddbError("ValidationException", 400, "client"), internal, "ValidationException");
  check(
    t,
    new ResourceNotFoundException({ message: "no table", $metadata: meta(400) }),
    internal,
    "ResourceNotFoundException",
  );
  check(t, ddbError("AccessDeniedException", 400, "client"), internal, "AccessDenied");
});

test("Redis: a lost connection and unavailable-server replies are Unavailable", async (t) => {
  // Real errors from ioredis: commands of a client that cannot reach the server, and of a
  // client whose connection was closed.
  const port = await freePort();
  const away = new Redis({
    port,
    host: "127.0.0.1",
    maxRetriesPerRequest: 1,
    retryStrategy: () => 20,
  });
  away.on("error", () => {});
  const maxRetries = await away.get("k").catch((e: unknown) => e);
  away.disconnect();
  t.is((maxRetries as Error).name, "MaxRetriesPerRequestError");
  check(t, maxRetries, unavailable("Redis"), "MaxRetriesPerRequestError");
  const gone = new Redis({ port, host: "127.0.0.1", retryStrategy: () => null });
  gone.on("error", () => {});
  const closed = await gone.get("k").catch((e: unknown) => e);
  t.is((closed as Error).message, "Connection is closed.");
  check(t, closed, unavailable("Redis"), "Connection is closed");
  check(
    t,
    Object.assign(new Error("Command aborted due to connection close"), { name: "AbortError" }),
    unavailable("Redis"),
    "AbortError",
  );
  for (const reply of [
    "READONLY You can't write against a read only replica.",
    "LOADING Redis is loading the dataset in memory",
    "CLUSTERDOWN The cluster is down",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.",
  ]) {
    check(t, new ReplyError(reply), unavailable("Redis"), reply);
  }
  check(
    t,
    new ReplyError("OOM command not allowed when used memory > 'maxmemory'."),
    { code: "ResourceExhausted", message: /^Redis out of memory/ },
    "OOM",
  );
  check(
    t,
    new ReplyError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    internal,
    "WRONGTYPE",
  );
  check(t, new ReplyError("ERR Error running script"), internal, "script error");
});

test("Kafka: connection failures, timeouts and exhausted retries are Unavailable", async (t) => {
  const refused = new KafkaJSConnectionError(
    "Connection error: connect ECONNREFUSED 10.0.3.7:9092",
    {
      broker: "10.0.3.7:9092",
      code: "ECONNREFUSED",
    },
  );
  check(t, refused, unavailable("Kafka"), "KafkaJSConnectionError");
  check(
    t,
    new KafkaJSRequestTimeoutError("Request Produce(key: 0, version: 7) timed out", {
      broker: "10.0.3.7:9092",
      clientId: "chat",
      correlationId: 4,
      createdAt: 0,
      sentAt: 0,
      pendingDuration: 0,
    }),
    unavailable("Kafka"),
    "KafkaJSRequestTimeoutError",
  );
  // What KafkaBus.publish really rejects with once its retries are spent.
  check(
    t,
    new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 30, retryTime: 2_000 }),
    unavailable("Kafka"),
    "KafkaJSNumberOfRetriesExceeded",
  );
  check(
    t,
    // (kafkajs's typings omit the options it takes: the cause.)
    new (KafkaJSNonRetriableError as unknown as new (e: Error, o: { cause: Error }) => Error)(
      refused,
      { cause: refused },
    ),
    unavailable("Kafka"),
    "KafkaJSNonRetriableError(retriable cause)",
  );
  check(
    t,
    new KafkaJSProtocolError({
      message:
        "There is no leader for this topic-partition as we are in the middle of a leadership election",
      type: "LEADER_NOT_AVAILABLE",
      code: 5,
      retriable: true,
    } as unknown as Error),
    unavailable("Kafka"),
    "LEADER_NOT_AVAILABLE",
  );
  // A real producer against a closed port.
  const kafka = new Kafka({
    clientId: "t",
    brokers: [`127.0.0.1:${await freePort()}`],
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  const producer = kafka.producer();
  const real = await producer.connect().catch((e: unknown) => e);
  check(t, real, unavailable("Kafka"), `real producer: ${(real as Error).name}`);
  // A bus that is closed: the task is shutting down; another one takes the retry.
  const bus = new MemoryBus();
  await bus.close();
  const closed = await bus.publish("t", [{ key: "k", value: new Uint8Array() }]).catch((e) => e);
  check(t, closed, { code: "Unavailable", message: /^bus unavailable: / }, "bus is closed");
});

test("Kafka: errors kafkajs does not retry are bugs or misconfiguration, Internal", (t) => {
  check(
    t,
    new KafkaJSProtocolError({
      message:
        "The request included a message larger than the max message size the server will accept",
      type: "MESSAGE_TOO_LARGE",
      code: 10,
      retriable: false,
    } as unknown as Error),
    internal,
    "MESSAGE_TOO_LARGE",
  );
  check(
    t,
    new (KafkaJSSASLAuthenticationError as unknown as new (m: string) => Error)(
      "SASL OAUTHBEARER authentication failed",
    ),
    internal,
    "SASL",
  );
});

test("peers: transport failures are Unavailable with a safe message; answers pass through", (t) => {
  // Errors the peer answered with pass through unchanged: their message is already safe.
  const answered = new ConnectError("DynamoDB unavailable: connection refused", Code.Unavailable);
  t.is(toConnectError(answered), answered);
  const bug = new ConnectError("internal error", Code.Internal);
  check(t, bug, internal, "peer answered Internal");
  t.is(toConnectError(new ConnectError("x", Code.NotFound)).code, Code.NotFound);
  t.is(
    toConnectError(new ConnectError("too slow", Code.DeadlineExceeded)).code,
    Code.DeadlineExceeded,
  );
  // Failures of the call itself, made by connect-node from a Node error.
  const refused = new ConnectError(
    "connect ECONNREFUSED 10.0.3.7:8083",
    Code.Unavailable,
    undefined,
    undefined,
    netError("ECONNREFUSED", "connect ECONNREFUSED 10.0.3.7:8083", false),
  );
  check(t, refused, unavailable("peer service"), "peer refused");
  const refusedStream = new ConnectError(
    "Stream closed with error code NGHTTP2_REFUSED_STREAM",
    Code.Internal,
    undefined,
    undefined,
    Object.assign(new Error("Stream closed with error code NGHTTP2_REFUSED_STREAM"), {
      code: "ERR_HTTP2_STREAM_ERROR",
    }),
  );
  check(t, refusedStream, unavailable("peer service"), "REFUSED_STREAM");
  const goaway = new ConnectError(
    "New streams cannot be created after receiving a GOAWAY",
    Code.Internal,
    undefined,
    undefined,
    Object.assign(new Error("New streams cannot be created after receiving a GOAWAY"), {
      code: "ERR_HTTP2_GOAWAY_SESSION",
    }),
  );
  check(t, goaway, unavailable("peer service"), "GOAWAY");
  // A peer's stream cancelled under the call: the peer went away (it never is the caller).
  check(
    t,
    new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled),
    unavailable("peer service"),
    "peer stream cancelled",
  );
});

test("domain errors keep their code; anything unknown is Internal", (t) => {
  const busy = new ChatError(Code.Aborted, "conversation c is busy; retry", { retryable: true });
  t.is(toConnectError(busy).code, Code.Aborted);
  t.is(toConnectError(busy).rawMessage, "conversation c is busy; retry");
  check(
    t,
    new TypeError("Cannot read properties of undefined (reading 'seq')"),
    internal,
    "TypeError",
  );
  check(t, new Error("item attribute seq is not a number"), internal, "malformed item");
  check(t, "a string", internal, "a thrown string");
  check(t, Object.assign(new Error("weird"), { code: "ERR_SOMETHING" }), internal, "other code");
});

test("the edge logs an unknown failure as an error with its cause, a backend outage as a warning", async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino(
    { level: "debug" },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );
  let fail: () => Error = () => new Error("unset");
  class Failing extends MemoryChatStore {
    override async getConversation(): Promise<undefined> {
      throw fail();
    }
  }
  const app = build({
    peers: TEST_PEERS,
    store: new Failing("us-east-1"),
    inbox: new MemoryInboxStore("us-east-1"),
    log,
    metrics: createMetrics("p", { processMetrics: false }),
  });
  const client = inMemoryClient(app, PersistenceService, "messaging");
  fail = () => new TypeError("boom");
  const bug = await client.readConversation({ conversationId: "c" }).catch((e) => e);
  t.is((bug as ConnectError).code, Code.Internal);
  fail = () => netError("ECONNREFUSED", "connect ECONNREFUSED 10.0.3.7:8000");
  const down = await client.readConversation({ conversationId: "c" }).catch((e) => e);
  t.is((down as ConnectError).code, Code.Unavailable);
  await new Promise((r) => setImmediate(r));
  const errorLine = lines.find((l) => l.level === 50);
  t.truthy(errorLine, "the bug is logged as an error");
  t.is((errorLine?.err as { message?: string })?.message, "boom");
  const warnLine = lines.find((l) => l.level === 40);
  t.truthy(warnLine, "the outage is logged as a warning");
  t.regex(JSON.stringify(warnLine), /DynamoDB unavailable: connection refused/);
  t.regex(JSON.stringify(warnLine), /ECONNREFUSED 10\.0\.3\.7/, "with its cause, for operators");
  t.is(lines.filter((l) => l.level === 50).length, 1, "the outage is not logged as an error");
});
