import type { PushToken } from "../../../gen/chat/v1/persistence_pb.ts";

/** DEFAULT_MAX_PUSH_DEVICES is MAX_PUSH_DEVICES_PER_USER's default. */
export const DEFAULT_MAX_PUSH_DEVICES = 20;

/**
 * newestTokens returns the `max` most recently registered tokens (ties broken by device id, so
 * every task picks the same ones), always including device `keep` when it is among them.
 */
export function newestTokens(tokens: PushToken[], max: number, keep?: string): PushToken[] {
  const newestFirst = [...tokens].sort(
    (a, b) =>
      Number(b.deviceId === keep) - Number(a.deviceId === keep) ||
      compare(b.registeredAtMs, a.registeredAtMs) ||
      compare(a.deviceId, b.deviceId),
  );
  return newestFirst.slice(0, Math.max(0, max));
}

function compare<T extends bigint | string>(a: T, b: T): number {
  return a === b ? 0 : a < b ? -1 : 1;
}
