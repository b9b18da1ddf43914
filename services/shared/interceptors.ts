import { createValidator } from "@bufbuild/protovalidate";
import {
  Code,
  ConnectError,
  createContextKey,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { BackendError, toConnectError, unauthenticated } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";

/** Caller is the user and device a request acts for, as authenticated by the gateway. */
export interface Caller {
  userId: string;
  deviceId: string;
}

/** USER_HEADER and DEVICE_HEADER carry the caller between services. */
export const USER_HEADER = "chat-user-id";
export const DEVICE_HEADER = "chat-device-id";

const callerKey = createContextKey<Caller | undefined>(undefined, { description: "caller" });

/** callerHeaders returns the request headers that identify a caller to another service. */
export function callerHeaders(caller: Caller): Record<string, string> {
  return { [USER_HEADER]: caller.userId, [DEVICE_HEADER]: caller.deviceId };
}

/** callerOf returns the caller of a request, failing with Unauthenticated when there is none. */
export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  if (!caller) throw unauthenticated(`missing ${USER_HEADER} header`);
  return caller;
}

const ID = /^[A-Za-z0-9_-]{1,64}$/;

/** identityInterceptor reads the caller headers, when present, into the request context. */
export function identityInterceptor(): Interceptor {
  return (next) => async (req) => {
    const userId = req.header.get(USER_HEADER);
    if (userId !== null) {
      const deviceId = req.header.get(DEVICE_HEADER) ?? "";
      if (!ID.test(userId) || (deviceId !== "" && !ID.test(deviceId))) {
        throw new ConnectError(
          `malformed ${USER_HEADER} or ${DEVICE_HEADER}`,
          Code.Unauthenticated,
        );
      }
      req.contextValues.set(callerKey, { userId, deviceId });
    }
    return next(req);
  };
}

/**
 * edgeInterceptor is the outermost server interceptor: every error leaves as a ConnectError
 * with a real code (see toConnectError: internal failures are logged as errors with their
 * cause and answered as Internal; backend failures are logged as warnings with their cause and
 * answered with their retryable code), and every RPC is timed.
 */
export function edgeInterceptor(log: Logger, metrics: Metrics): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const method = `${req.service.typeName}/${req.method.name}`;
    let code = "ok";
    try {
      return await next(req);
    } catch (err) {
      const ce = toConnectError(err);
      code = Code[ce.code] ?? String(ce.code);
      if (ce.code === Code.Internal || ce.code === Code.Unknown) {
        log.error({ err: ce.cause ?? err, method }, "rpc failed");
      } else if (ce.cause instanceof BackendError) {
        // Not the request's fault and retryable, but operators need to see what failed.
        log.warn(
          { err: ce.cause.cause, backend: ce.cause.backend, method, code },
          `rpc failed: ${ce.rawMessage}`,
        );
      } else {
        log.debug({ method, code, message: ce.rawMessage }, "rpc rejected");
      }
      throw ce;
    } finally {
      metrics.rpcDuration.observe({ method, code }, (performance.now() - started) / 1000);
    }
  };
}

/** serverInterceptors returns the interceptors every service serves with, outermost first. */
export function serverInterceptors(log: Logger, metrics: Metrics): Interceptor[] {
  return [
    edgeInterceptor(log, metrics),
    createValidateInterceptor({ validator: createValidator() }),
    identityInterceptor(),
  ];
}
