import { type AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb";

/** DynamoConfig says which table to use and how to reach it. */
export interface DynamoConfig {
  table: string;
  /** endpoint is set for DynamoDB Local; unset means the AWS endpoint of awsRegion. */
  endpoint?: string;
  awsRegion: string;
  /** maxAttempts bounds the SDK's retries of throttling and 5xx (backoff with full jitter). */
  maxAttempts: number;
}

/**
 * connectDynamo returns a client that retries throttling, 5xx and network errors itself, with
 * exponential backoff and full jitter (the SDK's standard retry mode). Against DynamoDB Local it
 * signs with placeholder credentials, which Local accepts.
 */
export function connectDynamo(c: DynamoConfig): DynamoDBClient {
  return new DynamoDBClient({
    region: c.awsRegion,
    endpoint: c.endpoint,
    maxAttempts: c.maxAttempts,
    retryMode: "standard",
    ...(c.endpoint && !process.env.AWS_ACCESS_KEY_ID
      ? { credentials: { accessKeyId: "local", secretAccessKey: "local" } }
      : {}),
  });
}

/** Item is a raw DynamoDB item. */
export type Item = Record<string, AttributeValue>;

/** s, n, b and bool write attribute values. */
export const s = (v: string): AttributeValue => ({ S: v });
export const n = (v: bigint | number): AttributeValue => ({ N: v.toString() });
export const b = (v: Uint8Array): AttributeValue => ({ B: v });
export const bool = (v: boolean): AttributeValue => ({ BOOL: v });

/** str, big, num, bytes and flag read attribute values, failing loudly on a malformed item. */
export function str(item: Item, name: string): string {
  const v = item[name]?.S;
  if (v === undefined) throw new Error(`item attribute ${name} is not a string`);
  return v;
}
export function big(item: Item, name: string): bigint {
  const v = item[name]?.N;
  if (v === undefined) throw new Error(`item attribute ${name} is not a number`);
  return BigInt(v);
}
export function num(item: Item, name: string): number {
  return Number(big(item, name));
}
export function bytes(item: Item, name: string): Uint8Array {
  const v = item[name]?.B;
  if (v === undefined) throw new Error(`item attribute ${name} is not binary`);
  return v;
}
export function flag(item: Item, name: string): boolean {
  const v = item[name]?.BOOL;
  if (v === undefined) throw new Error(`item attribute ${name} is not a boolean`);
  return v;
}

/** expiresAt returns the TTL value for an item that should live `days` from now. */
export function expiresIn(days: number, nowMs = Date.now()): AttributeValue {
  return n(Math.floor(nowMs / 1000) + Math.round(days * 86_400));
}

/** cancellationCodes returns the per-item reasons of a cancelled transaction, or undefined. */
export function cancellationCodes(err: unknown): string[] | undefined {
  if (!(err instanceof Error) || err.name !== "TransactionCanceledException") return undefined;
  const reasons =
    (err as { CancellationReasons?: Array<{ Code?: string }> }).CancellationReasons ?? [];
  return reasons.map((r) => r.Code ?? "None");
}
