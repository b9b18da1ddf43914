import type { BenchClient } from "./clients.ts";
import { LightSocket } from "./light-socket.ts";
import type { WireStats } from "./wire-stats.ts";

/**
 * The light Socket.IO client: the packets socket.io-client exchanges with the Socket.IO
 * baseline, written as text over a LightSocket (light-socket.ts). Engine.IO v4 over its WebSocket
 * transport: the server opens with `0{...}`, pings with `2` (answered `3`); Socket.IO packets
 * ride in Engine.IO messages (`4`): `40{auth}` connects the default namespace, `42<id>[event,
 * data]` emits an event that wants an acknowledgement, `43<id>[...]` acknowledges, `42[event,
 * data]` is a broadcast. A send is one pre-built string; a delivery is read only as far as its
 * clientMsgId, without JSON.parse. Like socket.io-client with the baseline, it acknowledges
 * nothing it receives (the baseline has no delivery acks) and, as the rooms of a socket do not
 * survive it, does not reconnect.
 */

const OPEN = 0x30; // "0"
const PING = 0x32; // "2"
const MESSAGE = 0x34; // "4"
const EVENT = 0x32; // "2" (in a message)
const ACK = 0x33; // "3"
const CONNECT = 0x30; // "0" (in a message)
const MESSAGE_EVENT = Buffer.from('42["message",');
const CLIENT_MSG_ID = Buffer.from('"clientMsgId":"');
const ERROR_ACK = Buffer.from('[{"error"');

interface Waiting {
  resolve: (payload: Buffer, start: number) => void;
  reject: (err: Error) => void;
}

/** lightSocketIoClient connects one client to the Socket.IO baseline at `url` (http://host:port). */
export async function lightSocketIoClient(
  url: string,
  userId: string,
  wire: WireStats,
): Promise<BenchClient> {
  const c = new LightSocketIoClient(userId, wire);
  await c.connect(url);
  return c;
}

class LightSocketIoClient implements BenchClient {
  readonly userId: string;
  onMessage: (clientMsgId: string) => void = () => {};
  readonly #wire: WireStats;
  #ws: LightSocket | undefined;
  #disconnects = 0;
  #closed = false;
  #nextAck = 1;
  readonly #waiting = new Map<number, Waiting>();
  /** The send packet around its variable parts, per conversation and text. */
  readonly #templates = new Map<string, { head: string; tail: string }>();

  constructor(userId: string, wire: WireStats) {
    this.userId = userId;
    this.#wire = wire;
  }

  get disconnects(): number {
    return this.#disconnects;
  }

  async connect(url: string): Promise<void> {
    const ws = new LightSocket(
      `${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`,
    );
    this.#ws = ws;
    const joined = new Promise<void>((resolve, reject) => {
      let connected = false;
      ws.onMessage = (data) => {
        if (!connected && data[0] === OPEN) {
          // The Engine.IO handshake: now connect the default namespace, with the user as auth.
          this.#wire.received(data.length, "open");
          this.#write(`40${JSON.stringify({ user: this.userId })}`);
          return;
        }
        if (!connected && data[0] === MESSAGE && data[1] === CONNECT) {
          connected = true;
          this.#wire.received(data.length, "connect");
          resolve();
          return;
        }
        this.#onPacket(data);
      };
      ws.onClose = () => {
        if (!connected) reject(new Error(`${this.userId}: connection refused or closed`));
        else if (!this.#closed) this.#disconnects++;
        for (const w of this.#waiting.values()) w.reject(new Error("connection lost"));
        this.#waiting.clear();
      };
    });
    // Both, so that a refusal (which rejects both) is never left unhandled.
    await Promise.all([ws.opened, joined]);
  }

  async createGroup(others: string[]): Promise<string> {
    const answer = await this.#emit(`["create",${JSON.stringify(others)}]`);
    const [res] = JSON.parse(answer.payload.toString("utf8", answer.start)) as [{ id: string }];
    return res.id;
  }

  send(conversationId: string, clientMsgId: string, text: string): Promise<void> {
    let t = this.#templates.get(conversationId);
    if (!t) {
      t = {
        head: `["send",{"conversationId":${JSON.stringify(conversationId)},"clientMsgId":"`,
        tail: `","text":${JSON.stringify(text)}}]`,
      };
      this.#templates.set(conversationId, t);
    }
    // clientMsgId is URL-safe ASCII: no escaping needed.
    return this.#emit(t.head + clientMsgId + t.tail).then((answer) => {
      if (answer.payload.indexOf(ERROR_ACK, answer.start) === answer.start) {
        throw new Error(answer.payload.toString("utf8", answer.start));
      }
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const ws = this.#ws;
    if (!ws?.isOpen) return;
    this.#write("41"); // leave the namespace, as socket.disconnect() does
    await new Promise<void>((resolve) => {
      ws.onClose = resolve;
      ws.close(1000);
      setTimeout(resolve, 1_000);
    });
  }

  #write(packet: string): void {
    const ws = this.#ws;
    if (!ws?.isOpen) return;
    ws.send(packet);
    this.#wire.sent(packet.length); // ASCII, but for texts beyond it (the load sends "x"s)
  }

  /** emit sends an event that wants an acknowledgement, and resolves with the ack's payload. */
  #emit(eventAndData: string): Promise<{ payload: Buffer; start: number }> {
    const id = this.#nextAck++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve: (payload, start) => resolve({ payload, start }), reject });
      this.#write(`42${id}${eventAndData}`);
    });
  }

  #onPacket(data: Buffer): void {
    if (data[0] === PING) {
      this.#wire.received(data.length, "ping");
      this.#write("3");
      return;
    }
    if (data[0] !== MESSAGE) {
      this.#wire.received(data.length, data[0] === OPEN ? "open" : "other");
      return;
    }
    if (data[1] === ACK) {
      this.#wire.received(data.length, "ack");
      let id = 0;
      let i = 2;
      for (; i < data.length; i++) {
        const d = (data[i] as number) - 0x30;
        if (d < 0 || d > 9) break;
        id = id * 10 + d;
      }
      const w = this.#waiting.get(id);
      if (w) {
        this.#waiting.delete(id);
        // A copy: the socket's read buffer is reused, and the ack is read in a continuation.
        w.resolve(Buffer.from(data.subarray(i)), 0);
      }
      return;
    }
    if (data[1] === EVENT && data.indexOf(MESSAGE_EVENT) === 0) {
      this.#wire.received(data.length, "message");
      const at = data.indexOf(CLIENT_MSG_ID, MESSAGE_EVENT.length);
      if (at < 0) return;
      const start = at + CLIENT_MSG_ID.length;
      const end = data.indexOf(0x22, start); // the closing quote
      this.onMessage(data.toString("latin1", start, end));
      return;
    }
    this.#wire.received(data.length, "other");
  }
}
