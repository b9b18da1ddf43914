import {
  create,
  fromBinary,
  fromJsonString,
  type MessageInitShape,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import type { ExecutionContext } from "ava";
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
