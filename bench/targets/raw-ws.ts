// A benchmark baseline: the least a Node server can do to run the same chat over the same
// frames. It speaks chat.v1 (binary protobuf subprotocol) with `ws`, keeps rooms and counters in
// memory, and fans each message out to every member's sockets. No authentication, persistence,
// idempotency, receipts or service hops: the ceiling for Node on this machine.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { type WebSocket, WebSocketServer } from "ws";
import {
  ClientFrameSchema,
  ErrorCode,
  type ServerFrame,
  ServerFrameSchema,
} from "../../gen/chat/v1/client_pb.ts";
import { ConversationKind, ConversationSchema, MessageSchema } from "../../gen/chat/v1/types_pb.ts";
import { runTarget } from "./harness.ts";

const REGION = "raw";

interface Room {
  members: string[];
  seq: bigint;
}

await runTarget(async () => {
  const sockets = new Map<string, Set<WebSocket>>();
  const inboxSeq = new Map<string, bigint>();
  const rooms = new Map<string, Room>();
  let nextRoom = 1;

  const http = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({
    server: http,
    path: "/ws",
    perMessageDeflate: false,
    handleProtocols: (p) => (p.has("connectchat.v1.proto") ? "connectchat.v1.proto" : false),
  });

  wss.on("connection", (ws) => {
    let user = "";
    const reply = (frame: ServerFrame) => ws.send(toBinary(ServerFrameSchema, frame));
    ws.on("message", (data: Buffer) => {
      let frame: ReturnType<typeof fromBinary<typeof ClientFrameSchema>>;
      try {
        frame = fromBinary(ClientFrameSchema, data);
      } catch {
        ws.close(1003, "not a chat.v1.ClientFrame");
        return;
      }
      const requestId = frame.requestId;
      const k = frame.kind;
      switch (k.case) {
        case "hello": {
          user = k.value.token;
          const set = sockets.get(user) ?? new Set<WebSocket>();
          sockets.set(user, set);
          set.add(ws);
          reply(
            create(ServerFrameSchema, {
              requestId,
              kind: {
                case: "welcome",
                value: {
                  userId: user,
                  deviceId: k.value.deviceId,
                  region: REGION,
                  sessionId: `s${user}`,
                  heartbeatIntervalMs: 15_000,
                },
              },
            }),
          );
          return;
        }
        case "ping":
          reply(
            create(ServerFrameSchema, {
              requestId,
              kind: { case: "pong", value: { nonce: k.value.nonce } },
            }),
          );
          return;
        case "ack":
          return;
        case "createConversation": {
          const id = `g${nextRoom++}`;
          const members = [user, ...k.value.memberIds];
          rooms.set(id, { members, seq: 0n });
          reply(
            create(ServerFrameSchema, {
              requestId,
              kind: {
                case: "conversation",
                value: create(ConversationSchema, {
                  id,
                  kind: ConversationKind.GROUP,
                  title: k.value.title,
                  createdBy: user,
                  memberIds: members,
                }),
              },
            }),
          );
          return;
        }
        case "send": {
          const room = rooms.get(k.value.conversationId);
          if (!room?.members.includes(user)) {
            reply(
              create(ServerFrameSchema, {
                requestId,
                kind: {
                  case: "error",
                  value: { code: ErrorCode.PERMISSION_DENIED, message: "not a member" },
                },
              }),
            );
            return;
          }
          room.seq++;
          const message = toBinary(
            MessageSchema,
            create(MessageSchema, {
              conversationId: k.value.conversationId,
              originRegion: REGION,
              seq: room.seq,
              hlc: BigInt(Date.now()) << 16n,
              senderId: user,
              senderDeviceId: "",
              clientMsgId: k.value.clientMsgId,
              content: { case: "text", value: k.value.text },
            }),
          );
          ws.send(envelope(requestId, 5, message));
          for (const member of room.members) {
            const seq = (inboxSeq.get(member) ?? 0n) + 1n;
            inboxSeq.set(member, seq);
            const targets = sockets.get(member);
            if (!targets) continue;
            const bytes = delivery(seq, message);
            for (const t of targets) t.send(bytes);
          }
          return;
        }
        case "sync":
          reply(create(ServerFrameSchema, { requestId, kind: { case: "syncState", value: {} } }));
          return;
        default:
          reply(
            create(ServerFrameSchema, {
              requestId,
              kind: {
                case: "error",
                value: { code: ErrorCode.UNIMPLEMENTED, message: `${k.case} is not supported` },
              },
            }),
          );
      }
    });
    ws.on("close", () => {
      const set = sockets.get(user);
      set?.delete(ws);
      if (set?.size === 0) sockets.delete(user);
    });
  });

  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    description:
      "raw `ws` server speaking the same chat.v1 frames, rooms in memory, no persistence",
    tokens: async (users) => users,
    async stop() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      http.close();
    },
  };
});

/** envelope writes a ServerFrame whose oneof field `field` holds already-encoded bytes. */
function envelope(requestId: number, field: number, bytes: Uint8Array): Uint8Array {
  const w = new BinaryWriter();
  if (requestId !== 0) w.tag(1, WireType.Varint).uint32(requestId);
  return w.tag(field, WireType.LengthDelimited).bytes(bytes).finish();
}

/** delivery writes ServerFrame{deliveries{entries[{region, seq, message}]}} around an encoded message. */
function delivery(seq: bigint, message: Uint8Array): Uint8Array {
  const entry = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string(REGION)
    .tag(2, WireType.Varint)
    .uint64(seq)
    .tag(3, WireType.LengthDelimited)
    .bytes(message)
    .finish();
  const deliveries = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(entry).finish();
  return envelope(0, 9, deliveries);
}
