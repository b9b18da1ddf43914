import type { ExecutionContext } from "ava";
import type { ChatClient, ChatClientOptions } from "../../client/index.ts";
import { type EmbeddedRegionsOptions, startEmbeddedRegions } from "../../dev/regions/embedded.ts";
import type { Regions } from "../../dev/regions/regions.ts";
import { connect } from "./region.ts";

/**
 * TEST_ENV shortens the multi-region clocks so tests see their effects in seconds: canaries
 * every 300 ms (failing after 2 s), peers dead after 2 s of silence, presence leases of 3 s.
 */
export const TEST_ENV = {
  HEARTBEAT_INTERVAL_MS: "5000",
  PUSH_DELAY_MS: "60000",
  CANARY_INTERVAL_MS: "300",
  CANARY_TIMEOUT_MS: "2000",
  TAKEOVER_AFTER_MS: "2000",
  TAKEOVER_INTERVAL_MS: "300",
  SESSION_TTL_MS: "3000",
  RECEIPT_WINDOW_MS: "0",
};

/** withRegions starts two embedded regions (us-east-1, eu-west-1) for one test. */
export async function withRegions(
  t: ExecutionContext,
  opts: EmbeddedRegionsOptions = {},
): Promise<Regions> {
  const regions = await startEmbeddedRegions({
    ...opts,
    env: { ...TEST_ENV, ...opts.env },
  });
  t.teardown(() => regions.stop());
  return regions;
}

/** connectIn opens an SDK client of a user's device on one region's gateway. */
export function connectIn(
  t: ExecutionContext,
  regions: Regions,
  region: string,
  userId: string,
  deviceId = "phone",
  opts: Partial<ChatClientOptions> = {},
): Promise<ChatClient> {
  const wsUrl = regions.region(region).gatewayUrls[0] as string;
  return connect(t, { wsUrl, token: (u) => regions.token(u) }, userId, deviceId, opts);
}

/** regionList is every region's name and gateway URL, for a failover-capable client. */
export function regionList(regions: Regions): Array<{ name: string; url: string }> {
  return regions.regions.map((r) => ({ name: r.name, url: r.gatewayUrls[0] as string }));
}

/** until waits for a condition checked every few milliseconds, naming what it waited for. */
export async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
