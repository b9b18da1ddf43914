import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor, Transport } from "@connectrpc/connect";
import { Health as HealthService } from "../../gen/grpc/health/v1/health_pb.ts";
import { createDirectTransport } from "./direct-transport.ts";
import { createHealth, type Health } from "./health.ts";
import { serverInterceptors } from "./interceptors.ts";
import { type InternalSigner, signingInterceptor } from "./internal-auth.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";
import { registerReflection } from "./reflection.ts";
import { type HttpRoute, type ServiceServer, serve, type UpgradeHandler } from "./server.ts";
import { clientTracing, serverTracing, withService } from "./tracing.ts";

/**
 * ServiceApp is one service, built from its dependencies and not yet listening: what each
 * service's `build()` returns. `main.ts` (or the local region, or a test) serves it.
 */
export interface ServiceApp {
  readonly name: string;
  /** services are the gRPC services it implements (health and reflection come on top). */
  readonly services: DescService[];
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly health: Health;
  routes(router: ConnectRouter): void;
  /** start begins background work (bus consumers, timers). */
  start(): Promise<void>;
  /** stop ends background work after finishing what is in flight. */
  stop(): Promise<void>;
  /** kill ends background work at once, without draining (a crash, as far as a process can). */
  kill?(): Promise<void>;
  /**
   * interceptors are the app's own server interceptors, run inside the error edge and before
   * validation: how it authenticates its callers (internal-auth.ts).
   */
  readonly interceptors?: Interceptor[];
  readonly http?: HttpRoute;
  readonly upgrade?: UpgradeHandler;
  /**
   * admin, when set, splits the app over two listeners: the public one serves only `http`,
   * `upgrade` and GET /healthz (what a public load balancer needs); the admin one serves the
   * gRPC services, health, reflection and /metrics on `port`, its RPCs passing `interceptors`
   * too (the operator credential check).
   */
  readonly admin?: { port: number; interceptors: Interceptor[] };
}

/** RunningService is a served ServiceApp. */
export interface RunningService {
  readonly app: ServiceApp;
  readonly url: string;
  readonly port: number;
  /** adminUrl is the admin listener, for an app that has one. */
  readonly adminUrl?: string;
  /**
   * stop reports NOT_SERVING, stops the app's work, then closes the port, letting requests in
   * flight finish (up to `graceMs`).
   */
  stop(graceMs?: number): Promise<void>;
  /** kill closes the port at once, dropping requests and connections, and stops the app's work. */
  kill(): Promise<void>;
}

/**
 * inProcessTransport calls an app's handlers in this process, through the same client and
 * server interceptors (tracing, the signed token, error edge, authentication, validation), with
 * the same trace context and deadline as a call over the network, minus the wire
 * (direct-transport.ts): what services running in one process (the embedded region) use to
 * call each other. `signer` is the caller's (null: no token at all, as an outsider).
 */
export function inProcessTransport(
  app: ServiceApp,
  signer: InternalSigner | null,
  defaultTimeoutMs?: number,
): Transport {
  return createDirectTransport((router) => app.routes(router), {
    serverInterceptors: interceptorsOf(app),
    clientInterceptors: signer ? [clientTracing(), signingInterceptor(signer)] : [clientTracing()],
    defaultTimeoutMs,
  });
}

/**
 * interceptorsOf returns the server interceptors an app serves with: tracing outermost (its
 * span covers the whole call, and sees errors as the edge answers them), then the others.
 */
function interceptorsOf(app: ServiceApp): Interceptor[] {
  return [serverTracing(app.name), ...serverInterceptors(app.log, app.metrics, app.interceptors)];
}

/** createAppHealth creates the health state for an app's services. */
export function createAppHealth(services: DescService[]): Health {
  return createHealth(services.map((s) => s.typeName));
}

/**
 * serveApp serves an app's gRPC services with health and reflection on one port, starts its
 * background work, and marks it SERVING.
 */
export async function serveApp(
  app: ServiceApp,
  opts: { port: number; host: string },
): Promise<RunningService> {
  const rpc = {
    health: app.health,
    metrics: app.metrics.registry,
    routes: (router: ConnectRouter) => {
      app.routes(router);
      app.health.routes(router);
      registerReflection(router, [...app.services, HealthService]);
    },
  };
  const interceptors = interceptorsOf(app);
  const admin: ServiceServer | undefined = app.admin
    ? await serve({
        port: app.admin.port,
        host: opts.host,
        interceptors: [...interceptors, ...app.admin.interceptors],
        ...rpc,
      })
    : undefined;
  const server: ServiceServer = await serve({
    port: opts.port,
    host: opts.host,
    interceptors,
    http: app.http,
    upgrade: app.upgrade,
    ...(admin ? { health: app.health, routes: () => {} } : rpc),
  }).catch(async (err) => {
    await admin?.close(0);
    throw err;
  });
  // Background work (consumers, timers) started here is the app's own: its spans are too.
  await withService(app.name, () => app.start());
  app.health.setServing(true);
  app.log.info(
    { url: server.url, ...(admin ? { admin: admin.url } : {}) },
    `${app.name} listening`,
  );
  let stopping: Promise<void> | undefined;
  return {
    app,
    url: server.url,
    port: server.port,
    adminUrl: admin?.url,
    stop: (graceMs?: number) => {
      stopping ??= (async () => {
        app.health.setServing(false);
        await app.stop();
        await Promise.all([server.close(graceMs), admin?.close(graceMs)]);
      })();
      return stopping;
    },
    kill: () => {
      stopping ??= (async () => {
        app.health.setServing(false);
        const closed = Promise.all([server.close(0), admin?.close(0)]);
        await (app.kill ?? app.stop).call(app);
        await closed;
      })();
      return stopping;
    },
  };
}
