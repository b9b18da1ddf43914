/**
 * The Connect Chat client SDK. Runs wherever a WebSocket does: browsers, React Native, Node.
 */
export { Backoff } from "./backoff.ts";
export {
  ChatClient,
  ChatClientError,
  type ChatClientEvents,
  type ChatClientOptions,
  newClientMsgId,
} from "./chat-client.ts";
export { FailoverPlan, type Loss } from "./failover.ts";
export { JSON_SUBPROTOCOL, PROTO_SUBPROTOCOL } from "./frames.ts";
export { InboxTracker } from "./inbox.ts";
export {
  parseRegions,
  preferenceOrder,
  type RegionEndpoint,
  type RegionLatency,
} from "./regions.ts";
export {
  type ClientStateStore,
  MemoryStateStore,
  type PendingSend,
  type PersistedState,
} from "./state.ts";
