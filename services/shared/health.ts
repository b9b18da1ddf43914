import { EventEmitter, on } from "node:events";
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  type HealthCheckRequest,
  HealthCheckResponseSchema,
  Health as HealthService,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/grpc/health/v1/health_pb.ts";
import { ChatError, Code } from "./errors.ts";

/**
 * Health is the serving state of one service process, exposed as grpc.health.v1.Health and as
 * GET /healthz. The empty service name stands for the whole process.
 */
export interface Health {
  /** setServing says whether the process is up (started and not stopping). */
  setServing(serving: boolean): void;
  /**
   * setCheck records whether one condition of serving holds (e.g. "delivery": the canary
   * went through the bus and the store in time), with a word on why not.
   */
  setCheck(name: string, ok: boolean, detail?: string): void;
  /** serving is the overall status: up, and every check holds. */
  serving(): boolean;
  /** failing lists the checks that do not hold, with their details. */
  failing(): Record<string, string>;
  /** routes registers grpc.health.v1.Health on a router. */
  routes(router: ConnectRouter): void;
}

/** createHealth tracks the given fully-qualified service names; all start NOT_SERVING. */
export function createHealth(serviceNames: string[]): Health {
  let up = false;
  const failing = new Map<string, string>();
  const names = new Set(["", ...serviceNames]);
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  const serving = () => up && failing.size === 0;
  const statusOf = (service: string) => {
    if (!names.has(service)) return Status.SERVICE_UNKNOWN;
    return serving() ? Status.SERVING : Status.NOT_SERVING;
  };
  return {
    setServing(next) {
      if (next === up) return;
      const before = serving();
      up = next;
      if (serving() !== before) changes.emit("change");
    },
    setCheck(name, ok, detail = "failing") {
      const before = serving();
      if (ok) failing.delete(name);
      else failing.set(name, detail);
      if (serving() !== before) changes.emit("change");
    },
    serving,
    failing: () => Object.fromEntries(failing),
    routes(router) {
      router.service(HealthService, {
        check(req: HealthCheckRequest) {
          if (!names.has(req.service)) {
            throw new ChatError(Code.NotFound, `unknown service "${req.service}"`);
          }
          return create(HealthCheckResponseSchema, { status: statusOf(req.service) });
        },
        async *watch(req: HealthCheckRequest, ctx: HandlerContext) {
          let last: Status | undefined;
          const updates = on(changes, "change", { signal: ctx.signal });
          for (;;) {
            const status = statusOf(req.service);
            if (status !== last) {
              last = status;
              yield create(HealthCheckResponseSchema, { status });
            }
            try {
              await updates.next();
            } catch {
              return; // the client went away
            }
          }
        },
        list() {
          return {
            statuses: Object.fromEntries(
              [...names].map((n) => [
                n,
                create(HealthCheckResponseSchema, { status: statusOf(n) }),
              ]),
            ),
          };
        },
      });
    },
  };
}
