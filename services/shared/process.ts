import { createShared, createStores, type Shared, type Stores } from "./backends.ts";
import { createServiceClients, type ServiceClients } from "./clients.ts";
import type { CommonConfig } from "./config.ts";
import { watchConsumers } from "./consumer-health.ts";
import {
  type Identity,
  InternalSigner,
  type PeerKeys,
  parsePeerKeys,
  parseSigningKey,
  requireInternalAuth,
} from "./internal-auth.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import type { Bus } from "./ports/bus.ts";
import { type ServiceApp, serveApp } from "./service-app.ts";
import { startTracing, stopTracing } from "./tracing.ts";

/** ProcessContext is what a service's main.ts builds its app from. */
export interface ProcessContext<C extends CommonConfig> {
  config: C;
  log: Logger;
  metrics: Metrics;
  /** clients call the region's other services, signing each call as this service. */
  clients: ServiceClients;
  /** peers are the public keys of the services allowed to call this one (INTERNAL_AUTH_PEERS). */
  peers: PeerKeys;
  /** stores opens the chat store and inbox store the configuration names. */
  stores(): Promise<Stores>;
  /** shared opens the region's bus, session registry and delivery channel. */
  shared(): Promise<Shared>;
}

/**
 * runService runs one service as its own process: it reads and validates the configuration,
 * opens the backends the service asks for, serves the app, and on SIGTERM or SIGINT stops it
 * gracefully and closes everything. A startup failure (bad configuration, unreachable backend,
 * port in use) is printed as a message, not a stack trace, and exits non-zero.
 */
export async function runService<C extends CommonConfig>(
  name: string,
  loadConfig: () => C,
  build: (ctx: ProcessContext<C>) => ServiceApp | Promise<ServiceApp>,
): Promise<void> {
  const closers: Array<() => Promise<void> | void> = [];
  try {
    const config = loadConfig();
    // Off unless OTEL_TRACES_EXPORTER=otlp; stopped last, so the spans of the stop go out too.
    if (
      await startTracing({
        service: name,
        region: config.region,
        instanceId: config.instanceId,
      })
    ) {
      closers.push(stopTracing);
    }
    const log = createLogger({
      service: name,
      region: config.region,
      instance: config.instanceId,
      level: config.logLevel,
    });
    const { key, peers } = requireInternalAuth(name, config.internalAuth);
    const signer = key ? new InternalSigner(parseSigningKey(key, name as Identity)) : undefined;
    const clients = createServiceClients(config.rpcTimeoutMs, signer);
    closers.push(() => clients.close());
    const once = <T extends { close(): Promise<void> }>(open: () => Promise<T>) => {
      let opened: Promise<T> | undefined;
      return () => {
        opened ??= open().then((x) => {
          closers.push(() => x.close());
          return x;
        });
        return opened;
      };
    };
    let bus: Bus | undefined;
    const shared = once(async () => {
      const opened = await createShared(config, log);
      bus = opened.bus;
      return opened;
    });
    const app = await build({
      config,
      log,
      metrics: createMetrics(name),
      clients,
      peers: peers ? parsePeerKeys(peers) : new Map(),
      stores: once(() => createStores(config, log)),
      shared,
    });
    if (bus) closers.push(watchConsumers({ bus, health: app.health, metrics: app.metrics, log }));
    const running = await serveApp(app, { port: config.port, host: config.host });
    stopOnSignals(async () => {
      await running.stop();
      await closeAll(closers);
    }, log);
  } catch (err) {
    await closeAll(closers).catch(() => undefined);
    process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}

/**
 * stopOnSignals runs `stop` on SIGTERM or SIGINT (ECS sends SIGTERM, then SIGKILL after the
 * stop timeout) and exits. A second signal exits at once.
 */
export function stopOnSignals(stop: () => Promise<void>, log: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, "stopping");
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, "stop failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

async function closeAll(closers: Array<() => Promise<void> | void>) {
  for (const close of closers.reverse()) await close();
}
