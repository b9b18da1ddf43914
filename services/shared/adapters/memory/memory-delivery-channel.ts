import type { DeliveryChannel } from "../../ports/delivery-channel.ts";

/**
 * MemoryDeliveryChannel hands payloads to listeners in this process, asynchronously (as a
 * network hop would). Payloads for an instance that is not listening are dropped.
 */
export class MemoryDeliveryChannel implements DeliveryChannel {
  readonly #listeners = new Map<string, (payload: Uint8Array) => void>();

  async send(instanceId: string, payload: Uint8Array) {
    const listener = this.#listeners.get(instanceId);
    if (listener) queueMicrotask(() => listener(payload));
  }

  async listen(instanceId: string, handler: (payload: Uint8Array) => void) {
    this.#listeners.set(instanceId, handler);
    return async () => {
      if (this.#listeners.get(instanceId) === handler) this.#listeners.delete(instanceId);
    };
  }

  async close() {
    this.#listeners.clear();
  }
}
