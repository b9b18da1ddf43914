import type { ExecutionContext } from "ava";
import { ChatClient, type ChatClientOptions } from "../../client/index.ts";
import {
  type LocalRegion,
  type LocalRegionOptions,
  startLocalRegion,
} from "../../services/region/region.ts";
import { recordFromStart } from "./inbox-recorder.ts";

/** withRegion starts a local region on ephemeral ports and stops it when the test ends. */
export async function withRegion(
  t: ExecutionContext,
  opts: LocalRegionOptions = {},
): Promise<LocalRegion> {
  const region = await startLocalRegion({
    ...opts,
    env: { HEARTBEAT_INTERVAL_MS: "5000", PUSH_DELAY_MS: "60000", ...opts.env },
  });
  t.teardown(() => region.stop());
  return region;
}

/** connect opens an SDK client for a user's device and closes it when the test ends. */
export async function connect(
  t: ExecutionContext,
  region: Pick<LocalRegion, "wsUrl" | "token">,
  userId: string,
  deviceId = "phone",
  opts: Partial<ChatClientOptions> = {},
): Promise<ChatClient> {
  const client = new ChatClient({
    url: region.wsUrl,
    token: () => region.token(userId),
    deviceId,
    reconnect: { initialMs: 50, maxMs: 500 },
    gapTimeoutMs: 300,
    ...opts,
  });
  t.teardown(() => client.close());
  recordFromStart(client);
  await client.connect();
  return client;
}

/** within rejects when `promise` does not settle in `ms`, naming what was awaited. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)),
      ms,
    );
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * operatorCall calls the gateway's operator API (GatewayService, Connect protocol with JSON) on
 * its admin listener, with an operator token from the region's issuer. It throws on an error.
 */
export async function operatorCall(
  region: Pick<LocalRegion, "urls" | "issuer">,
  method: "ListSessions" | "Disconnect",
  body: unknown,
): Promise<Record<string, unknown>> {
  const res = await fetch(`${region.urls.gatewayAdmin}/chat.v1.GatewayService/${method}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${await region.issuer.operatorToken("ops")}`,
    },
    body: JSON.stringify(body),
  });
  const answer = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} failed: ${res.status} ${JSON.stringify(answer)}`);
  return answer;
}
