import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import test from "ava";
import {
  type Entry,
  encodeAck,
  encodePing,
  encodeSync,
  type FrameHead,
  KIND_DELIVERIES,
  KIND_SEND_RESULT,
  Reader,
  readEntries,
  readHead,
  readHlc,
  SendEncoder,
  StringCache,
} from "../../bench/load/wire.ts";
import { ClientFrameSchema, ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";
import { MessageSchema } from "../../gen/chat/v1/types_pb.ts";

// The light generator's wire-level reading and writing of chat.v1 frames, checked against
// @bufbuild/protobuf's own encoding and decoding.

const HLC = (BigInt(Date.UTC(2026, 10, 24)) << 16n) | 5n;

function message(i: number) {
  return create(MessageSchema, {
    conversationId: `c${i % 2}`,
    originRegion: "bench",
    seq: BigInt(100 + i),
    hlc: HLC + BigInt(i),
    senderId: "u1",
    senderDeviceId: "phone",
    clientMsgId: `id-${i}`,
    content:
      i === 2
        ? { case: "membership", value: { userIds: ["u1"], title: "t" } }
        : { case: "text", value: "héllo ✓".repeat(i + 1) },
  });
}

function hlcOf(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo);
}

test("readHead and readEntries find every delivery's position, ids, seq and hlc", (t) => {
  const frame = toBinary(
    ServerFrameSchema,
    create(ServerFrameSchema, {
      kind: {
        case: "deliveries",
        value: {
          entries: [0, 1, 2].map((i) => ({
            region: "bench",
            seq: BigInt(7 + i),
            message: message(i),
          })),
          replay: true,
        },
      },
    }),
  );
  const r = new Reader();
  const head: FrameHead = { requestId: 0, kind: 0, start: 0, end: 0 };
  readHead(r, Buffer.from(frame), head);
  t.is(head.kind, KIND_DELIVERIES);
  t.is(head.requestId, 0);
  const seen: Array<Omit<Entry, "hlcLo" | "hlcHi"> & { hlc: bigint }> = [];
  const e = {} as Entry;
  readEntries(r, Buffer.from(frame), head.start, head.end, new StringCache(), e, (x) => {
    const { hlcLo, hlcHi, ...rest } = x;
    seen.push({ ...rest, hlc: hlcOf(hlcLo, hlcHi) });
  });
  t.deepEqual(
    seen,
    [0, 1, 2].map((i) => ({
      region: "bench",
      inboxSeq: 7 + i,
      conversationId: `c${i % 2}`,
      originRegion: "bench",
      seq: 100 + i,
      hlc: HLC + BigInt(i),
      clientMsgId: `id-${i}`,
      text: i !== 2,
    })),
  );
});

test("readHead finds a send_result's request id and readHlc its hlc", (t) => {
  const frame = Buffer.from(
    toBinary(
      ServerFrameSchema,
      create(ServerFrameSchema, {
        requestId: 300_001,
        kind: { case: "sendResult", value: message(1) },
      }),
    ),
  );
  const r = new Reader();
  const head: FrameHead = { requestId: 0, kind: 0, start: 0, end: 0 };
  readHead(r, frame, head);
  t.is(head.kind, KIND_SEND_RESULT);
  t.is(head.requestId, 300_001);
  t.true(readHlc(r, frame, head.start, head.end));
  t.is(hlcOf(r.lo, r.hi), HLC + 1n);
});

test("SendEncoder writes the ClientFrame the SDK would, seen_hlc included", (t) => {
  const enc = new SendEncoder();
  for (const [requestId, hlc] of [
    [1, 0n],
    [200, 127n],
    [70_000, HLC],
    [2 ** 31, (1n << 63n) + 12345n],
  ] as const) {
    const lo = Number(hlc & 0xffffffffn);
    const hi = Number(hlc >> 32n);
    const bytes = enc.encode(requestId, "g_12", "AbC-_9", "x".repeat(130), lo, hi);
    const frame = fromBinary(ClientFrameSchema, bytes);
    t.is(frame.requestId, requestId);
    t.is(frame.kind.case, "send");
    if (frame.kind.case !== "send") continue;
    t.is(frame.kind.value.conversationId, "g_12");
    t.is(frame.kind.value.clientMsgId, "AbC-_9");
    t.is(frame.kind.value.text, "x".repeat(130));
    t.is(frame.kind.value.seenHlc, hlc);
  }
});

test("encodeAck, encodeSync and encodePing write the frames the SDK sends", (t) => {
  const inbox = new Map([["bench", 42]]);
  const ack = fromBinary(
    ClientFrameSchema,
    encodeAck(
      inbox,
      new Map([
        ["c1", new Map([["bench", 9]])],
        ["c2", new Map([["bench", 3]])],
      ]),
    ),
  );
  t.is(ack.kind.case, "ack");
  if (ack.kind.case === "ack") {
    t.deepEqual(ack.kind.value.inbox?.seqs, { bench: 42n });
    t.deepEqual(
      ack.kind.value.conversations.map((c) => [c.conversationId, c.upTo?.seqs]),
      [
        ["c1", { bench: 9n }],
        ["c2", { bench: 3n }],
      ],
    );
  }
  const sync = fromBinary(ClientFrameSchema, encodeSync(inbox));
  t.is(sync.kind.case, "sync");
  if (sync.kind.case === "sync") t.deepEqual(sync.kind.value.inbox?.seqs, { bench: 42n });
  const ping = fromBinary(ClientFrameSchema, encodePing(7));
  t.is(ping.kind.case, "ping");
  if (ping.kind.case === "ping") t.is(ping.kind.value.nonce, 7n);
});
