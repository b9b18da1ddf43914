import { io, type Socket } from "socket.io-client";
import { WebSocket } from "ws";
import { ChatClient } from "../../client/index.ts";
import type { Target } from "../targets/launch.ts";
import type { SocketIoMessage } from "../targets/socket-io.ts";
import { lightChatClient } from "./light-chat.ts";
import { lightSocketIoClient } from "./light-socketio.ts";
import { type FrameHead, Reader, readHead, SERVER_KINDS } from "./wire.ts";
import { WireStats } from "./wire-stats.ts";

/**
 * Generator picks the clients: "light" (the default) writes pre-encoded frames and reads only
 * what the load needs (light-chat.ts, light-socketio.ts), so that a fast target is measured at
 * its own limit rather than the generator's; "sdk" runs the real client libraries (the
 * Connect Chat SDK, socket.io-client), what an app costs per connection.
 */
export type Generator = "light" | "sdk";

/** BenchClient is one connected device of the load, whatever the server speaks. */
export interface BenchClient {
  readonly userId: string;
  /** onMessage is called with the client_msg_id of every text message delivered here. */
  onMessage: (clientMsgId: string) => void;
  /** disconnects counts connections lost after the first one was established. */
  readonly disconnects: number;
  /** createGroup creates a conversation of this user and `others`; returns its id. */
  createGroup(others: string[]): Promise<string>;
  /** send resolves when the server acknowledges the message. */
  send(conversationId: string, clientMsgId: string, text: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * connectClients connects one client per user to a target, `concurrency` connection attempts
 * at a time, calling `progress` as they complete.
 */
export async function connectClients(
  target: Target,
  users: string[],
  opts: {
    generator?: Generator;
    /** wire, when given, counts every client's frames and bytes (see WireStats). */
    wire?: WireStats;
    concurrency?: number;
    progress?: (connected: number) => void;
  } = {},
): Promise<BenchClient[]> {
  const generator = opts.generator ?? "light";
  const wire = opts.wire ?? new WireStats();
  const tokens = await target.tokens(users);
  const clients: BenchClient[] = new Array(users.length);
  let next = 0;
  let connected = 0;
  const worker = async () => {
    while (next < users.length) {
      const i = next++;
      const user = users[i] as string;
      const token = tokens[i] as string;
      clients[i] =
        target.protocol === "socket.io"
          ? generator === "light"
            ? await lightSocketIoClient(target.url, user, wire)
            : await socketIoClient(target.url, user, wire)
          : generator === "light"
            ? await lightChatClient(target.url, user, token, wire)
            : await chatClient(target.url, user, token, wire);
      connected++;
      opts.progress?.(connected);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 200 }, worker));
  return clients;
}

/** closeClients closes clients, many at a time. */
export async function closeClients(clients: BenchClient[]): Promise<void> {
  for (let i = 0; i < clients.length; i += 1000) {
    await Promise.all(clients.slice(i, i + 1000).map((c) => c.close()));
  }
}

/** chatClient is the Connect Chat SDK: the same client an app embeds. */
async function chatClient(
  url: string,
  userId: string,
  token: string,
  wire: WireStats,
): Promise<BenchClient> {
  const client = new ChatClient({
    url,
    token: () => token,
    deviceId: "bench",
    client: "bench",
    WebSocket: countingWebSocket(wire) as typeof globalThis.WebSocket,
    requestTimeoutMs: 60_000,
  });
  let disconnects = 0;
  const bench: BenchClient = {
    userId,
    onMessage: () => {},
    get disconnects() {
      return disconnects;
    },
    async createGroup(others) {
      const c = await client.createGroup("bench", others);
      return c.id;
    },
    async send(conversationId, clientMsgId, text) {
      await client.send(conversationId, text, { clientMsgId });
    },
    close: () => client.close(),
  };
  client.on("message", (m) => {
    if (m.content.case === "text") bench.onMessage(m.clientMsgId);
  });
  client.on("disconnected", () => {
    disconnects++;
  });
  await client.connect();
  return bench;
}

const countReader = new Reader();
const countHead: FrameHead = { requestId: 0, kind: 0, start: 0, end: 0 };

/**
 * countingWebSocket is `ws` as the SDK gets it, counting each message both ways: a constructor
 * that returns a real socket with a listener added and `send` wrapped.
 */
function countingWebSocket(wire: WireStats): unknown {
  return function CountingWebSocket(address: string, protocols?: string | string[]) {
    const ws = new WebSocket(address, protocols);
    ws.on("message", (data: ArrayBuffer | Buffer) => {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
      readHead(countReader, bytes, countHead);
      wire.received(bytes.length, SERVER_KINDS[countHead.kind] ?? "other");
    });
    const send = ws.send.bind(ws) as (data: Uint8Array | string) => void;
    (ws as { send: (data: Uint8Array | string) => void }).send = (data) => {
      wire.sent(typeof data === "string" ? Buffer.byteLength(data) : data.byteLength);
      send(data);
    };
    return ws;
  };
}

/** socketIoClient is socket.io-client over its WebSocket transport. */
async function socketIoClient(url: string, userId: string, wire: WireStats): Promise<BenchClient> {
  const socket: Socket = io(url, {
    transports: ["websocket"],
    auth: { user: userId },
    forceNew: true,
    reconnection: true,
  });
  countEngine(socket, wire);
  let disconnects = 0;
  const bench: BenchClient = {
    userId,
    onMessage: () => {},
    get disconnects() {
      return disconnects;
    },
    async createGroup(others) {
      const res = (await socket.timeout(60_000).emitWithAck("create", others)) as { id: string };
      return res.id;
    },
    async send(conversationId, clientMsgId, text) {
      const res = (await socket
        .timeout(60_000)
        .emitWithAck("send", { conversationId, clientMsgId, text })) as { error?: string };
      if (res.error) throw new Error(res.error);
    },
    async close() {
      socket.disconnect();
    },
  };
  socket.on("message", (m: SocketIoMessage) => bench.onMessage(m.clientMsgId));
  socket.on("disconnect", () => {
    disconnects++;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", (err) => reject(err));
  });
  return bench;
}

/**
 * countEngine counts the Engine.IO packets of a socket.io-client socket, both ways, on every
 * engine its manager opens. Sizes are those of the packets' text (their wire form).
 */
function countEngine(socket: Socket, wire: WireStats): void {
  type Packet = { type: string; data?: unknown };
  const size = (p: Packet) => 1 + (typeof p.data === "string" ? Buffer.byteLength(p.data) : 0);
  const attach = () => {
    const engine = socket.io.engine as unknown as {
      on(event: "packet" | "packetCreate", f: (p: Packet) => void): void;
    };
    engine.on("packet", (p) => {
      const data = typeof p.data === "string" ? p.data : "";
      const kind =
        p.type !== "message"
          ? p.type
          : data.startsWith('2["message"')
            ? "message"
            : data.startsWith("3")
              ? "ack"
              : "other";
      wire.received(size(p), kind);
    });
    engine.on("packetCreate", (p) => wire.sent(size(p)));
  };
  socket.io.on("open", attach);
}
