import { create, toBinary } from "@bufbuild/protobuf";
import test from "ava";
import { ClientFrameSchema, ErrorCode } from "../../gen/chat/v1/client_pb.ts";
import { ConversationKind } from "../../gen/chat/v1/types_pb.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { RawSocket } from "../support/raw-socket.ts";
import { connect, withRegion } from "../support/region.ts";

function errorOf(f: { kind: { case?: string; value?: unknown } }) {
  if (f.kind.case !== "error") throw new Error(`expected an error frame, got ${f.kind.case}`);
  return f.kind.value as { code: ErrorCode; message: string; field: string; retryable: boolean };
}

test("bad frames get precise error frames; the connection and everyone else carry on", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const bobSaw = new MessageRecorder(bob);
  const dm = await alice.createDirect("bob");

  const raw = await RawSocket.open(t, region);
  await raw.hello(region, "mallory");
  // Meanwhile, alice and bob keep chatting.
  const chatting = (async () => {
    for (let i = 0; i < 20; i++) await alice.send(dm.id, `m${i}`);
  })();

  const cases: Array<{
    name: string;
    send: () => void;
    expect: RegExp;
    field?: string;
    requestId?: number;
  }> = [
    {
      name: "garbage bytes",
      send: () => raw.sendRaw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f])),
      expect: /not a binary chat\.v1\.ClientFrame: illegal tag/,
    },
    {
      name: "a field with the wrong wire type",
      send: () => raw.sendRaw(new Uint8Array([0x20, 0x05])),
      expect: /not a binary chat\.v1\.ClientFrame/,
    },
    {
      name: "oversize frame",
      send: () => raw.sendRaw(new Uint8Array(70_000)),
      expect: /frame of 70000 bytes exceeds the 65536-byte limit/,
    },
    {
      name: "JSON on the binary subprotocol",
      send: () => raw.sendRaw(JSON.stringify({ requestId: 3, ping: {} })),
      expect: /text frame on the connectchat\.v1\.proto subprotocol/,
    },
    {
      name: "unknown enum value",
      send: () =>
        raw.sendRaw(
          toBinary(
            ClientFrameSchema,
            create(ClientFrameSchema, {
              requestId: 9,
              kind: {
                case: "createConversation",
                value: { kind: 99 as ConversationKind, memberIds: ["bob"], clientMsgId: "x" },
              },
            }),
          ),
        ),
      expect: /create_conversation\.kind: value must be one of the defined enum values/,
      field: "create_conversation.kind",
      requestId: 9,
    },
    {
      name: "a frame with no kind",
      send: () => raw.sendRaw(new Uint8Array([0x08, 0x05])),
      expect: /kind: exactly one field is required/,
      requestId: 5,
    },
    {
      name: "an invalid field",
      send: () =>
        raw.send(7, {
          case: "send",
          value: { conversationId: dm.id, clientMsgId: "ok-id", text: "" },
        }),
      expect: /send\.text: must be at least 1 characters/,
      field: "send.text",
      requestId: 7,
    },
    {
      name: "an id with forbidden characters",
      send: () =>
        raw.send(8, {
          case: "send",
          value: { conversationId: "../etc/passwd", clientMsgId: "a", text: "x" },
        }),
      expect: /send\.conversation_id: does not match regex pattern/,
      requestId: 8,
    },
  ];
  for (const c of cases) {
    c.send();
    const frame = await raw.next((f) => f.kind.case === "error");
    const err = errorOf(frame);
    t.is(frame.requestId, c.requestId ?? 0, `${c.name}: the error answers the frame's request id`);
    t.is(err.code, ErrorCode.INVALID_ARGUMENT, c.name);
    t.regex(err.message, c.expect, c.name);
    if (c.field) t.is(err.field, c.field, c.name);
    // The connection still answers.
    raw.send(100, { case: "ping", value: { nonce: 42n } });
    const pong = await raw.answer(100);
    t.is(pong.kind.case, "pong", `still alive after ${c.name}`);
  }
  t.is(raw.closed, undefined);

  // mallory is not a member: reading or writing alice and bob's conversation is refused.
  raw.send(11, {
    case: "send",
    value: { conversationId: dm.id, clientMsgId: "sneak", text: "hi" },
  });
  const denied = errorOf(await raw.answer(11));
  t.is(denied.code, ErrorCode.PERMISSION_DENIED);

  await chatting;
  await bobSaw.count(20, dm.id);
  t.deepEqual(
    bobSaw.texts(dm.id),
    Array.from({ length: 20 }, (_, i) => `m${i}`),
  );
});

test("the JSON subprotocol reports JSON problems by name and refuses binary frames", async (t) => {
  const region = await withRegion(t);
  const raw = await RawSocket.open(t, region, ["connectchat.v1.json"]);
  t.true(raw.json);
  await raw.hello(region, "jay");

  const cases: Array<{ send: string | Uint8Array; expect: RegExp }> = [
    { send: "{not json", expect: /frame is not JSON/ },
    {
      send: JSON.stringify({ requestId: "abc", ping: {} }),
      expect: /chat\.v1\.ClientFrame\.request_id/,
    },
    {
      send: JSON.stringify({
        requestId: 2,
        createConversation: {
          kind: "CONVERSATION_KIND_TRIANGLE",
          memberIds: ["a"],
          clientMsgId: "x",
        },
      }),
      expect: /CONVERSATION_KIND_TRIANGLE/,
    },
    { send: JSON.stringify({ requestId: 2, noSuchFrame: {} }), expect: /noSuchFrame/ },
    {
      send: new Uint8Array([0x08, 0x01]),
      expect: /binary frame on the connectchat\.v1\.json subprotocol/,
    },
  ];
  for (const c of cases) {
    raw.sendRaw(c.send);
    const err = errorOf(await raw.next((f) => f.kind.case === "error"));
    t.is(err.code, ErrorCode.INVALID_ARGUMENT);
    t.regex(err.message, c.expect);
  }
  raw.send(5, {
    case: "createConversation",
    value: { kind: ConversationKind.GROUP, memberIds: ["kay"], title: "t", clientMsgId: "c1" },
  });
  const made = await raw.answer(5);
  t.is(made.kind.case, "conversation", "well-formed JSON frames still work");
});

test("frames far beyond the limit close the connection with 1009; nothing else is affected", async (t) => {
  const region = await withRegion(t);
  const raw = await RawSocket.open(t, region);
  await raw.hello(region, "big");
  raw.sendRaw(new Uint8Array(65_536 * 4 + 1));
  await t.throwsAsync(
    raw.next(() => false, 3_000),
    { message: /socket closed \(1009/ },
  );
  const ok = await RawSocket.open(t, region);
  t.is((await ok.hello(region, "small")).kind.case, "welcome");
});

test("a connection must say hello first, and a bad token is refused with 4401", async (t) => {
  const region = await withRegion(t);
  const raw = await RawSocket.open(t, region);
  raw.send(1, { case: "listConversations", value: {} });
  const err = errorOf(await raw.answer(1));
  t.is(err.code, ErrorCode.UNAUTHENTICATED);
  t.regex(err.message, /send hello first/);

  raw.send(2, { case: "hello", value: { token: "not-a-jwt", deviceId: "d" } });
  const refused = errorOf(await raw.answer(2));
  t.is(refused.code, ErrorCode.UNAUTHENTICATED);
  await t.throwsAsync(
    raw.next(() => false, 3_000),
    { message: /socket closed \(4401/ },
  );
});

test("a hello without a token is closed with 4401 at once", async (t) => {
  const region = await withRegion(t);
  const raw = await RawSocket.open(t, region);
  raw.send(1, { case: "hello", value: { token: "", deviceId: "d" } });
  const refused = errorOf(await raw.answer(1));
  t.is(refused.code, ErrorCode.UNAUTHENTICATED);
  t.is(refused.field, "hello.token");
  // Well before the hello timeout (heartbeat interval, 5 s here).
  await t.throwsAsync(
    raw.next(() => false, 2_000),
    { message: /socket closed \(4401/ },
  );
});

test("an expired token gets no window: its hello is refused and what follows it never runs", async (t) => {
  const region = await withRegion(t);
  const raw = await RawSocket.open(t, region);
  // Expired 2 s ago: within the verifier's clock tolerance, yet the session would end at once.
  raw.send(1, {
    case: "hello",
    value: { token: await region.issuer.token("late", -2), deviceId: "d" },
  });
  raw.send(2, {
    case: "createConversation",
    value: {
      kind: ConversationKind.GROUP,
      memberIds: ["bob"],
      title: "smuggled",
      clientMsgId: "c",
    },
  });
  const refused = errorOf(await raw.answer(1));
  t.is(refused.code, ErrorCode.UNAUTHENTICATED);
  t.regex(refused.message, /token expired/);
  await t.throwsAsync(
    raw.next(() => false, 3_000),
    { message: /socket closed \(4401/ },
  );
  t.false(
    raw.frames.some((f) => f.requestId === 2 && f.kind.case === "conversation"),
    "the frame behind the hello did not run",
  );
  const late = await connect(t, region, "late");
  t.deepEqual(
    (await late.listConversations()).conversations.map((c) => c.title),
    [],
    "nothing was created",
  );
});

test("a frame that cannot be decoded is answered on its request id when the id is readable", async (t) => {
  const region = await withRegion(t);
  const json = await RawSocket.open(t, region, ["connectchat.v1.json"]);
  await json.hello(region, "newer");
  const cases: Array<{ id: number; send: string; expect: RegExp }> = [
    {
      // An enum value from a newer contract.
      id: 21,
      send: JSON.stringify({
        requestId: 21,
        createConversation: {
          kind: "CONVERSATION_KIND_CHANNEL",
          memberIds: ["a"],
          clientMsgId: "x",
        },
      }),
      expect: /CONVERSATION_KIND_CHANNEL/,
    },
    // A frame kind this server does not know, and two kinds at once.
    { id: 22, send: JSON.stringify({ requestId: 22, reactions: {} }), expect: /reactions/ },
    {
      id: 23,
      send: JSON.stringify({ requestId: 23, ping: {}, sync: {} }),
      expect: /oneof|ping|sync/,
    },
    // A wrong type for a field.
    { id: 24, send: JSON.stringify({ requestId: 24, send: { text: 5 } }), expect: /text/ },
    // Over the frame limit (64 KiB here).
    {
      id: 25,
      send: JSON.stringify({ requestId: 25, ping: {}, pad: "x".repeat(70 * 1024) }),
      expect: /exceeds/,
    },
  ];
  for (const c of cases) {
    json.sendRaw(c.send);
    const answer = await json.answer(c.id);
    const err = errorOf(answer);
    t.is(err.code, ErrorCode.INVALID_ARGUMENT, c.send.slice(0, 60));
    t.regex(err.message, c.expect);
  }

  const binary = await RawSocket.open(t, region);
  await binary.hello(region, "newer");
  // request_id 31, then a field whose length runs past the end of the frame.
  binary.sendRaw(new Uint8Array([0x08, 31, 0x12, 0x7f, 0x01]));
  t.is(errorOf(await binary.answer(31)).code, ErrorCode.INVALID_ARGUMENT);
});
