import { create } from "@bufbuild/protobuf";
import test from "ava";
import { InboxTracker } from "../../client/inbox.ts";
import { InboxEntrySchema } from "../../gen/chat/v1/types_pb.ts";

const entry = (region: string, seq: bigint, clientMsgId = `${region}-${seq}`, senderId = "s") =>
  create(InboxEntrySchema, {
    region,
    seq,
    message: {
      conversationId: "c",
      originRegion: region,
      seq,
      senderId,
      clientMsgId,
      content: { case: "text", value: clientMsgId },
    },
  });

test("entries are released in seq order per region; later ones wait for the gap", (t) => {
  const tracker = new InboxTracker();
  t.deepEqual(tracker.accept([entry("a", 2n), entry("a", 3n)]), []);
  t.true(tracker.hasGap());
  const released = tracker.accept([entry("a", 1n)]);
  t.deepEqual(
    released.map((m) => m.seq),
    [1n, 2n, 3n],
  );
  t.false(tracker.hasGap());
  t.deepEqual(tracker.vector(), new Map([["a", 3n]]));
});

test("duplicates (replay overlapping live delivery) are dropped", (t) => {
  const tracker = new InboxTracker(new Map([["a", 2n]]));
  t.deepEqual(tracker.accept([entry("a", 1n), entry("a", 2n)]), []);
  t.deepEqual(
    tracker.accept([entry("a", 3n), entry("a", 3n)]).map((m) => m.seq),
    [3n],
  );
  t.deepEqual(tracker.accept([entry("a", 3n)]), []);
});

test("regions are independent", (t) => {
  const tracker = new InboxTracker();
  t.deepEqual(
    tracker.accept([entry("b", 1n), entry("a", 2n)]).map((m) => m.originRegion),
    ["b"],
  );
  t.true(tracker.behind(new Map([["a", 2n]])));
  tracker.accept([entry("a", 1n)]);
  t.false(
    tracker.behind(
      new Map([
        ["a", 2n],
        ["b", 1n],
      ]),
    ),
  );
});

test("copies of one send made in two regions are shown once", (t) => {
  const tracker = new InboxTracker();
  const shown = tracker.accept([
    entry("a", 1n, "same"),
    entry("b", 1n, "same"),
    entry("b", 2n, "other"),
  ]);
  t.deepEqual(
    shown.map((m) => [m.originRegion, m.clientMsgId]),
    [
      ["a", "same"],
      ["b", "other"],
    ],
  );
  t.deepEqual(
    tracker.vector(),
    new Map([
      ["a", 1n],
      ["b", 2n],
    ]),
    "the copy still advances the position",
  );
});

test("a copy that arrives later is acknowledged, and reported as moved when it sorts earlier", (t) => {
  const tracker = new InboxTracker();
  const at = (region: string, seq: bigint, hlc: bigint) => {
    const e = entry(region, seq, "same");
    (e.message as { hlc: bigint }).hlc = hlc;
    return e;
  };
  t.is(tracker.accept([at("b", 1n, 50n)]).length, 1, "the first copy to arrive is shown");
  t.deepEqual(tracker.takeCopies(), []);
  t.deepEqual(tracker.accept([at("a", 1n, 40n)]), [], "a second copy is not shown");
  const [copy] = tracker.takeCopies();
  t.is(copy?.message.originRegion, "a");
  t.true(copy?.moved, "it sorts before the one shown: the app moves the message there");
  tracker.accept([at("c", 1n, 60n)]);
  t.deepEqual(
    tracker.takeCopies().map((c) => [c.message.originRegion, c.moved]),
    [["c", false]],
    "a later-sorting copy is acknowledged but moves nothing",
  );
});

test("skipping past expired entries releases what was held behind them", (t) => {
  const tracker = new InboxTracker(new Map([["a", 1n]]));
  t.deepEqual(tracker.accept([entry("a", 5n), entry("a", 6n)]), []);
  const released = tracker.skipTo(new Map([["a", 4n]]));
  t.deepEqual(
    released.map((m) => m.seq),
    [5n, 6n],
  );
  t.deepEqual(tracker.vector(), new Map([["a", 6n]]));
  t.false(tracker.hasGap());
  t.deepEqual(tracker.skipTo(new Map([["a", 2n]])), [], "never moves back");
});
