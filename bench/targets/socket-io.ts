// A benchmark baseline: the usual Node choice, a Socket.IO room server. Each socket joins a
// room per user; a conversation is a room; a send is acknowledged with the stored message and
// broadcast to the room. JSON payloads, WebSocket transport only, state in memory.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { runTarget } from "./harness.ts";

/** SocketIoMessage is the message the Socket.IO baseline broadcasts (the JSON of chat.v1.Message). */
export interface SocketIoMessage {
  conversationId: string;
  originRegion: string;
  seq: number;
  hlc: number;
  senderId: string;
  clientMsgId: string;
  text: string;
}

await runTarget(async () => {
  const http = createServer();
  const io = new Server(http, { transports: ["websocket"], serveClient: false });
  const rooms = new Map<string, { seq: number }>();
  let nextRoom = 1;

  io.on("connection", (socket) => {
    const user = String(socket.handshake.auth.user ?? "");
    if (user === "") {
      socket.disconnect(true);
      return;
    }
    socket.join(`u:${user}`);
    socket.on("create", (members: unknown, ack: unknown) => {
      if (!Array.isArray(members) || typeof ack !== "function") return;
      const id = `g${nextRoom++}`;
      rooms.set(id, { seq: 0 });
      io.in([user, ...members].map((m) => `u:${m}`)).socketsJoin(id);
      ack({ id });
    });
    socket.on("send", (draft: Partial<SocketIoMessage>, ack: unknown) => {
      if (typeof ack !== "function") return;
      const id = String(draft?.conversationId ?? "");
      const room = rooms.get(id);
      if (!room || !socket.rooms.has(id)) return ack({ error: "not a member" });
      const message: SocketIoMessage = {
        conversationId: id,
        originRegion: "socket.io",
        seq: ++room.seq,
        hlc: Date.now(),
        senderId: user,
        clientMsgId: String(draft.clientMsgId ?? ""),
        text: String(draft.text ?? ""),
      };
      io.to(id).emit("message", message);
      ack({ message });
    });
  });

  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    description: "Socket.IO room server (JSON events, WebSocket transport), rooms in memory",
    tokens: async (users) => users,
    async stop() {
      io.disconnectSockets(true);
      await io.close();
    },
  };
});
