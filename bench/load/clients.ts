import { io, type Socket } from "socket.io-client";
import { WebSocket } from "ws";
import { ChatClient } from "../../client/index.ts";
import type { Target } from "../targets/launch.ts";
import type { SocketIoMessage } from "../targets/socket-io.ts";

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
  opts: { concurrency?: number; progress?: (connected: number) => void } = {},
): Promise<BenchClient[]> {
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
          ? await socketIoClient(target.url, user)
          : await chatClient(target.url, user, token);
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
async function chatClient(url: string, userId: string, token: string): Promise<BenchClient> {
  const client = new ChatClient({
    url,
    token: () => token,
    deviceId: "bench",
    client: "bench",
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
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

/** socketIoClient is socket.io-client over its WebSocket transport. */
async function socketIoClient(url: string, userId: string): Promise<BenchClient> {
  const socket: Socket = io(url, {
    transports: ["websocket"],
    auth: { user: userId },
    forceNew: true,
    reconnection: true,
  });
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
