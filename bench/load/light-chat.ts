import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type ClientKind, PROTO_SUBPROTOCOL } from "../../client/frames.ts";
import { newClientMsgId } from "../../client/index.ts";
import {
  ClientFrameSchema,
  type ServerFrame,
  ServerFrameSchema,
} from "../../gen/chat/v1/client_pb.ts";
import { ConversationKind } from "../../gen/chat/v1/types_pb.ts";
import type { BenchClient } from "./clients.ts";
import { LightSocket } from "./light-socket.ts";
import {
  type Entry,
  encodeAck,
  encodePing,
  encodeSync,
  type FrameHead,
  hlcAfter,
  KIND_DELIVERIES,
  KIND_ERROR,
  KIND_SEND_RESULT,
  Reader,
  readEntries,
  readHead,
  readHlc,
  SERVER_KINDS,
  SendEncoder,
  StringCache,
} from "./wire.ts";
import type { WireStats } from "./wire-stats.ts";

/**
 * The light chat.v1 client: what the SDK puts on the wire for this load, at a fraction of its
 * CPU. It says hello, sends pre-encoded send frames, reads only the fields of a delivery the
 * load needs (wire.ts), acknowledges deliveries in batches as the SDK does (one ack frame per
 * connection per ackDelayMs, with the inbox position and each conversation's position per
 * origin region), pings at the heartbeat interval the welcome gives, asks for a sync every
 * syncIntervalMs (jittered), retries a send refused as retryable with the same client_msg_id,
 * and reconnects (resuming from its inbox position) if its connection is lost. It does not
 * hold back messages behind a hole in the inbox, dedupe copies across regions or persist
 * anything: the server does the same work for it as for the SDK, the client does much less.
 */

/** LightOptions are the SDK's timings (client/chat-client.ts defaults). */
const ACK_DELAY_MS = 250;
const SYNC_INTERVAL_MS = 60_000;
const REQUEST_TIMEOUT_MS = 60_000;
const RECONNECT_MS = 1_000;

// One of each for all clients: frames are handled one at a time, synchronously.
const reader = new Reader();
const head: FrameHead = { requestId: 0, kind: 0, start: 0, end: 0 };
const entry: Entry = {
  region: "",
  inboxSeq: 0,
  conversationId: "",
  originRegion: "",
  seq: 0,
  hlcLo: 0,
  hlcHi: 0,
  clientMsgId: "",
  text: false,
};
const sends = new SendEncoder();
const PING = encodePing(1);

interface PendingSend {
  conversationId: string;
  clientMsgId: string;
  text: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** lightChatClient connects one light client and resolves once it is welcomed. */
export async function lightChatClient(
  url: string,
  userId: string,
  token: string,
  wire: WireStats,
): Promise<BenchClient> {
  const c = new LightChatClient(url, userId, token, wire);
  await c.connect();
  return c;
}

class LightChatClient implements BenchClient {
  readonly userId: string;
  onMessage: (clientMsgId: string) => void = () => {};
  /** gaps counts inbox entries that arrived after a hole (the SDK would wait, then sync). */
  gaps = 0;
  readonly #url: string;
  readonly #token: string;
  readonly #wire: WireStats;
  #ws: LightSocket | undefined;
  #welcomed: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #closed = false;
  #disconnects = 0;
  #connectedOnce = false;
  #nextRequestId = 1;
  readonly #sends = new Map<number, PendingSend>();
  readonly #requests = new Map<number, (frame: ServerFrame) => void>();
  readonly #inbox = new Map<string, number>();
  #unacked = new Map<string, Map<string, number>>();
  readonly #strings = new StringCache();
  #hlcLo = 0;
  #hlcHi = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #syncTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(url: string, userId: string, token: string, wire: WireStats) {
    this.#url = url;
    this.userId = userId;
    this.#token = token;
    this.#wire = wire;
  }

  get disconnects(): number {
    return this.#disconnects;
  }

  /** connect opens the socket, says hello and resolves at the welcome. */
  async connect(): Promise<void> {
    const ws = new LightSocket(this.#url, PROTO_SUBPROTOCOL);
    this.#ws = ws;
    const welcomed = new Promise<void>((resolve, reject) => {
      this.#welcomed = { resolve, reject };
    });
    ws.onMessage = (data) => this.#onFrame(data);
    ws.onClose = () => this.#onClose(ws);
    // Both, so that a refusal (which rejects both) is never left unhandled.
    await Promise.all([ws.opened.then(() => this.#hello()), welcomed]);
  }

  async createGroup(others: string[]): Promise<string> {
    const frame = await this.#request({
      case: "createConversation",
      value: {
        kind: ConversationKind.GROUP,
        title: "bench",
        memberIds: others,
        clientMsgId: newClientMsgId(),
      },
    });
    if (frame.kind.case !== "conversation") {
      throw new Error(`createConversation answered ${frame.kind.case}`);
    }
    return frame.kind.value.id;
  }

  send(conversationId: string, clientMsgId: string, text: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#transmit({ conversationId, clientMsgId, text, resolve, reject });
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flushAck();
    this.#closed = true;
    this.#stopTimers();
    clearTimeout(this.#reconnectTimer);
    const ws = this.#ws;
    if (!ws?.isOpen) return;
    await new Promise<void>((resolve) => {
      ws.onClose = resolve;
      ws.close(1000);
      setTimeout(resolve, 1_000);
    });
  }

  #write(bytes: Uint8Array): void {
    const ws = this.#ws;
    if (!ws?.isOpen) return;
    ws.send(bytes);
    this.#wire.sent(bytes.length);
  }

  #hello(): void {
    const seqs: Record<string, bigint> = {};
    for (const [region, seq] of this.#inbox) seqs[region] = BigInt(seq);
    this.#write(
      toBinary(
        ClientFrameSchema,
        create(ClientFrameSchema, {
          kind: {
            case: "hello",
            value: {
              token: this.#token,
              deviceId: "bench",
              inbox: { seqs },
              client: "bench-light",
            },
          },
        }),
      ),
    );
  }

  #onFrame(buf: Buffer): void {
    readHead(reader, buf, head);
    this.#wire.received(buf.length, SERVER_KINDS[head.kind] ?? "other");
    switch (head.kind) {
      case KIND_DELIVERIES:
        readEntries(reader, buf, head.start, head.end, this.#strings, entry, this.#delivered);
        return;
      case KIND_SEND_RESULT: {
        const s = this.#sends.get(head.requestId);
        if (!s) break;
        this.#sends.delete(head.requestId);
        if (readHlc(reader, buf, head.start, head.end)) this.#seen(reader.lo, reader.hi);
        s.resolve();
        return;
      }
      case KIND_ERROR: {
        const s = this.#sends.get(head.requestId);
        if (!s) break;
        this.#sends.delete(head.requestId);
        this.#sendFailed(s, fromBinary(ServerFrameSchema, buf));
        return;
      }
    }
    // The rest is rare (welcome, answers to setup requests, pongs, receipts, sync states): a
    // full decode where it matters, nothing otherwise.
    if (head.requestId !== 0) {
      const answer = this.#requests.get(head.requestId);
      if (answer) {
        this.#requests.delete(head.requestId);
        answer(fromBinary(ServerFrameSchema, buf));
      }
    } else if (SERVER_KINDS[head.kind] === "welcome") {
      this.#onWelcome(fromBinary(ServerFrameSchema, buf));
    } else if (head.kind === KIND_ERROR && this.#welcomed) {
      const frame = fromBinary(ServerFrameSchema, buf);
      if (frame.kind.case === "error") this.#welcomed.reject(new Error(frame.kind.value.message));
      this.#welcomed = undefined;
    }
  }

  #onWelcome(frame: ServerFrame): void {
    if (frame.kind.case !== "welcome") return;
    this.#connectedOnce = true;
    const heartbeatMs = frame.kind.value.heartbeatIntervalMs || 15_000;
    this.#stopTimers();
    this.#heartbeat = setInterval(() => this.#write(PING), heartbeatMs);
    this.#scheduleSync();
    // Sends lost with a previous connection go again, with the same client_msg_id.
    for (const [requestId, s] of this.#sends) {
      this.#sends.delete(requestId);
      this.#transmit(s);
    }
    if (this.#unacked.size > 0) this.#scheduleAck();
    this.#welcomed?.resolve();
    this.#welcomed = undefined;
  }

  /** delivered takes one inbox entry (a bound method: readEntries calls it for each). */
  readonly #delivered = (e: Entry): void => {
    const last = this.#inbox.get(e.region) ?? 0;
    if (e.inboxSeq <= last) return; // a copy: replayed again after a sync or a reconnection
    if (e.inboxSeq > last + 1) this.gaps++;
    this.#inbox.set(e.region, e.inboxSeq);
    this.#seen(e.hlcLo, e.hlcHi);
    let byRegion = this.#unacked.get(e.conversationId);
    if (!byRegion) {
      byRegion = new Map();
      this.#unacked.set(e.conversationId, byRegion);
    }
    if (e.seq > (byRegion.get(e.originRegion) ?? 0)) byRegion.set(e.originRegion, e.seq);
    this.#scheduleAck();
    if (e.text) this.onMessage(e.clientMsgId);
  };

  /** seen keeps the highest hlc seen, for the next send's seen_hlc (as the SDK does). */
  #seen(lo: number, hi: number): void {
    if (hlcAfter(lo, hi, this.#hlcLo, this.#hlcHi)) {
      this.#hlcLo = lo;
      this.#hlcHi = hi;
    }
  }

  #transmit(s: PendingSend): void {
    const requestId = this.#nextRequestId++;
    this.#sends.set(requestId, s);
    this.#write(
      sends.encode(requestId, s.conversationId, s.clientMsgId, s.text, this.#hlcLo, this.#hlcHi),
    );
  }

  #sendFailed(s: PendingSend, frame: ServerFrame): void {
    const k = frame.kind;
    if (k.case === "error" && k.value.retryable) {
      // As the SDK: try again shortly with the same id; the server deduplicates.
      setTimeout(() => this.#transmit(s), 500 + Math.floor(Math.random() * 500));
      return;
    }
    s.reject(new Error(k.case === "error" ? k.value.message : `unexpected ${k.case}`));
  }

  #request(kind: ClientKind): Promise<ServerFrame> {
    const requestId = this.#nextRequestId++;
    return new Promise<ServerFrame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#requests.delete(requestId);
        reject(new Error(`${kind?.case}: no answer in time`));
      }, REQUEST_TIMEOUT_MS);
      this.#requests.set(requestId, (frame) => {
        clearTimeout(timer);
        if (frame.kind.case === "error") reject(new Error(frame.kind.value.message));
        else resolve(frame);
      });
      this.#write(toBinary(ClientFrameSchema, create(ClientFrameSchema, { requestId, kind })));
    });
  }

  #scheduleAck(): void {
    this.#ackTimer ??= setTimeout(() => {
      this.#ackTimer = undefined;
      this.#flushAck();
    }, ACK_DELAY_MS);
  }

  /** flushAck sends what arrived since the last ack, 256 conversations a frame at most. */
  #flushAck(): void {
    if (this.#unacked.size === 0 || !this.#ws?.isOpen) return;
    const all = this.#unacked;
    this.#unacked = new Map();
    if (all.size <= 256) {
      this.#write(encodeAck(this.#inbox, all));
      return;
    }
    const entries = [...all];
    for (let i = 0; i < entries.length; i += 256) {
      this.#write(encodeAck(this.#inbox, new Map(entries.slice(i, i + 256))));
    }
  }

  #scheduleSync(): void {
    clearTimeout(this.#syncTimer);
    this.#syncTimer = setTimeout(
      () => {
        this.#write(encodeSync(this.#inbox));
        this.#scheduleSync();
      },
      SYNC_INTERVAL_MS * (0.8 + Math.random() * 0.4),
    );
  }

  #stopTimers(): void {
    clearInterval(this.#heartbeat);
    clearTimeout(this.#syncTimer);
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
  }

  #onClose(ws: LightSocket): void {
    if (this.#ws !== ws) return;
    this.#ws = undefined;
    this.#stopTimers();
    for (const answer of this.#requests.values()) {
      answer(
        create(ServerFrameSchema, {
          kind: { case: "error", value: { message: "connection lost" } },
        }),
      );
    }
    this.#requests.clear();
    if (this.#closed) return;
    if (!this.#connectedOnce) {
      this.#welcomed?.reject(new Error(`${this.userId}: connection refused or closed`));
      this.#welcomed = undefined;
      return;
    }
    this.#disconnects++;
    this.#reconnect();
  }

  /** reconnect tries again after RECONNECT_MS, for as long as it takes. */
  #reconnect(): void {
    this.#reconnectTimer = setTimeout(() => {
      if (!this.#closed) this.connect().catch(() => this.#reconnect());
    }, RECONNECT_MS);
  }
}
