import type { Client } from "@connectrpc/connect";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import type { Message } from "../../gen/chat/v1/types_pb.ts";
import type { Logger } from "../shared/logger.ts";
import type { Bus } from "../shared/ports/bus.ts";
import { publishEvents, TOPICS } from "../shared/topics.ts";

/** SweeperDeps are what the sweeper needs. */
export interface SweeperDeps {
  persistence: Client<typeof PersistenceService>;
  bus: Pick<Bus, "publish">;
  log: Logger;
  intervalMs: number;
  minAgeMs: number;
  maxAgeMs: number;
}

/**
 * Sweeper closes the dual-write hole for abandoned sends: a message persisted by a task that
 * died before publishing message.stored, whose client never retried. Every interval it asks
 * persistence for messages older than minAgeMs that routing has not processed and publishes
 * the newest of each conversation again; routing then routes it and every message it skipped.
 * Running it in every messaging task is safe: routing is idempotent.
 */
export class Sweeper {
  readonly #d: SweeperDeps;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(deps: SweeperDeps) {
    this.#d = deps;
  }

  start() {
    const tick = () => {
      this.#running = this.sweep()
        .then(() => undefined)
        .catch((err) => this.#d.log.warn({ err }, "sweep failed"))
        .finally(() => {
          this.#running = undefined;
          if (this.#timer) this.#timer = setTimeout(tick, this.#d.intervalMs);
        });
    };
    this.#timer = setTimeout(tick, this.#d.intervalMs);
  }

  async stop() {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** sweep republishes unrouted messages once; it returns how many conversations it woke. */
  async sweep(): Promise<number> {
    const { messages } = await this.#d.persistence.listUnrouted({
      minAgeMs: this.#d.minAgeMs,
      maxAgeMs: this.#d.maxAgeMs,
      limit: 1000,
    });
    const newest = new Map<string, Message>();
    for (const m of messages) {
      const seen = newest.get(m.conversationId);
      if (!seen || m.seq > seen.seq) newest.set(m.conversationId, m);
    }
    if (newest.size === 0) return 0;
    const events = await Promise.all(
      [...newest.values()].map(async (message) => {
        const { conversation } = await this.#d.persistence.readConversation({
          conversationId: message.conversationId,
        });
        const changed = message.content.case === "membership" ? message.content.value.userIds : [];
        const recipientIds = [...new Set([...(conversation?.memberIds ?? []), ...changed])];
        return { key: message.conversationId, value: { message, recipientIds } };
      }),
    );
    await publishEvents(this.#d.bus, TOPICS.messageStored, events);
    this.#d.log.info({ conversations: newest.size }, "republished abandoned sends");
    return newest.size;
  }
}
