import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import test from "ava";
import { ClientFrameSchema, ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";
import {
  decodeClientFrame,
  encodeServerFrame,
  reencodeServerFrame,
} from "../../services/gateway/codec.ts";

const ping = create(ClientFrameSchema, {
  requestId: 4,
  kind: { case: "ping", value: { nonce: 9n } },
});

test("frames decode from both encodings", (t) => {
  const bin = decodeClientFrame(Buffer.from(toBinary(ClientFrameSchema, ping)), true, "proto");
  const json = decodeClientFrame(Buffer.from(toJsonString(ClientFrameSchema, ping)), false, "json");
  for (const d of [bin, json]) {
    if ("error" in d) return t.fail(d.error.message);
    t.is(d.frame.requestId, 4);
    t.is(d.frame.kind.case, "ping");
  }
});

test("validation errors carry the request id and the field path", (t) => {
  const frame = create(ClientFrameSchema, {
    requestId: 12,
    kind: {
      case: "addMembers",
      value: { conversationId: "c", userIds: ["ok", "not ok"], clientMsgId: "x" },
    },
  });
  const d = decodeClientFrame(Buffer.from(toBinary(ClientFrameSchema, frame)), true, "proto");
  if (!("error" in d)) return t.fail("expected an error");
  t.is(d.error.requestId, 12);
  t.is(d.error.field, "add_members.user_ids[1]");
  t.regex(d.error.message, /add_members\.user_ids\[1\]: does not match regex pattern/);
});

test("server frames are written in the connection's encoding, once", (t) => {
  const frame = create(ServerFrameSchema, {
    requestId: 1,
    kind: { case: "pong", value: { nonce: 2n } },
  });
  const bytes = encodeServerFrame(frame, "proto") as Uint8Array;
  t.deepEqual(
    reencodeServerFrame(bytes, "proto"),
    bytes,
    "binary frames are forwarded as they are",
  );
  t.deepEqual(JSON.parse(reencodeServerFrame(bytes, "json") as string), {
    requestId: 1,
    pong: { nonce: "2" },
  });
});
