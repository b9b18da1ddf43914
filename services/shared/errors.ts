import { Code, ConnectError } from "@connectrpc/connect";

export { Code };

/**
 * ChatError is a failure the domain understands: it carries the gRPC code it becomes at the
 * RPC edge and a message fit for the caller. Anything else that escapes a handler is an
 * internal error whose details go to the log, never to the caller.
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
 * toConnectError converts anything thrown by a handler into the ConnectError the caller sees.
 * ConnectErrors from downstream calls pass through (their message was already made safe).
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof ChatError) return new ConnectError(err.message, err.code, undefined, [], err);
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
