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
 * When the dead region returns, its routing delivers every message it had not routed, these
 * included (skipping them would break its inboxes' order), so a message both regions
 * delivered reaches a device twice and is shown once: clients collapse copies by
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
    // While a dead region's backlog yields nothing new, look less and less often (up to 16
    // intervals apart): a long outage must not keep the store busy with empty sweeps. Anything
    // found, or a region newly dead, brings the interval back.
    let idle = 0;
    let dead = "";
    const tick = () => {
      this.#running = this.sweep()
        .then((found) => {
          const now = this.#d.liveness
            .dead()
            .map((d) => d.region)
            .join();
          idle = found > 0 || now !== dead ? 0 : Math.min(idle + 1, 4);
          dead = now;
        })
        .catch((err) => this.#d.log.warn({ err }, "takeover sweep failed"))
        .finally(() => {
          this.#running = undefined;
          if (!this.#stopped) this.#timer = setTimeout(tick, this.#d.intervalMs * 2 ** idle);
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
        const { seqs } = await this.#d.persistence.readTakeovers({
          conversationId,
          originRegion: region,
        });
        const mine = seqs[this.#d.region] ?? 0n;
        // Another task of this region may have gone further since the list was read.
        const left = list.filter((m) => m.seq > mine);
        if (left.length === 0) continue;
        if (!(await this.#startsCleanly(conversationId, region, mine, left))) continue;
        const run = contiguous(left);
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

  /**
   * startsCleanly says whether the first message of the window can be delivered now: right
   * after where this region's takeover stopped, or after messages that are all here and older
   * than the window (their region delivered them while it was alive). A predecessor that
   * replication has not brought yet is a hole: delivering past it would show the dead region's
   * messages out of order on a device (the dead region may have routed it, but its inbox
   * entries need not have crossed), so the conversation waits.
   */
  async #startsCleanly(
    conversationId: string,
    origin: string,
    mine: bigint,
    list: Message[],
  ): Promise<boolean> {
    const first = (list[0] as Message).seq;
    if (first === mine + 1n) return true;
    const from = first - 1n - mine > LOOK_BACK ? first - 1n - LOOK_BACK : mine;
    const { messages } = await this.#d.persistence.readMessages({
      conversationId,
      originRegion: origin,
      afterSeq: from,
      limit: Number(first - 1n - from),
    });
    return (
      messages.length === Number(first - 1n - from) &&
      messages.every((m, i) => m.seq === from + 1n + BigInt(i))
    );
  }
}

/** LOOK_BACK bounds how many predecessors of a window are checked: older ones are long past. */
const LOOK_BACK = 1000n;

/** contiguous returns the run of consecutive seqs that starts the (seq-ordered) list. */
function contiguous(list: Message[]): Message[] {
  const run = [list[0] as Message];
  for (const m of list.slice(1)) {
    if (m.seq !== (run.at(-1) as Message).seq + 1n) break;
    run.push(m);
  }
  return run;
}
