import type { Client } from "@connectrpc/connect";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import type { Message } from "../../gen/chat/v1/types_pb.ts";
import type { Logger } from "../shared/logger.ts";
import { type InboxDelivery, type Routed, recipientsOf } from "./inbox-delivery.ts";
import type { PeerLiveness } from "./peer-liveness.ts";

/** TakeoverDeps are what taking over a dead region's deliveries needs. */
export interface TakeoverDeps {
  region: string;
  persistence: Client<typeof PersistenceService>;
  inboxes: Pick<InboxDelivery, "deliver">;
  liveness: Pick<PeerLiveness, "dead">;
  log: Logger;
  /** intervalMs is how often dead regions' backlogs are looked at. */
  intervalMs: number;
  /**
   * windowMs is how far before a region fell silent its messages are delivered again: it
   * must cover the replication lag and the mirror lag at the moment the region died.
   */
  windowMs: number;
}

/**
 * Takeover delivers what a dead region left undelivered (DESIGN.md §4.3, messaging README):
 * the messages it appended shortly before going silent that replication had already brought
 * here, which it may not have routed, or whose live deliveries may not have crossed before it
 * died. Within the single-writer rule: this region cannot write the dead region's inboxes, so
 * it appends those messages to its own inbox of each recipient (entries of this region that
 * carry the dead region's messages), hands them to the recipients connected here, and records
 * how far it went in a takeover cursor of its own. Per conversation it goes strictly in the
 * dead region's seq order and stops at the first message replication has not brought yet, so
 * no client sees a gap or a reorder within an origin's sequence.
 *
 * When the dead region returns, its routing skips what a takeover cursor covers; a message
 * that both regions delivered (the cursor had not replicated yet, or the region had routed it
 * just before dying) reaches a device twice and is shown once: clients collapse copies by
 * (conversation, sender, client_msg_id).
 */
export class Takeover {
  readonly #d: TakeoverDeps;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #stopped = false;

  constructor(deps: TakeoverDeps) {
    this.#d = deps;
  }

  start(): void {
    this.#stopped = false;
    const tick = () => {
      this.#running = this.sweep()
        .catch((err) => this.#d.log.warn({ err }, "takeover sweep failed"))
        .finally(() => {
          this.#running = undefined;
          if (!this.#stopped) this.#timer = setTimeout(tick, this.#d.intervalMs);
        });
    };
    this.#timer = setTimeout(tick, this.#d.intervalMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** sweep takes over what the dead regions left, once; it returns how many messages. */
  async sweep(): Promise<number> {
    let delivered = 0;
    for (const { region, lastSeenMs } of this.#d.liveness.dead()) {
      const { messages } = await this.#d.persistence.listUntakenOver({
        originRegion: region,
        sinceMs: BigInt(lastSeenMs - this.#d.windowMs),
        limit: 1000,
      });
      if (messages.length === 0) continue;
      const byConversation = new Map<string, Message[]>();
      for (const m of messages) {
        const list = byConversation.get(m.conversationId) ?? [];
        list.push(m);
        byConversation.set(m.conversationId, list);
      }
      for (const [conversationId, list] of byConversation) {
        // Start right after where this region's takeover stopped, or after what the dead
        // region routed itself; anything else waits for replication to fill the hole.
        const { seqs, originRouted } = await this.#d.persistence.readTakeovers({
          conversationId,
          originRegion: region,
        });
        const first = (list[0] as Message).seq;
        const mine = seqs[this.#d.region] ?? 0n;
        if (first !== mine + 1n && first > originRouted + 1n) continue;
        const run = contiguous(list);
        const { conversation } = await this.#d.persistence.readConversation({ conversationId });
        const members = conversation?.memberIds ?? [];
        const plan: Routed[] = run.map((message) => ({
          message,
          recipientIds: recipientsOf(message, members),
        }));
        await this.#d.inboxes.deliver(plan);
        await this.#d.persistence.advanceTakeover({
          conversationId,
          originRegion: region,
          seq: (run.at(-1) as Message).seq,
        });
        delivered += run.length;
      }
      this.#d.log.info({ region, messages: delivered }, "took over a dead region's deliveries");
    }
    return delivered;
  }
}

/** contiguous returns the run of consecutive seqs that starts the (seq-ordered) list. */
function contiguous(list: Message[]): Message[] {
  const run = [list[0] as Message];
  for (const m of list.slice(1)) {
    if (m.seq !== (run.at(-1) as Message).seq + 1n) break;
    run.push(m);
  }
  return run;
}
