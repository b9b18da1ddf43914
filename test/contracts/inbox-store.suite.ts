import { create } from "@bufbuild/protobuf";
import test from "ava";
import { type InboxEntry, InboxEntrySchema, MessageSchema } from "../../gen/chat/v1/types_pb.ts";
import type { InboxStore } from "../../services/shared/ports/inbox-store.ts";

/** InboxStoreFactory makes a fresh store of `region`. */
/**
 * InboxStoreFactory makes a store of `region` (reading the inboxes of `peers` too), and a way
 * to make another region's entry visible as Global Table replication would.
 */
export type InboxStoreFactory = (
  region: string,
  opts: { retentionSeconds?: number; peers?: string[] },
) => Promise<{
  store: InboxStore;
  replicate: (userId: string, entry: InboxEntry) => Promise<void>;
  dispose?: () => Promise<void>;
}>;

let counter = 0;
const uid = (p: string) => `${p}_${process.pid}_${++counter}`;

const message = (region: string, conversationId: string, seq: bigint) =>
  create(MessageSchema, {
    conversationId,
    originRegion: region,
    seq,
    hlc: seq,
    senderId: "s",
    clientMsgId: `m${seq}`,
    content: { case: "text", value: `t${seq}` },
  });

/** inboxStoreContract registers the InboxStore contract tests for one implementation. */
export function inboxStoreContract(name: string, factory: InboxStoreFactory): void {
  const withStore = async (
    t: { teardown: (f: () => Promise<void>) => void },
    opts: { retentionSeconds?: number; peers?: string[] } = {},
  ) => {
    const made = await factory("us-east-1", opts);
    if (made.dispose) t.teardown(made.dispose);
    return Object.assign(made.store, { replicate: made.replicate });
  };

  test(`${name}: appends get dense per-user seqs in request order, and are idempotent`, async (t) => {
    const store = await withStore(t);
    const [ann, ben, conv] = [uid("ann"), uid("ben"), uid("c")];
    const m1 = message(store.region, conv, 1n);
    const m2 = message(store.region, conv, 2n);
    const entries = await store.append([
      { userId: ann, message: m1 },
      { userId: ben, message: m1 },
      { userId: ann, message: m2 },
    ]);
    t.deepEqual(
      entries.map((e) => [e.region, e.seq, e.message?.seq]),
      [
        [store.region, 1n, 1n],
        [store.region, 1n, 1n],
        [store.region, 2n, 2n],
      ],
    );
    // Redelivery: the same messages again allocate nothing.
    const again = await store.append([
      { userId: ann, message: m2 },
      { userId: ann, message: m1 },
    ]);
    t.deepEqual(
      again.map((e) => e.seq),
      [2n, 1n],
    );
    const m3 = message(store.region, conv, 3n);
    t.deepEqual(
      (await store.append([{ userId: ann, message: m3 }])).map((e) => e.seq),
      [3n],
    );
  });

  test(`${name}: read returns entries after a vector, in order, with the head`, async (t) => {
    const store = await withStore(t);
    const [user, conv] = [uid("u"), uid("c")];
    for (let i = 1n; i <= 12n; i++)
      await store.append([{ userId: user, message: message(store.region, conv, i) }]);
    const all = await store.read(user, new Map(), 100);
    t.deepEqual(
      all.entries.map((e) => e.seq),
      Array.from({ length: 12 }, (_, i) => BigInt(i + 1)),
    );
    t.deepEqual(all.head, new Map([[store.region, 12n]]));
    t.false(all.more);
    const page = await store.read(user, new Map([[store.region, 4n]]), 5);
    t.deepEqual(
      page.entries.map((e) => e.seq),
      [5n, 6n, 7n, 8n, 9n],
    );
    t.true(page.more);
    t.is(page.head.get(store.region), 12n);
    const none = await store.read(user, new Map([[store.region, 12n]]), 5);
    t.deepEqual(none.entries, []);
    t.false(none.more);
    const stranger = await store.read(uid("nobody"), new Map(), 5);
    t.deepEqual([stranger.entries, stranger.head.size], [[], 0]);
  });

  test(`${name}: a position beyond the inbox reads nothing, and the head says where it ends`, async (t) => {
    const store = await withStore(t, { peers: ["eu-west-1"] });
    const [user, conv] = [uid("u"), uid("c")];
    for (let i = 1n; i <= 2n; i++)
      await store.append([{ userId: user, message: message(store.region, conv, i) }]);
    const beyond = await store.read(
      user,
      new Map([
        [store.region, 999n],
        ["mars", 5n],
      ]),
      100,
    );
    t.deepEqual(beyond.entries, []);
    t.deepEqual(beyond.head, new Map([[store.region, 2n]]), "no region that does not exist");
    t.false(beyond.more);
    const at = await store.read(user, new Map([[store.region, 2n]]), 100);
    t.deepEqual([at.entries, at.head], [[], new Map([[store.region, 2n]])]);
    const before = await store.read(user, new Map([[store.region, 1n]]), 100);
    t.deepEqual(
      before.entries.map((e) => e.seq),
      [2n],
    );

    // Another region's inbox, as far as replication has brought it (no head item yet).
    const remote = (seq: bigint) =>
      create(InboxEntrySchema, {
        region: "eu-west-1",
        seq,
        message: message("eu-west-1", conv, seq),
      });
    for (const seq of [1n, 2n, 4n]) await store.replicate(user, remote(seq));
    const mine = [store.region, 2n] as const;
    const ahead = await store.read(user, new Map([mine, ["eu-west-1", 7n]]), 100);
    t.deepEqual(ahead.entries, []);
    t.is(ahead.head.get("eu-west-1"), 4n, "the last entry known here");
    const inTheHole = await store.read(user, new Map([mine, ["eu-west-1", 3n]]), 100);
    t.deepEqual(
      inTheHole.entries.map((e) => `${e.region}:${e.seq}`),
      ["eu-west-1:4"],
      "entry 4 proves that 3 exists",
    );
  });

  test(`${name}: concurrent appends for one user keep the inbox dense`, async (t) => {
    const store = await withStore(t);
    const user = uid("u");
    const convs = Array.from({ length: 10 }, () => uid("c"));
    await Promise.all(
      convs.map((c) => store.append([{ userId: user, message: message(store.region, c, 1n) }])),
    );
    const all = await store.read(user, new Map(), 100);
    t.deepEqual(
      all.entries.map((e) => e.seq),
      Array.from({ length: 10 }, (_, i) => BigInt(i + 1)),
    );
    t.deepEqual(all.entries.map((e) => e.message?.conversationId).sort(), [...convs].sort());
  });

  test(`${name}: replicated entries are read only up to the first hole`, async (t) => {
    const store = await withStore(t, { peers: ["eu-west-1"] });
    const [user, conv] = [uid("u"), uid("c")];
    const remote = (seq: bigint) =>
      create(InboxEntrySchema, {
        region: "eu-west-1",
        seq,
        message: message("eu-west-1", conv, seq),
      });
    for (const seq of [1n, 2n, 4n]) await store.replicate(user, remote(seq));
    await store.append([{ userId: user, message: message(store.region, conv, 1n) }]);
    const first = await store.read(user, new Map(), 100);
    t.deepEqual(
      first.entries.map((e) => `${e.region}:${e.seq}`).sort(),
      ["eu-west-1:1", "eu-west-1:2", "us-east-1:1"],
      "entry 4 waits for 3",
    );
    t.is(first.head.get("eu-west-1"), 2n);
    await store.replicate(user, remote(3n));
    const next = await store.read(
      user,
      new Map([
        ["eu-west-1", 2n],
        ["us-east-1", 1n],
      ]),
      100,
    );
    t.deepEqual(
      next.entries.map((e) => `${e.region}:${e.seq}`),
      ["eu-west-1:3", "eu-west-1:4"],
    );
    t.is(next.head.get("eu-west-1"), 4n);
  });

  test(`${name}: entries past their retention are skipped, and the read says so`, async (t) => {
    const store = await withStore(t, { retentionSeconds: 4 });
    const [user, conv] = [uid("u"), uid("c")];
    for (let i = 1n; i <= 3n; i++)
      await store.append([{ userId: user, message: message(store.region, conv, i) }]);
    await new Promise((r) => setTimeout(r, 4_600));
    for (let i = 4n; i <= 5n; i++)
      await store.append([{ userId: user, message: message(store.region, conv, i) }]);
    const read = await store.read(user, new Map(), 100);
    t.deepEqual(
      read.entries.map((e) => e.seq),
      [4n, 5n],
    );
    t.deepEqual(read.expired, new Map([[store.region, 3n]]));
    const caughtUp = await store.read(user, new Map([[store.region, 3n]]), 100);
    t.deepEqual(
      caughtUp.entries.map((e) => e.seq),
      [4n, 5n],
    );
    t.is(caughtUp.expired.size, 0, "nothing after the position expired");
  });
}
