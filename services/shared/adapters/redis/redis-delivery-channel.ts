import type { Redis } from "ioredis";
import type { DeliveryChannel } from "../../ports/delivery-channel.ts";

/**
 * RedisDeliveryChannel carries deliveries over Redis pub/sub, one channel per gateway
 * instance (`<prefix>deliveries:<instance>`): a publish reaches only the instance that
 * subscribed, and costs Redis one message whatever the number of gateways. Pub/sub keeps no
 * backlog: while an instance is disconnected its deliveries are lost, which clients notice as
 * a gap in their inbox seqs and fill with a sync (see the port's contract).
 */
export class RedisDeliveryChannel implements DeliveryChannel {
  readonly #publisher: Redis;
  readonly #connectSubscriber: () => Redis;
  readonly #prefix: string;
  readonly #subscribers = new Set<Redis>();
  readonly #owned: boolean;

  constructor(
    publisher: Redis,
    opts: { keyPrefix: string; subscriber: () => Redis; owned?: boolean },
  ) {
    this.#publisher = publisher;
    this.#connectSubscriber = opts.subscriber;
    this.#prefix = opts.keyPrefix;
    this.#owned = opts.owned ?? false;
  }

  async send(instanceId: string, payload: Uint8Array) {
    await this.#publisher.publish(
      this.#channel(instanceId),
      Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
    );
  }

  async listen(instanceId: string, handler: (payload: Uint8Array) => void) {
    // A subscribed connection can do nothing else, so each listener has its own. ioredis
    // subscribes again by itself after a reconnection.
    const sub = this.#connectSubscriber();
    this.#subscribers.add(sub);
    const channel = this.#channel(instanceId);
    sub.on("messageBuffer", (ch: Buffer, message: Buffer) => {
      if (ch.toString() === channel)
        handler(new Uint8Array(message.buffer, message.byteOffset, message.byteLength));
    });
    await sub.subscribe(channel);
    return async () => {
      this.#subscribers.delete(sub);
      await sub.quit().catch(() => sub.disconnect());
    };
  }

  async close() {
    await Promise.all([...this.#subscribers].map((s) => s.quit().catch(() => s.disconnect())));
    this.#subscribers.clear();
    if (this.#owned) await this.#publisher.quit().catch(() => this.#publisher.disconnect());
  }

  #channel(instanceId: string) {
    return `${this.#prefix}deliveries:${instanceId}`;
  }
}
