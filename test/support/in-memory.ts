import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, createRouterTransport } from "@connectrpc/connect";
import { serverInterceptors } from "../../services/shared/interceptors.ts";
import type { ServiceApp } from "../../services/shared/service-app.ts";

/**
 * inMemoryClient calls an app's routes through Connect's in-memory transport, with the same
 * interceptors (validation, identity, error edge) as a real server.
 */
export function inMemoryClient<S extends DescService>(app: ServiceApp, service: S): Client<S> {
  const transport = createRouterTransport((router) => app.routes(router), {
    router: { interceptors: serverInterceptors(app.log, app.metrics) },
  });
  return createClient(service, transport);
}

/**
 * MESSAGING_TEST_CONFIG is a messaging configuration for tests of the service alone: one
 * region, small groups, a sweeper that stays out of the way, receipts relayed at once.
 */
export const MESSAGING_TEST_CONFIG = {
  region: "us-east-1",
  peers: [],
  mirrors: [],
  maxGroupSize: 4,
  sweepIntervalMs: 3_600_000,
  sweepMinAgeMs: 1_000,
  sweepMaxAgeMs: 3_600_000,
  receiptWindowMs: 0,
};
