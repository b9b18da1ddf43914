/**
 * DeliveryChannel is the last hop: it carries encoded GatewayDelivery messages to the one
 * gateway instance that holds the target sockets, without broadcasting to every gateway.
 *
 * It is at-most-once on purpose. A delivery lost here (instance restarting, channel
 * reconnecting) leaves a gap in the device's dense inbox seqs; the client notices and asks for
 * a sync, which replays from the durable inbox. That keeps the hot path one publish and one
 * receive, with no acknowledgements or offsets per instance.
 *
 * Implementations: MemoryDeliveryChannel (one process), RedisDeliveryChannel (pub/sub, one
 * channel per instance).
 */
export interface DeliveryChannel {
  /** send hands a payload to an instance's listener, if it is listening. */
  send(instanceId: string, payload: Uint8Array): Promise<void>;

  /** listen receives the payloads sent to `instanceId` until the returned stop is called. */
  listen(instanceId: string, handler: (payload: Uint8Array) => void): Promise<() => Promise<void>>;

  close(): Promise<void>;
}
