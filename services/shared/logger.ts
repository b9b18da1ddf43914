import { type Logger, pino } from "pino";
import { traceFields } from "./tracing.ts";

export type { Logger };

/**
 * createLogger returns the structured JSON logger of one service instance. Every line carries
 * the service, region and instance, so logs from all tasks of a region can be read together,
 * and, when tracing is on, the trace and span of the work it was logged in (traceFields), so
 * a trace leads to its logs and a log line to its trace.
 */
export function createLogger(opts: {
  service: string;
  region: string;
  instance?: string;
  level?: string;
  destination?: NodeJS.WritableStream;
}): Logger {
  return pino(
    {
      level: opts.level ?? "info",
      base: { service: opts.service, region: opts.region, instance: opts.instance },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: traceFields,
    },
    opts.destination ?? process.stdout,
  );
}

/** silentLogger is for tests and embedding: it drops everything. */
export const silentLogger: Logger = pino({ level: "silent" });
