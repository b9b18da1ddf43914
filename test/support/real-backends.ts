import { requireLibrary, requireProgram } from "../../dev/backends/processes.ts";

/**
 * missingRealBackend says why the real local backends (DynamoDB Local, redis-server, the mock
 * Kafka) cannot run here, or nothing when they can. Under CI=true a missing one fails instead.
 */
export function missingRealBackend(): string | undefined {
  const needs = [
    requireProgram("java", "install a Java 17 runtime for DynamoDB Local"),
    requireProgram("redis-server", "apt-get install redis-server"),
    requireProgram("python3", "apt-get install python3"),
    requireLibrary("librdkafka.so.1", "apt-get install librdkafka1"),
  ];
  return needs.find((n) => !n.available)?.why;
}
