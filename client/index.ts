/**
 * The Connect Chat client SDK. Runs wherever a WebSocket does: browsers, React Native, Node.
 */
export { Backoff } from "./backoff.ts";
export {
  ChatClient,
  ChatClientError,
  type ChatClientEvents,
  type ChatClientOptions,
  JSON_SUBPROTOCOL,
  newClientMsgId,
  PROTO_SUBPROTOCOL,
} from "./chat-client.ts";
export { InboxTracker } from "./inbox.ts";
export {
  type ClientStateStore,
  MemoryStateStore,
  type PendingSend,
  type PersistedState,
} from "./state.ts";
