import type { Logger } from "./logger.ts";
import type { RunningService } from "./service-app.ts";

/**
 * stopOnSignals stops a running service on SIGTERM or SIGINT (ECS sends SIGTERM, then SIGKILL
 * after the stop timeout) and exits. A second signal exits at once.
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

/** stopAll stops services in order. */
export async function stopAll(services: RunningService[]): Promise<void> {
  for (const s of services) await s.stop();
}

/**
 * failStartup prints a startup failure (bad configuration, port in use) readably and exits
 * non-zero, instead of a stack trace.
 */
export function failStartup(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${message}\n`);
  process.exit(1);
}
