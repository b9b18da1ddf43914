import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import test from "ava";
import { type ServerFrame, ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";
import { type LiveFrame, ReplayGate } from "../../services/gateway/replay-gate.ts";

const deliveries = (region: string, seqs: number[], replay = false): ServerFrame =>
  create(ServerFrameSchema, {
    kind: {
      case: "deliveries",
      value: { replay, entries: seqs.map((s) => ({ region, seq: BigInt(s) })) },
    },
  });
const syncState = (head: Record<string, bigint>): ServerFrame =>
  create(ServerFrameSchema, { kind: { case: "syncState", value: { inboxHead: { seqs: head } } } });
const typing = create(ServerFrameSchema, {
  kind: { case: "typing", value: { conversationId: "c", userId: "bob" } },
});
const live = (f: ServerFrame): LiveFrame => ({ bytes: toBinary(ServerFrameSchema, f) });

/** describe names what went out: "live[us:3,4]", "typing". */
function describe(f: LiveFrame): string {
  const frame = fromBinary(ServerFrameSchema, f.bytes);
  if (frame.kind.case !== "deliveries") return frame.kind.case ?? "?";
  return `live[${frame.kind.value.entries.map((e) => `${e.region}:${e.seq}`).join(",")}]`;
}

function gate(holdMs = 10_000) {
  const out: string[] = [];
  const timeouts: number[] = [];
  const g = new ReplayGate({
    write: (f) => out.push(describe(f)),
    onTimeout: (held) => timeouts.push(held),
    holdMs,
  });
  return { g, out, timeouts };
}

test("live frames wait for the replay's sync_state, then go out without what it covered", (t) => {
  const { g, out } = gate();
  g.begin();
  g.live(live(deliveries("us", [3])));
  g.live(live(typing));
  g.live(live(deliveries("us", [4, 5])));
  g.live(live(deliveries("eu", [1])));
  t.deepEqual(out, [], "nothing live during the replay");
  t.true(g.holding);
  g.replayed(syncState({ us: 4n }));
  t.false(g.holding);
  t.deepEqual(out, ["typing", "live[us:5]", "live[eu:1]"]);
  // Routing far behind: an entry the replay sent comes live later still.
  g.live(live(deliveries("us", [2, 6])));
  g.live(live(deliveries("us", [4])));
  t.deepEqual(out, ["typing", "live[us:5]", "live[eu:1]", "live[us:6]"]);
});

test("two replays in flight hold live frames until both ended", (t) => {
  const { g, out } = gate();
  g.begin();
  g.begin();
  g.live(live(deliveries("us", [7])));
  g.replayed(syncState({ us: 5n }));
  t.deepEqual(out, []);
  g.replayed(syncState({ us: 6n }));
  t.deepEqual(out, ["live[us:7]"]);
});

test("a replay that never ends releases what waited after holdMs", async (t) => {
  const { g, out, timeouts } = gate(50);
  g.begin();
  g.live(live(deliveries("us", [1])));
  await new Promise((r) => setTimeout(r, 120));
  t.deepEqual(out, ["live[us:1]"]);
  t.deepEqual(timeouts, [1]);
  t.false(g.holding);
  g.close();
});

test("without any replay, live frames pass as they are", (t) => {
  const { g, out } = gate();
  const f = live(deliveries("us", [1, 2]));
  g.live(f);
  t.deepEqual(out, ["live[us:1,us:2]"]);
});
