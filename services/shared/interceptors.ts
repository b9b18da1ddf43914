import { Code, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { BackendError, toConnectError, unauthenticated } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";
import { createContractValidator } from "./validation.ts";

/**
 * Caller is the user and device a request acts for, as the gateway authenticated them and
 * vouched for in the request's internal token (see internal-auth.ts).
 */
export interface Caller {
  userId: string;
  deviceId: string;
}

/** callerKey holds a request's caller, set only by the internal token's verification. */
export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "caller" });

/** callerOf returns the caller of a request, failing with Unauthenticated when there is none. */
export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  if (!caller) throw unauthenticated("this call acts for no user: its internal token names none");
  return caller;
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

/**
 * serverInterceptors returns the interceptors every service serves with, outermost first: the
 * error edge, then the app's own (authentication: nothing unauthenticated is even validated),
 * then validation of the request against its contract.
 */
export function serverInterceptors(
  log: Logger,
  metrics: Metrics,
  app: Interceptor[] = [],
): Interceptor[] {
  return [
    edgeInterceptor(log, metrics),
    ...app,
    createValidateInterceptor({ validator: createContractValidator() }),
  ];
}
