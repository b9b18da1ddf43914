import { Code, ConnectError } from "@connectrpc/connect";
import { BusClosedError } from "./ports/bus.ts";

export { Code };

/**
 * ChatError is a failure the domain understands: it carries the gRPC code it becomes at the
 * RPC edge and a message fit for the caller. Anything else that escapes a handler is
 * classified by classifyBackendError: a backend failure becomes the retryable error it is,
 * and everything else an internal error whose details go to the log, never to the caller.
 */
export class ChatError extends Error {
  override name = "ChatError";
  readonly code: Code;
  readonly retryable: boolean;
  constructor(code: Code, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options);
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }
}

/**
 * BackendError is a backend (DynamoDB, Redis, Kafka, a peer service) failing in a way that is
 * not the request's fault and may pass: the same request may succeed later unchanged. Its
 * message names the backend and the problem, never an address; `cause` is the original error.
 */
export class BackendError extends ChatError {
  override name = "BackendError";
  /** backend names the kind of backend that failed, as in the message. */
  readonly backend: string;
  constructor(code: Code, backend: string, problem: string, cause: unknown) {
    super(code, `${backend} ${problem}`, { cause, retryable: true });
    this.backend = backend;
  }
}

/** invalidArgument reports bad input, naming the field. */
export const invalidArgument = (message: string) => new ChatError(Code.InvalidArgument, message);
/** notFound reports a missing entity. */
export const notFound = (message: string) => new ChatError(Code.NotFound, message);
/** permissionDenied reports an authenticated caller acting outside its rights. */
export const permissionDenied = (message: string) => new ChatError(Code.PermissionDenied, message);
/** failedPrecondition reports a request that conflicts with current state. */
export const failedPrecondition = (message: string) =>
  new ChatError(Code.FailedPrecondition, message);
/** unauthenticated reports a missing or bad identity. */
export const unauthenticated = (message: string) => new ChatError(Code.Unauthenticated, message);

/**
 * toConnectError converts anything thrown by a handler into the ConnectError the caller sees:
 * a ChatError keeps its code and message, a backend failure becomes a retryable BackendError
 * (see classifyBackendError), and anything else is Internal "internal error" (a bug; the
 * original error is the cause, for the log). ConnectErrors a peer answered with pass through
 * (their message was already made safe); a failure of the call itself is classified.
 */
export function toConnectError(err: unknown): ConnectError {
  const classified = err instanceof ChatError ? err : classifyBackendError(err);
  if (classified) {
    return new ConnectError(classified.message, classified.code, undefined, [], classified);
  }
  if (err instanceof ConnectError) return err;
  return new ConnectError("internal error", Code.Internal, undefined, [], err);
}

/** isRetryableCode is true for codes where the same request may succeed later unchanged. */
export function isRetryableCode(code: Code): boolean {
  return (
    code === Code.Unavailable ||
    code === Code.DeadlineExceeded ||
    code === Code.Aborted ||
    code === Code.ResourceExhausted
  );
}

// --- Backend failures --------------------------------------------------------------------------
//
// Every client library fails in its own shapes; they are recognized here, by shape (no client
// library is imported), so that adapters stay plain and a failure is classified the same
// wherever it surfaces. The rule: what a backend does not do *now* (down, restarting, failing
// over, overloaded, unreachable, a conflict with a concurrent writer) is retryable; what it
// refuses because of the request or the configuration (validation, a missing table, access
// denied, a condition the code did not expect to fail, a reply the code cannot handle) is a
// bug, Internal, and is logged with its cause.

/** Node socket and DNS error codes, with what the caller is told about them. */
const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ECONNABORTED: "connection aborted",
  EPIPE: "connection broken",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENETDOWN: "network down",
  ENOTFOUND: "name lookup failed",
  EAI_AGAIN: "name lookup failed",
};

/** Node HTTP/2 errors of a call whose connection or stream went away under it. */
const HTTP2_REASONS: Record<string, string> = {
  ERR_HTTP2_STREAM_ERROR: "stream reset",
  ERR_HTTP2_GOAWAY_SESSION: "connection closing",
  ERR_HTTP2_INVALID_SESSION: "connection lost",
  ERR_HTTP2_SESSION_ERROR: "connection lost",
  ERR_HTTP2_STREAM_CANCEL: "call interrupted",
  ERR_HTTP2_PING_CANCEL: "connection lost",
  ERR_STREAM_PREMATURE_CLOSE: "connection lost",
};

/** DynamoDB error names of throttling (the AWS SDK retried them already). */
const DYNAMO_THROTTLING = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "Throttling",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException",
  "LimitExceededException",
]);

/** DynamoDB error names of a write that lost to a concurrent one; retrying it may succeed. */
const DYNAMO_CONFLICTS = new Set([
  "TransactionConflictException",
  "TransactionInProgressException",
  "ReplicatedWriteConflictException",
]);

/** TransactionCanceledException reasons of throttling. */
const DYNAMO_THROTTLED_REASONS = new Set(["ThrottlingError", "ProvisionedThroughputExceeded"]);

/** Redis error replies of a server that cannot serve now (restarting, failing over, busy). */
const REDIS_UNAVAILABLE_REPLIES: Record<string, string> = {
  READONLY: "failing over (read-only replica)",
  LOADING: "loading its dataset",
  MASTERDOWN: "primary down",
  CLUSTERDOWN: "cluster down",
  TRYAGAIN: "resharding",
  BUSY: "busy running a script",
  NOREPLICAS: "not enough replicas",
};

/** kafkajs errors of a cluster that cannot serve now, whatever their `retriable` says. */
const KAFKA_TRANSIENT = new Set([
  "KafkaJSNumberOfRetriesExceeded",
  "KafkaJSConnectionError",
  "KafkaJSConnectionClosedError",
  "KafkaJSRequestTimeoutError",
  "KafkaJSBrokerNotFound",
  "KafkaJSNoBrokerAvailableError",
  "KafkaJSGroupCoordinatorNotFound",
  "KafkaJSMetadataNotLoaded",
  "KafkaJSTopicMetadataNotLoaded",
  "KafkaJSStaleTopicMetadataAssignment",
  "KafkaJSTimeout",
  "KafkaJSLockTimeout",
]);

/** A bug, recognized as such: the classification stops there. */
const BUG = Symbol("bug");
type Verdict = BackendError | typeof BUG | undefined;

/**
 * classifyBackendError says what a failure of a backend means for the caller, or returns
 * undefined when it is not a backend failure this service expects to pass (a bug: Internal):
 *
 * - DynamoDB (AWS SDK v3, after the SDK's own retries): network errors and timeouts, 5xx,
 *   InternalServerError and ServiceUnavailable → Unavailable; throttling → ResourceExhausted;
 *   transaction conflicts → Aborted; other client faults (validation, ConditionalCheckFailed
 *   the adapter did not expect, a missing table, access denied) → a bug.
 * - Redis (ioredis): no connection (MaxRetriesPerRequestError, "Connection is closed.", a
 *   command aborted by a closing connection), READONLY / LOADING / MASTERDOWN / CLUSTERDOWN /
 *   TRYAGAIN / BUSY / NOREPLICAS replies → Unavailable; OOM → ResourceExhausted; other
 *   replies → a bug.
 * - Kafka (kafkajs): connection errors, timeouts, exhausted retries and every error kafkajs
 *   deems retriable (also as the cause of the error it gave up with) → Unavailable; others
 *   (authentication, a record too large, an unknown API) → a bug. A closed bus (a task
 *   shutting down) → Unavailable: another task takes the retry.
 * - Peer services (a ConnectError from a call): a call whose connection failed or whose
 *   stream the peer cut (Canceled) → Unavailable; what the peer answered passes through
 *   unchanged (undefined here), so a peer's Internal stays Internal.
 * - Any other Node socket error (ECONNREFUSED, ETIMEDOUT, ...) → Unavailable.
 */
export function classifyBackendError(err: unknown): BackendError | undefined {
  const v = classify(err, 0);
  return v === BUG ? undefined : v;
}

function classify(err: unknown, depth: number): Verdict {
  if (depth > 5) return undefined;
  if (err instanceof BackendError) return err;
  if (err instanceof ConnectError) return classifyPeer(err);
  if (!(err instanceof Error)) return undefined;
  const v = classifyDynamo(err) ?? classifyRedis(err) ?? classifyKafka(err, depth);
  if (v) return v;
  if (err instanceof BusClosedError) {
    return new BackendError(
      Code.Unavailable,
      "bus",
      "unavailable: this task is shutting down",
      err,
    );
  }
  const reason = networkReason(err);
  if (reason) return new BackendError(Code.Unavailable, "backend", `unavailable: ${reason}`, err);
  // A wrapper (new Error("...", { cause })) of a backend failure is that failure.
  if (err.cause !== undefined) {
    const inner = classify(err.cause, depth + 1);
    if (inner && inner !== BUG) {
      return new BackendError(inner.code, inner.backend, problemOf(inner), err);
    }
  }
  return undefined;
}

function problemOf(e: BackendError): string {
  return e.message.slice(e.backend.length + 1);
}

/** networkReason says which socket or DNS failure an error (or its AggregateError) is. */
function networkReason(err: Error): string | undefined {
  const e = err as Error & { code?: unknown; errors?: unknown };
  if (typeof e.code === "string" && NETWORK_REASONS[e.code]) return NETWORK_REASONS[e.code];
  if (
    e.name === "TimeoutError" ||
    e.name === "RequestTimeout" ||
    e.name === "RequestTimeoutException"
  ) {
    return "timed out";
  }
  if (e.message === "socket hang up") return "connection reset";
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const r = inner instanceof Error ? networkReason(inner) : undefined;
      if (r) return r;
    }
  }
  return undefined;
}

/** classifyDynamo recognizes AWS SDK v3 errors (they carry $metadata) as DynamoDB's. */
function classifyDynamo(err: Error): Verdict {
  const e = err as Error & {
    $metadata?: { httpStatusCode?: number };
    $fault?: string;
    $retryable?: { throttling?: boolean };
    CancellationReasons?: Array<{ Code?: string }>;
  };
  if (typeof e.$metadata !== "object" || e.$metadata === null) return undefined;
  const status = e.$metadata.httpStatusCode ?? 0;
  const fail = (code: Code, problem: string) => new BackendError(code, "DynamoDB", problem, err);
  const throttled = () => fail(Code.ResourceExhausted, "throttled: request rate too high; retry");
  const conflict = () => fail(Code.Aborted, "transaction conflict; retry");
  if (e.name === "TransactionCanceledException") {
    const reasons = (e.CancellationReasons ?? []).map((r) => r.Code ?? "None");
    if (reasons.some((r) => DYNAMO_THROTTLED_REASONS.has(r))) return throttled();
    if (reasons.includes("TransactionConflict")) return conflict();
    return BUG; // a condition or validation the adapter did not handle
  }
  if (DYNAMO_THROTTLING.has(e.name) || status === 429 || e.$retryable?.throttling) {
    return throttled();
  }
  if (DYNAMO_CONFLICTS.has(e.name)) return conflict();
  const reason = networkReason(err);
  if (reason) return fail(Code.Unavailable, `unavailable: ${reason}`);
  if (
    e.name === "InternalServerError" ||
    e.name === "ServiceUnavailable" ||
    e.$fault === "server" ||
    status >= 500
  ) {
    return fail(Code.Unavailable, "unavailable: server error");
  }
  if (e.$retryable) return fail(Code.Unavailable, "unavailable: transient error");
  return BUG;
}

/** classifyRedis recognizes ioredis's errors and Redis's error replies. */
function classifyRedis(err: Error): Verdict {
  const fail = (code: Code, problem: string) => new BackendError(code, "Redis", problem, err);
  if (err.name === "MaxRetriesPerRequestError")
    return fail(Code.Unavailable, "unavailable: not connected");
  if (
    err.message === "Connection is closed." ||
    (err.name === "AbortError" && err.message.startsWith("Command aborted due to connection close"))
  ) {
    return fail(Code.Unavailable, "unavailable: connection closed");
  }
  if (err.message.startsWith("Stream isn't writeable")) {
    return fail(Code.Unavailable, "unavailable: not connected");
  }
  if (err.name !== "ReplyError") return undefined;
  const word = err.message.split(" ", 1)[0] ?? "";
  const reason = REDIS_UNAVAILABLE_REPLIES[word];
  if (reason) return fail(Code.Unavailable, `unavailable: ${reason}`);
  if (word === "OOM") return fail(Code.ResourceExhausted, "out of memory; retry");
  return BUG;
}

/** classifyKafka recognizes kafkajs's errors (named KafkaJS...). */
function classifyKafka(err: Error, depth: number): Verdict {
  if (!err.name.startsWith("KafkaJS")) return undefined;
  if (KAFKA_TRANSIENT.has(err.name) || (err as { retriable?: unknown }).retriable === true) {
    return new BackendError(Code.Unavailable, "Kafka", `unavailable: ${kafkaReason(err)}`, err);
  }
  // kafkajs gives up with a KafkaJSNonRetriableError whose cause is the last failure.
  if (err.cause instanceof Error && err.cause.name.startsWith("KafkaJS")) {
    const inner = classifyKafka(err.cause, depth + 1);
    if (inner && inner !== BUG) return new BackendError(inner.code, "Kafka", problemOf(inner), err);
  }
  return BUG;
}

function kafkaReason(err: Error): string {
  for (let e: unknown = err, i = 0; e instanceof Error && i < 5; e = e.cause, i++) {
    const net = networkReason(e);
    if (net) return net;
    if (e.name === "KafkaJSRequestTimeoutError" || e.name.endsWith("Timeout")) return "timed out";
    if (e.name === "KafkaJSBrokerNotFound" || e.name === "KafkaJSNoBrokerAvailableError") {
      return "no broker available";
    }
    const type = (e as { type?: unknown }).type;
    if (typeof type === "string" && /^[A-Z_]+$/.test(type)) {
      return type.toLowerCase().replaceAll("_", " ");
    }
  }
  return "connection lost";
}

/**
 * classifyPeer classifies a ConnectError from a call to another service. What the peer
 * answered (a wire error) passes through; a call that failed on the way (refused, reset, the
 * peer's stream cut: Canceled, since this code never cancels its own calls) is Unavailable.
 */
function classifyPeer(err: ConnectError): Verdict {
  const fail = (reason: string) =>
    new BackendError(Code.Unavailable, "peer service", `unavailable: ${reason}`, err);
  if (err.code === Code.Canceled) return fail("call interrupted");
  if (err.isWireError || err.code === Code.DeadlineExceeded) return undefined;
  for (let e: unknown = err.cause, i = 0; e instanceof Error && i < 5; e = e.cause, i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && HTTP2_REASONS[code]) {
      return fail(
        code === "ERR_HTTP2_STREAM_ERROR" && e.message.includes("REFUSED_STREAM")
          ? "call refused"
          : HTTP2_REASONS[code],
      );
    }
    const reason = networkReason(e);
    if (reason) return fail(reason);
  }
  return undefined;
}
