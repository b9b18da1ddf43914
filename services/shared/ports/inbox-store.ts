import type { InboxEntry, Message } from "../../../gen/chat/v1/types_pb.ts";
import type { Vector } from "../version-vector.ts";

/**
 * InboxStore is the offline store: per user, a log of the messages addressed to them, with a
 * dense seq per user per region. Routing in a message's origin region appends; replay on
 * connect and gap filling read. Entries expire after the retention the implementation is
 * configured with (DynamoDB TTL); a device further behind must reload history instead.
 *
 * Single writer: a store appends only to its own region's inbox of each user.
 *
 * Implementations: MemoryInboxStore (one process), DynamoInboxStore.
 */
export interface InboxStore {
  readonly region: string;

  /**
   * append adds each message to its user's inbox in this region, in the given order,
   * allocating the next dense seq. Idempotent per (user, message id): a message already in
   * the user's inbox returns its existing entry and allocates nothing. Entries come back in
   * request order.
   */
  append(items: Array<{ userId: string; message: Message }>): Promise<InboxEntry[]>;

  /**
   * read returns the user's entries after `after`, per region in seq order, at most `limit`
   * in all. `head` is, per region, the highest seq such that every entry up to it is visible
   * (replication can make later entries visible before earlier ones; read never returns an
   * entry past a gap). Entries past their retention are never returned; when some after
   * `after` expired, `expired` gives, per region, the last expired seq the read skipped.
   *
   * `head` never claims more than exists: where `after` is beyond everything this store knows
   * of a region's inbox (a client's mistake, or another region's entries not replicated here
   * yet), nothing of that region is returned and `head` gives the real end (less than `after`;
   * left out when the user has no entry there, as for a region that does not exist).
   */
  read(
    userId: string,
    after: Vector,
    limit: number,
  ): Promise<{ entries: InboxEntry[]; head: Vector; more: boolean; expired: Vector }>;
}
