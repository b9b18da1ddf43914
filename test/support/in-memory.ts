import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import {
  generateKeySet,
  type Identity,
  InternalSigner,
  parsePeerKeys,
  parseSigningKey,
} from "../../services/shared/internal-auth.ts";
import { inProcessTransport, type ServiceApp } from "../../services/shared/service-app.ts";

/** TEST_KEYS are the internal keys of services built by tests; TEST_PEERS trusts them all. */
export const TEST_KEYS = generateKeySet("test");
export const TEST_PEERS = parsePeerKeys(TEST_KEYS.peers);

/** testSigner signs internal tokens as `identity`, with the test keys. */
export function testSigner(identity: Identity): InternalSigner {
  return new InternalSigner(parseSigningKey(TEST_KEYS.privateKeys[identity], identity));
}

/**
 * inMemoryClient calls an app's routes through Connect's in-memory transport, with the same
 * interceptors (error edge, authentication, validation) as a real server, signing each call as
 * `caller` would (`null`: no token at all).
 */
export function inMemoryClient<S extends DescService>(
  app: ServiceApp,
  service: S,
  caller: Identity | null,
): Client<S> {
  return createClient(service, inProcessTransport(app, caller ? testSigner(caller) : null));
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
