import {
  create,
  fromBinary,
  fromJsonString,
  type MessageInitShape,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import type { ExecutionContext } from "ava";
import { WebSocket as NodeWebSocket } from "ws";
import {
  ClientFrameSchema,
  type ServerFrame,
  ServerFrameSchema,
} from "../../gen/chat/v1/client_pb.ts";
import type { LocalRegion } from "../../services/region/region.ts";

type Kind = MessageInitShape<typeof ClientFrameSchema>["kind"];

/**
 * RawSocket speaks the client protocol frame by frame, without the SDK, so tests can send
 * exactly what they want (including garbage) and see exactly what comes back.
 */
export class RawSocket {
  readonly ws: WebSocket;
  readonly frames: ServerFrame[] = [];
  readonly json: boolean;
  closed: { code: number; reason: string } | undefined;
  readonly #waiters: Array<() => void> = [];
  /** node is the socket of openStoppable (the ws package's, which can stop reading). */
  #node: NodeWebSocket | undefined;

  private constructor(ws: WebSocket, json: boolean) {
    this.ws = ws;
    this.json = json;
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (ev) => {
      this.frames.push(
        typeof ev.data === "string"
          ? fromJsonString(ServerFrameSchema, ev.data)
          : fromBinary(ServerFrameSchema, new Uint8Array(ev.data as ArrayBuffer)),
      );
      this.#wake();
    });
    ws.addEventListener("close", (ev) => {
      this.closed = { code: ev.code, reason: ev.reason };
      this.#wake();
    });
  }

  /** open connects with the given subprotocol(s) and closes the socket when the test ends. */
  static async open(
    t: ExecutionContext,
    region: Pick<LocalRegion, "wsUrl">,
    protocols: string[] = ["connectchat.v1.proto"],
  ): Promise<RawSocket> {
    const ws = new WebSocket(region.wsUrl, protocols);
    const raw = new RawSocket(ws, ws.protocol === "connectchat.v1.json");
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve());
      ws.addEventListener("error", () => reject(new Error("websocket failed to open")));
    });
    (raw as { json: boolean }).json = ws.protocol === "connectchat.v1.json";
    t.teardown(() => ws.close());
    return raw;
  }

  /**
   * openStoppable is open with a socket that can stop reading (stopReading): the platform's
   * WebSocket cannot, the ws package's can, and it speaks the same event API.
   */
  static async openStoppable(
    t: ExecutionContext,
    region: Pick<LocalRegion, "wsUrl">,
    protocols: string[] = ["connectchat.v1.proto"],
  ): Promise<RawSocket> {
    const node = new NodeWebSocket(region.wsUrl, protocols);
    const raw = new RawSocket(node as unknown as WebSocket, false);
    raw.#node = node;
    await new Promise<void>((resolve, reject) => {
      node.once("open", () => resolve());
      node.once("error", () => reject(new Error("websocket failed to open")));
    });
    (raw as { json: boolean }).json = node.protocol === "connectchat.v1.json";
    t.teardown(() => node.terminate());
    return raw;
  }

  /**
   * stopReading stops reading the socket (openStoppable only): what the server writes piles up
   * in the kernel's buffers, then in the server's, as with a client that stopped reading.
   * Frames can still be sent.
   */
  stopReading(): void {
    if (!this.#node) throw new Error("stopReading needs a socket from openStoppable");
    this.#node.pause();
  }

  /** resumeReading reads again what the server wrote (and its close frame, if it closed). */
  resumeReading(): void {
    this.#node?.resume();
  }

  /** hello authenticates as `userId` and waits for the welcome. */
  async hello(
    region: Pick<LocalRegion, "token">,
    userId: string,
    deviceId = "raw",
  ): Promise<ServerFrame> {
    this.send(1, { case: "hello", value: { token: await region.token(userId), deviceId } });
    return this.next((f) => f.kind.case === "welcome");
  }

  /** send writes a well-formed frame in the socket's encoding. */
  send(requestId: number, kind: Kind): void {
    const frame = create(ClientFrameSchema, { requestId, kind });
    this.ws.send(
      this.json ? toJsonString(ClientFrameSchema, frame) : toBinary(ClientFrameSchema, frame),
    );
  }

  /** keepAlive pings every `ms`, as a client's heartbeat does, until the socket closes. */
  keepAlive(ms: number): void {
    const timer = setInterval(() => {
      if (this.closed) clearInterval(timer);
      else this.send(0, { case: "ping", value: { nonce: 0n } });
    }, ms);
    this.ws.addEventListener("close", () => clearInterval(timer));
  }

  /** sendRaw writes anything at all. */
  sendRaw(data: string | Uint8Array): void {
    this.ws.send(data);
  }

  /** next resolves with (and consumes) the first frame matching `pred`, waiting up to `ms`. */
  next(pred: (f: ServerFrame) => boolean, ms = 5_000): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const i = this.frames.findIndex(pred);
        if (i >= 0) {
          const [f] = this.frames.splice(i, 1);
          clearTimeout(timer);
          resolve(f as ServerFrame);
          return true;
        }
        if (this.closed) {
          clearTimeout(timer);
          reject(
            new Error(
              `socket closed (${this.closed.code} ${this.closed.reason}) before the frame came`,
            ),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(
          new Error(
            `no matching frame in ${ms} ms; got ${this.frames.map((f) => f.kind.case).join(",")}`,
          ),
        );
      }, ms);
      const waiter = () => {
        if (!check()) this.#waiters.push(waiter);
      };
      waiter();
    });
  }

  /** answer waits for the frame answering `requestId`. */
  answer(requestId: number, ms?: number): Promise<ServerFrame> {
    return this.next((f) => f.requestId === requestId, ms);
  }

  #wake() {
    for (const w of this.#waiters.splice(0)) w();
  }
}
