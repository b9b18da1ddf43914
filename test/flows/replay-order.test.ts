import test from "ava";
import { type LocalBackends, startLocalBackends } from "../../dev/backends/local.ts";
import type { ServerFrame } from "../../gen/chat/v1/client_pb.ts";
import { ConversationKind } from "../../gen/chat/v1/types_pb.ts";
import { RawSocket } from "../support/raw-socket.ts";
import { missingRealBackend } from "../support/real-backends.ts";
import { within, withRegion } from "../support/region.ts";

// A device connecting while routing lags: what it gets must be exactly what the protocol
// promises (README): the replay after its vector, ending with sync_state, then live delivery,
// with no gap and nothing twice. The client here speaks the protocol by hand, as an app written
// from the README would; it does not reorder or deduplicate anything.

const missing = missingRealBackend();
if (missing) {
  test.skip(`replay and live delivery on the real backends: ${missing}`, () => {});
} else {
  let backends: LocalBackends | undefined;
  test.before(async () => {
    backends = await startLocalBackends();
  });
  test.after.always(async () => {
    await backends?.stop();
  });

  test("a device connecting while routing lags gets its replay, then sync_state, then live, each entry once", async (t) => {
    // Routing is held after it appended a message to the inboxes and before it hands it to
    // connected devices, until the test lets it go.
    let release: (() => void) | undefined;
    let held: Promise<void> | undefined;
    const region = await withRegion(t, {
      env: backends?.env,
      hooks: {
        afterInboxAppend: async () => {
          if (held) await held;
        },
      },
    });
    const alice = await RawSocket.open(t, region);
    await alice.hello(region, "alice", "phone");
    alice.keepAlive(1_000);
    alice.send(2, {
      case: "createConversation",
      value: { kind: ConversationKind.GROUP, memberIds: ["dave"], title: "lag", clientMsgId: "g" },
    });
    const created = await alice.answer(2, 15_000);
    const conversationId =
      created.kind.case === "conversation" ? created.kind.value.id : t.fail("no conversation");

    held = new Promise<void>((resolve) => {
      release = resolve;
    });
    // dave is offline; the first message reaches his inbox, then routing stalls on it (the
    // next ones wait behind it in their partition).
    for (let i = 1; i <= 5; i++) {
      alice.send(10 + i, {
        case: "send",
        value: { conversationId, clientMsgId: `m${i}`, text: `message ${i}` },
      });
      await alice.answer(10 + i, 15_000);
    }

    // dave connects with an empty vector; the moment he is registered, routing goes on and
    // hands its backlog to his socket while his replay is on its way.
    const dave = await RawSocket.open(t, region);
    await dave.hello(region, "dave", "tablet");
    dave.keepAlive(1_000);
    held = undefined;
    release?.();

    // His inbox holds the group's creation and the five messages: wait for the six entries,
    // and a little more for anything sent twice.
    const seen = () =>
      dave.frames.flatMap((f) =>
        f.kind.case === "deliveries"
          ? f.kind.value.entries
              .filter((e) => e.message?.conversationId === conversationId)
              .map((e) => e.seq)
          : [],
      );
    await within(
      (async () => {
        while (new Set(seen()).size < 6) await new Promise((r) => setTimeout(r, 50));
      })(),
      20_000,
      "dave's six inbox entries",
    );
    await new Promise((r) => setTimeout(r, 1_500));

    const kinds = dave.frames
      .filter((f) => f.kind.case === "deliveries" || f.kind.case === "syncState")
      .map(describe);
    const firstSync = kinds.indexOf("sync_state");
    t.true(firstSync >= 0, `a sync_state came: ${kinds.join(" ")}`);
    t.deepEqual(
      kinds.slice(0, firstSync).filter((k) => !k.startsWith("replay")),
      [],
      `before sync_state only the replay: ${kinds.join(" ")}`,
    );
    t.deepEqual(
      kinds.slice(firstSync + 1).filter((k) => k.startsWith("replay")),
      [],
      `after sync_state only live frames: ${kinds.join(" ")}`,
    );
    const seqs = seen();
    t.deepEqual(
      seqs,
      [...seqs].sort((a, b) => Number(a - b)),
      `in order: ${seqs.join(",")}`,
    );
    t.is(new Set(seqs).size, seqs.length, `nothing twice: ${seqs.join(",")}`);
    t.deepEqual(seqs, [1n, 2n, 3n, 4n, 5n, 6n], "every entry, once, in order");
  });
}

/** describe names a frame: "replay[1,2]", "live[3]" or "sync_state". */
function describe(f: ServerFrame): string {
  if (f.kind.case === "syncState") return "sync_state";
  if (f.kind.case !== "deliveries") return f.kind.case ?? "?";
  const seqs = f.kind.value.entries.map((e) => e.seq).join(",");
  return `${f.kind.value.replay ? "replay" : "live"}[${seqs}]`;
}
