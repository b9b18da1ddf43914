import type { Client } from "@connectrpc/connect";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import type { Message } from "../../gen/chat/v1/types_pb.ts";
import { hlcMillis } from "../shared/hlc.ts";
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
      const since = lastSeenMs - this.#d.windowMs;
      // The dead region's replicated outbox says which conversations it wrote to lately;
      // what to deliver is then read from its replicated log, seq by seq.
      const { messages } = await this.#d.persistence.listUntakenOver({
        originRegion: region,
        sinceMs: BigInt(since),
        limit: 1000,
      });
      const firstInWindow = new Map<string, bigint>();
      for (const m of messages) {
        const seen = firstInWindow.get(m.conversationId);
        if (seen === undefined || m.seq < seen) firstInWindow.set(m.conversationId, m.seq);
      }
      for (const [conversationId, first] of firstInWindow) {
        const run = await this.#run(conversationId, region, first, since);
        if (run.length === 0) continue;
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
      if (delivered > 0) {
        this.#d.log.info({ region, messages: delivered }, "took over a dead region's deliveries");
      }
    }
    return delivered;
  }

  /**
   * run reads what to deliver of one conversation: the dead region's messages after this
   * region's takeover cursor, in seq order, stopping at the first one replication has not
   * brought (a hole: delivering past it would show the messages out of order on a device).
   * Messages older than the window are left out while nothing newer came before them: their
   * region delivered them while it was alive. The window's messages are found in the log, not
   * in the outbox: a message and its outbox entry replicate independently.
   */
  async #run(
    conversationId: string,
    origin: string,
    firstInWindow: bigint,
    since: number,
  ): Promise<Message[]> {
    const { seqs } = await this.#d.persistence.readTakeovers({
      conversationId,
      originRegion: origin,
    });
    const mine = seqs[this.#d.region] ?? 0n;
    const from = firstInWindow - 1n - mine > LOOK_BACK ? firstInWindow - 1n - LOOK_BACK : mine;
    const { messages } = await this.#d.persistence.readMessages({
      conversationId,
      originRegion: origin,
      afterSeq: from,
      limit: 1000,
    });
    const run: Message[] = [];
    let next = from + 1n;
    for (const m of messages) {
      if (m.seq !== next) break;
      next++;
      if (run.length === 0 && hlcMillis(m.hlc) < since) continue;
      run.push(m);
    }
    return run;
  }
}

/** LOOK_BACK bounds how many predecessors of a window are checked: older ones are long past. */
const LOOK_BACK = 1000n;
