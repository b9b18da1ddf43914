/**
 * Item keys of the chat data: one key scheme for the DynamoDB table (a Global Table in
 * production), for the change feed of the in-memory stores, and for the local table replicator.
 *
 * Keys are strings `pk` / `sk`; every id is [A-Za-z0-9_-] and every region [a-z0-9-], so `#`
 * separates key parts and `~` sorts after all of them. Numbers that can exceed 2^53 (seqs, hlcs)
 * are zero-padded to 20 digits, so string order is numeric order.
 *
 * The single-writer rule (DESIGN.md §3) is visible in the keys: every key names exactly one
 * region, the only region that ever writes the item. `writerRegionOf` reads it back, so that
 * replication can refuse an item two regions wrote.
 *
 * | pk                          | sk                                  | item                                   |
 * |-----------------------------|-------------------------------------|----------------------------------------|
 * | c#<conversation>            | meta#<region>                       | kind, title, createdBy                 |
 * | c#<conversation>            | mbr#<user>#<region>                 | member, hlc (merged on read)           |
 * | c#<conversation>            | head#<region>                       | seq, hlc: the region's log head        |
 * | c#<conversation>            | msg#<region>#<seq>                  | the Message; by-order GSI              |
 * | c#<conversation>            | send#<region>#<sender>#<client id>  | seq: dedup of sends (expires)          |
 * | c#<conversation>            | routed#<region>                     | seq: routing cursor                    |
 * | c#<conversation>            | tk#<region>#<origin>                | seq: origin's messages taken over      |
 * | c#<conversation>            | rcpt#<user>#<kind>#<region>         | up: map region → seq (merged on read)  |
 * | c#<conversation>            | psh#<user>#<origin>#<seq>#<region>  | a push sent for a message (expires)    |
 * | u#<user>                    | conv#<conversation>#<region>        | member, hlc, kind, title, createdBy    |
 * | u#<user>                    | push#<device>#<region>              | platform, token, at                    |
 * | i#<user>#<region>           | head                                | seq: the user's inbox head here        |
 * | i#<user>#<region>           | e#<seq>                             | the InboxEntry (expires)               |
 * | i#<user>#<region>           | x#<conversation>#<origin>#<seq>     | seq: inbox dedup per message (expires) |
 * | o#<region>#<bucket>#<shard> | <ms>#<conversation>#<seq>           | routing outbox (expires)               |
 * | k#<region>                  | <instance>                          | the delivery canary (expires)          |
 */

/** pad20 writes a non-negative integer as 20 digits, so string order is numeric order. */
export function pad20(n: bigint): string {
  return n.toString().padStart(20, "0");
}

/** keys builds every key of the chat data (see the layout above). */
export const keys = {
  conversation: (c: string) => `c#${c}`,
  meta: (region: string) => `meta#${region}`,
  member: (user: string, region: string) => `mbr#${user}#${region}`,
  head: (region: string) => `head#${region}`,
  message: (region: string, seq: bigint) => `msg#${region}#${pad20(seq)}`,
  send: (region: string, sender: string, clientMsgId: string) =>
    `send#${region}#${sender}#${clientMsgId}`,
  routed: (region: string) => `routed#${region}`,
  takeover: (region: string, origin: string) => `tk#${region}#${origin}`,
  receipt: (user: string, kind: string, region: string) => `rcpt#${user}#${kind}#${region}`,
  pushSent: (user: string, origin: string, seq: bigint, region: string) =>
    `psh#${user}#${origin}#${pad20(seq)}#${region}`,
  user: (u: string) => `u#${u}`,
  membership: (c: string, region: string) => `conv#${c}#${region}`,
  pushToken: (device: string, region: string) => `push#${device}#${region}`,
  inbox: (user: string, region: string) => `i#${user}#${region}`,
  inboxHead: () => "head",
  inboxEntry: (seq: bigint) => `e#${pad20(seq)}`,
  inboxDedup: (c: string, origin: string, seq: bigint) => `x#${c}#${origin}#${pad20(seq)}`,
  outbox: (region: string, bucket: number, shard: number) => `o#${region}#${bucket}#${shard}`,
  outboxEntry: (atMs: number, c: string, seq: bigint) =>
    `${String(atMs).padStart(15, "0")}#${c}#${pad20(seq)}`,
  canary: (region: string) => `k#${region}`,
  order: (hlc: bigint, region: string, seq: bigint) => `${pad20(hlc)}#${region}#${pad20(seq)}`,
};

/**
 * writerRegionOf returns the region that writes the item with this key: the only one allowed
 * to. It throws for a key outside the layout, so a new kind of item cannot be added without
 * deciding who writes it.
 */
export function writerRegionOf(pk: string, sk: string): string {
  const p = pk.split("#");
  const s = sk.split("#");
  const bad = () => new Error(`item key ${pk} / ${sk} is not in the chat data layout`);
  const nonEmpty = (r: string | undefined) => {
    if (!r) throw bad();
    return r;
  };
  switch (p[0]) {
    case "i":
      if (p.length !== 3) throw bad();
      return nonEmpty(p[2]);
    case "o":
    case "k":
      return nonEmpty(p[1]);
    case "c": {
      const at: Record<string, [number, number]> = {
        meta: [2, 1],
        mbr: [3, 2],
        head: [2, 1],
        msg: [3, 1],
        send: [4, 1],
        routed: [2, 1],
        tk: [3, 1],
        rcpt: [4, 3],
        psh: [5, 4],
      };
      const shape = at[s[0] ?? ""];
      if (!shape || s.length !== shape[0]) throw bad();
      return nonEmpty(s[shape[1]]);
    }
    case "u":
      if ((s[0] === "conv" || s[0] === "push") && s.length === 3) return nonEmpty(s[2]);
      throw bad();
    default:
      throw bad();
  }
}
