import {
  create,
  fromBinary,
  fromJsonString,
  type MessageInitShape,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import {
  type ClientFrame,
  ClientFrameSchema,
  ErrorCode,
  ErrorCodeSchema,
  type ServerFrame,
  ServerFrameSchema,
  type Welcome,
} from "../gen/chat/v1/client_pb.ts";
import {
  type Conversation,
  ConversationKind,
  type ConversationPage,
  type History,
  type Message,
  type Presence,
  type PushPlatform,
  type Receipt,
  type Typing,
  type VersionVector,
  VersionVectorSchema,
} from "../gen/chat/v1/types_pb.ts";
import { Backoff } from "./backoff.ts";
import { Emitter } from "./emitter.ts";
import { InboxTracker } from "./inbox.ts";
import { type ClientStateStore, MemoryStateStore, type PendingSend } from "./state.ts";

/** PROTO_SUBPROTOCOL and JSON_SUBPROTOCOL are the WebSocket subprotocols of chat.v1. */
export const PROTO_SUBPROTOCOL = "connectchat.v1.proto";
export const JSON_SUBPROTOCOL = "connectchat.v1.json";

/** ChatClientOptions configure a client. */
export interface ChatClientOptions {
  /** url is the gateway WebSocket URL, or several (tried in order when one fails). */
  url: string | string[];
  /** token returns a JWT for the user; it is called before every (re)connection. */
  token: () => string | Promise<string>;
  /** deviceId is stable per app install. */
  deviceId: string;
  /** encoding picks the subprotocol: binary protobuf (default) or protobuf JSON. */
  encoding?: "proto" | "json";
  /** state keeps the inbox position and unsent messages across restarts (default: memory). */
  state?: ClientStateStore;
  /** requestTimeoutMs bounds every request (default 10 s). */
  requestTimeoutMs?: number;
  /** reconnect tunes the jittered exponential backoff between attempts. */
  reconnect?: { initialMs?: number; maxMs?: number };
  /** gapTimeoutMs is how long a hole in the inbox may stay open before asking for a sync. */
  gapTimeoutMs?: number;
  /** ackDelayMs batches delivery acknowledgements (default 250 ms). */
  ackDelayMs?: number;
  /** client names the app in the server's logs. */
  client?: string;
  /** WebSocket lets Node apps and tests supply an implementation (default: the global one). */
  WebSocket?: typeof WebSocket;
  onListenerError?: (err: unknown) => void;
}

/** ChatClientEvents are what a client tells the app. */
export type ChatClientEvents = {
  /** connected: the server accepted the hello (after every reconnection too). */
  connected: (welcome: Welcome) => void;
  /** disconnected: the socket closed; `reconnectInMs` is set when the client will retry. */
  disconnected: (info: { code: number; reason: string; reconnectInMs?: number }) => void;
  /** message: a new message, each exactly once, in order per origin region. */
  message: (message: Message, info: { replay: boolean }) => void;
  receipt: (receipt: Receipt) => void;
  typing: (typing: Typing) => void;
  presence: (presence: Presence) => void;
  /** synced: a replay finished and the inbox has no hole: the device is up to date. */
  synced: (inbox: Map<string, bigint>) => void;
  /**
   * expired: the device was offline longer than the inbox retention; messages it never got
   * are no longer in its inbox. Reload history for the conversations on screen.
   */
  expired: (regions: Map<string, bigint>) => void;
  /** error: the server reported a problem that answers no request of this client. */
  error: (error: ChatClientError) => void;
};

/** ChatClientError is an error the server answered (or the client concluded). */
export class ChatClientError extends Error {
  override name = "ChatClientError";
  readonly code: ErrorCode;
  readonly field: string;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string, field = "", retryable = false) {
    super(`${ErrorCodeSchema.value[code]?.localName ?? code}: ${message}`);
    this.code = code;
    this.field = field;
    this.retryable = retryable;
  }
}

type ClientKind = MessageInitShape<typeof ClientFrameSchema>["kind"];

interface Inflight {
  resolve: (frame: ServerFrame) => void;
  reject: (err: ChatClientError) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface QueuedSend extends PendingSend {
  resolve: (m: Message) => void;
  reject: (err: ChatClientError) => void;
  requestId: number;
}

/**
 * ChatClient is the Connect Chat SDK: one WebSocket to a gateway, kept alive with heartbeats
 * and reconnected with jittered backoff, resuming the inbox from its version vector so that
 * every message arrives exactly once and in order. Sends are retried with the same
 * client_msg_id until acknowledged, across reconnections, so none is lost or doubled.
 */
export class ChatClient extends Emitter<ChatClientEvents> {
  readonly deviceId: string;
  userId = "";
  region = "";
  readonly #o: Required<
    Omit<ChatClientOptions, "state" | "WebSocket" | "onListenerError" | "reconnect">
  >;
  readonly #urls: string[];
  readonly #WebSocket: typeof WebSocket;
  readonly #store: ClientStateStore;
  readonly #backoff: Backoff;
  #tracker = new InboxTracker();
  #state: "idle" | "connecting" | "connected" | "closed" = "idle";
  #ws: WebSocket | undefined;
  #urlIndex = 0;
  #nextRequestId = 1;
  readonly #inflight = new Map<number, Inflight>();
  readonly #sends: QueuedSend[] = [];
  #loaded: Promise<void> | undefined;
  #seenHlc = 0n;
  #lastFrameAt = 0;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #gapTimer: ReturnType<typeof setTimeout> | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #unacked = new Map<string, Map<string, bigint>>();
  #goAwayMs: number | undefined;
  #authFailures = 0;
  #connected: Array<{ resolve: (w: Welcome) => void; reject: (e: ChatClientError) => void }> = [];
  #welcome: Welcome | undefined;
  #saving: Promise<void> | undefined;
  #saveNext: Promise<void> | undefined;

  constructor(opts: ChatClientOptions) {
    super(opts.onListenerError);
    this.deviceId = opts.deviceId;
    this.#urls = Array.isArray(opts.url) ? opts.url : [opts.url];
    if (this.#urls.length === 0) throw new Error("ChatClient needs at least one url");
    this.#WebSocket = opts.WebSocket ?? globalThis.WebSocket;
    this.#store = opts.state ?? new MemoryStateStore();
    this.#backoff = new Backoff(opts.reconnect);
    this.#o = {
      url: this.#urls,
      token: opts.token,
      deviceId: opts.deviceId,
      encoding: opts.encoding ?? "proto",
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      gapTimeoutMs: opts.gapTimeoutMs ?? 1_000,
      ackDelayMs: opts.ackDelayMs ?? 250,
      client: opts.client ?? "connect-chat-sdk",
    };
  }

  /** state is the connection state. */
  get state(): "idle" | "connecting" | "connected" | "closed" {
    return this.#state;
  }

  /** inbox is the contiguous inbox position reached (what the next resume presents). */
  inbox(): Map<string, bigint> {
    return this.#tracker.vector();
  }

  /** connect opens the connection and resolves at the first welcome. */
  connect(): Promise<Welcome> {
    if (this.#state === "closed") return Promise.reject(new Error("client is closed"));
    if (this.#state === "connected" && this.#welcome) return Promise.resolve(this.#welcome);
    const p = new Promise<Welcome>((resolve, reject) => this.#connected.push({ resolve, reject }));
    if (this.#state === "idle") {
      this.#state = "connecting";
      void this.#open();
    }
    return p;
  }

  /** close ends the connection for good; unsent messages stay in the state store. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#flushAck();
    this.#state = "closed";
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#gapTimer);
    clearTimeout(this.#ackTimer);
    clearInterval(this.#heartbeat);
    this.#failInflight(ErrorCode.CANCELLED, "client closed");
    for (const s of this.#sends.splice(0)) {
      s.reject(
        new ChatClientError(
          ErrorCode.CANCELLED,
          "client closed before the send was acknowledged",
          "",
          true,
        ),
      );
    }
    for (const c of this.#connected.splice(0))
      c.reject(new ChatClientError(ErrorCode.CANCELLED, "client closed"));
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws && ws.readyState <= 1) {
      await new Promise<void>((resolve) => {
        ws.addEventListener("close", () => resolve());
        ws.close(1000, "bye");
        setTimeout(resolve, 1_000);
      });
    }
  }

  /**
   * send sends a text message and resolves with the stored message once it is durable. Until
   * then it is retried, with the same client_msg_id, across reconnections.
   */
  async send(
    conversationId: string,
    text: string,
    opts: { clientMsgId?: string } = {},
  ): Promise<Message> {
    await this.#load();
    const pending: PendingSend = {
      conversationId,
      clientMsgId: opts.clientMsgId ?? newClientMsgId(),
      text,
    };
    let queued!: QueuedSend;
    const p = new Promise<Message>((resolve, reject) => {
      queued = { ...pending, resolve, reject, requestId: 0 };
    });
    this.#sends.push(queued);
    await this.#saveState();
    this.#flushSends();
    return p;
  }

  /** createDirect opens (or finds) the direct conversation with another user. */
  async createDirect(userId: string): Promise<Conversation> {
    return this.#conversation({
      case: "createConversation",
      value: { kind: ConversationKind.DIRECT, memberIds: [userId], clientMsgId: newClientMsgId() },
    });
  }

  /** createGroup creates a group with the given other members. */
  async createGroup(title: string, memberIds: string[]): Promise<Conversation> {
    return this.#conversation({
      case: "createConversation",
      value: { kind: ConversationKind.GROUP, title, memberIds, clientMsgId: newClientMsgId() },
    });
  }

  async addMembers(conversationId: string, userIds: string[]): Promise<Conversation> {
    return this.#conversation({
      case: "addMembers",
      value: { conversationId, userIds, clientMsgId: newClientMsgId() },
    });
  }

  async removeMembers(conversationId: string, userIds: string[]): Promise<Conversation> {
    return this.#conversation({
      case: "removeMembers",
      value: { conversationId, userIds, clientMsgId: newClientMsgId() },
    });
  }

  /** leave removes this user from a group. */
  async leave(conversationId: string): Promise<Conversation> {
    return this.removeMembers(conversationId, [this.userId]);
  }

  async getConversation(conversationId: string): Promise<Conversation> {
    return this.#conversation({ case: "getConversation", value: { conversationId } });
  }

  async listConversations(
    opts: { pageToken?: string; limit?: number } = {},
  ): Promise<ConversationPage> {
    const f = await this.#request({ case: "listConversations", value: opts });
    return expect(f, "conversationPage");
  }

  /**
   * history returns a page of messages before `before` in display order (a message, or any
   * position), the newest page when unset. Pass the first message of a page to get the one
   * before it.
   */
  async history(
    conversationId: string,
    opts: { before?: { hlc: bigint; originRegion: string; seq: bigint }; limit?: number } = {},
  ): Promise<History> {
    const b = opts.before;
    const f = await this.#request({
      case: "getHistory",
      value: {
        conversationId,
        before: b && { hlc: b.hlc, originRegion: b.originRegion, seq: b.seq },
        limit: opts.limit,
      },
    });
    return expect(f, "history");
  }

  /** markRead says the user has read a conversation up to `upTo` (per origin region). */
  async markRead(conversationId: string, upTo: Map<string, bigint>): Promise<void> {
    await this.#request({ case: "markRead", value: { conversationId, upTo: toVector(upTo) } });
  }

  async receipts(conversationId: string): Promise<Receipt[]> {
    const f = await this.#request({ case: "getReceipts", value: { conversationId } });
    return expect(f, "receipts").receipts;
  }

  /** setTyping shows or hides this user's typing indicator to the other members. */
  async setTyping(conversationId: string, active: boolean): Promise<void> {
    await this.#request({ case: "typing", value: { conversationId, active } });
  }

  /** watchPresence follows these users' presence (replacing the previous list). */
  async watchPresence(userIds: string[]): Promise<Presence[]> {
    const f = await this.#request({ case: "watchPresence", value: { userIds } });
    return expect(f, "presenceSnapshot").users;
  }

  async registerPushToken(platform: PushPlatform, token: string): Promise<void> {
    await this.#request({ case: "registerPushToken", value: { platform, token } });
  }

  /** sync asks the server to replay everything after the current inbox position. */
  sync(): void {
    this.#sendFrame({ case: "sync", value: { inbox: toVector(this.#tracker.vector()) } });
  }

  async #conversation(kind: ClientKind): Promise<Conversation> {
    return expect(await this.#request(kind), "conversation");
  }

  // --- connection ---------------------------------------------------------------------------

  async #load(): Promise<void> {
    this.#loaded ??= (async () => {
      const saved = await this.#store.load();
      if (!saved) return;
      this.#tracker = new InboxTracker(
        new Map(Object.entries(saved.inbox).map(([r, s]) => [r, BigInt(s)])),
      );
      for (const p of saved.pending) {
        // Sends restored from an earlier run are retried; nobody awaits them in this run.
        this.#sends.push({ ...p, resolve: () => {}, reject: () => {}, requestId: 0 });
      }
    })();
    return this.#loaded;
  }

  /**
   * saveState persists the inbox position and unsent messages. Calls made while a save is
   * running share the one save that follows it, so a slow store sees one save at a time.
   */
  #saveState(): Promise<void> {
    if (!this.#saving) {
      this.#saving = this.#writeState().finally(() => {
        this.#saving = undefined;
      });
      return this.#saving;
    }
    this.#saveNext ??= this.#saving
      .catch(() => undefined)
      .then(() => {
        this.#saveNext = undefined;
        return this.#saveState();
      });
    return this.#saveNext;
  }

  async #writeState(): Promise<void> {
    const inbox: Record<string, string> = {};
    for (const [r, s] of this.#tracker.vector()) inbox[r] = s.toString();
    await this.#store.save({
      inbox,
      pending: this.#sends.map(({ conversationId, clientMsgId, text }) => ({
        conversationId,
        clientMsgId,
        text,
      })),
    });
  }

  async #open(): Promise<void> {
    await this.#load();
    if (this.#state === "closed") return;
    const url = this.#urls[this.#urlIndex % this.#urls.length] as string;
    let ws: WebSocket;
    try {
      ws = new this.#WebSocket(url, [
        this.#o.encoding === "json" ? JSON_SUBPROTOCOL : PROTO_SUBPROTOCOL,
      ]);
    } catch (err) {
      this.#scheduleReconnect(1006, String(err));
      return;
    }
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    ws.addEventListener("open", async () => {
      let token: string;
      try {
        token = await this.#o.token();
      } catch (err) {
        ws.close(4000, "no token");
        this.#scheduleReconnect(4000, `token provider failed: ${err}`);
        return;
      }
      if (this.#ws !== ws) return;
      this.#lastFrameAt = Date.now();
      this.#sendFrame({
        case: "hello",
        value: {
          token,
          deviceId: this.deviceId,
          inbox: toVector(this.#tracker.vector()),
          client: this.#o.client,
        },
      });
    });
    ws.addEventListener("message", (ev) => {
      if (this.#ws !== ws) return;
      this.#lastFrameAt = Date.now();
      let frame: ServerFrame;
      try {
        frame =
          typeof ev.data === "string"
            ? fromJsonString(ServerFrameSchema, ev.data, { ignoreUnknownFields: true })
            : fromBinary(ServerFrameSchema, new Uint8Array(ev.data as ArrayBuffer));
      } catch (err) {
        this.emit(
          "error",
          new ChatClientError(ErrorCode.INTERNAL, `unreadable server frame: ${err}`),
        );
        return;
      }
      this.#onFrame(frame);
    });
    // A failed connection also closes; listening keeps Node implementations (`ws`) from
    // treating the error as unhandled.
    ws.addEventListener("error", () => {});
    ws.addEventListener("close", (ev) => {
      if (this.#ws !== ws) return;
      this.#ws = undefined;
      this.#onDisconnect(ev.code, ev.reason);
    });
  }

  #onDisconnect(code: number, reason: string): void {
    clearInterval(this.#heartbeat);
    clearTimeout(this.#gapTimer);
    this.#gapTimer = undefined;
    const wasConnected = this.#state === "connected";
    this.#welcome = undefined;
    this.#failInflight(
      ErrorCode.UNAVAILABLE,
      `connection lost (${code}${reason ? ` ${reason}` : ""})`,
    );
    if (this.#state === "closed") return;
    this.#state = "connecting";
    if (code === 4401) {
      this.#authFailures++;
      if (!wasConnected && this.#authFailures >= 2) {
        const err = new ChatClientError(
          ErrorCode.UNAUTHENTICATED,
          reason || "authentication failed",
        );
        for (const c of this.#connected.splice(0)) c.reject(err);
        this.emit("disconnected", { code, reason });
        this.#state = "closed";
        return;
      }
    }
    this.#scheduleReconnect(code, reason);
  }

  #scheduleReconnect(code: number, reason: string): void {
    if (this.#state === "closed") return;
    let delay: number;
    if (this.#goAwayMs !== undefined) {
      // The server asked us to reconnect (drain): honour its hint, not a failure.
      delay = this.#goAwayMs + Math.floor(Math.random() * 250);
      this.#goAwayMs = undefined;
    } else {
      delay = this.#backoff.next();
      if (this.#backoff.attempts > 1) this.#urlIndex++;
    }
    this.emit("disconnected", { code, reason, reconnectInMs: delay });
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => void this.#open(), delay);
  }

  #onFrame(frame: ServerFrame): void {
    const k = frame.kind;
    if (frame.requestId !== 0) {
      const send = this.#sends.find((s) => s.requestId === frame.requestId);
      if (send) {
        this.#onSendAnswer(send, frame);
        return;
      }
      const inflight = this.#inflight.get(frame.requestId);
      if (inflight) {
        this.#inflight.delete(frame.requestId);
        clearTimeout(inflight.timer);
        if (k.case === "error") {
          inflight.reject(
            new ChatClientError(k.value.code, k.value.message, k.value.field, k.value.retryable),
          );
        } else {
          inflight.resolve(frame);
        }
        return;
      }
    }
    switch (k.case) {
      case "welcome":
        this.#onWelcome(k.value);
        break;
      case "deliveries":
        this.#release(this.#tracker.accept(k.value.entries), k.value.replay);
        this.#watchGap();
        return;
      case "syncState": {
        const expired = new Map(Object.entries(k.value.expired?.seqs ?? {}));
        if (expired.size > 0) {
          this.#release(this.#tracker.skipTo(expired), true);
          this.emit("expired", expired);
        }
        const head = new Map(Object.entries(k.value.inboxHead?.seqs ?? {}));
        if (this.#tracker.behind(head)) {
          // Something the replay sent was lost on the way: ask again.
          this.#watchGap(true);
        } else if (!this.#tracker.hasGap()) {
          this.emit("synced", this.#tracker.vector());
        }
        return;
      }
      case "receipt":
        this.emit("receipt", k.value);
        break;
      case "receipts":
        // Several members' receipts of one conversation, coalesced by the server.
        for (const r of k.value.receipts) this.emit("receipt", r);
        break;
      case "typing":
        this.emit("typing", k.value);
        break;
      case "presence":
        this.emit("presence", k.value);
        break;
      case "goAway":
        this.#goAwayMs = k.value.reconnectAfterMs;
        return;
      case "error":
        // A refused hello is reported by the close that follows it.
        if (k.value.code === ErrorCode.UNAUTHENTICATED && this.#state !== "connected") break;
        this.emit(
          "error",
          new ChatClientError(k.value.code, k.value.message, k.value.field, k.value.retryable),
        );
        break;
      default:
        break;
    }
  }

  #onWelcome(welcome: Welcome): void {
    this.#state = "connected";
    this.#welcome = welcome;
    this.#authFailures = 0;
    this.#backoff.reset();
    this.userId = welcome.userId;
    this.region = welcome.region;
    if (welcome.serverHlc > this.#seenHlc) this.#seenHlc = welcome.serverHlc;
    const interval = welcome.heartbeatIntervalMs || 15_000;
    clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => {
      if (Date.now() - this.#lastFrameAt > interval * 2.5) {
        // The connection is dead without having closed: drop it and reconnect.
        const ws = this.#ws;
        this.#ws = undefined;
        ws?.close(4000, "heartbeat timeout");
        this.#onDisconnect(1006, "heartbeat timeout");
        return;
      }
      this.#sendFrame({ case: "ping", value: { nonce: BigInt(Date.now()) } });
    }, interval);
    this.#flushSends();
    if (this.#unacked.size > 0) this.#scheduleAck();
    for (const c of this.#connected.splice(0)) c.resolve(welcome);
    this.emit("connected", welcome);
  }

  // --- requests -----------------------------------------------------------------------------

  async #request(kind: ClientKind): Promise<ServerFrame> {
    if (this.#state === "idle") await this.connect();
    if (this.#state !== "connected") {
      await Promise.race([
        this.connect(),
        new Promise((_, reject) =>
          setTimeout(
            () => reject(new ChatClientError(ErrorCode.UNAVAILABLE, "not connected", "", true)),
            this.#o.requestTimeoutMs,
          ),
        ),
      ]);
    }
    const requestId = this.#nextRequestId++;
    return new Promise<ServerFrame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#inflight.delete(requestId);
        reject(new ChatClientError(ErrorCode.DEADLINE_EXCEEDED, "no answer in time", "", true));
      }, this.#o.requestTimeoutMs);
      this.#inflight.set(requestId, { resolve, reject, timer });
      this.#sendFrame(kind, requestId);
    });
  }

  /** flushSends transmits, in queue order, every send not in flight on this connection. */
  #flushSends(): void {
    if (this.#state !== "connected") return;
    for (const s of this.#sends) if (s.requestId === 0) this.#transmit(s);
  }

  #transmit(s: QueuedSend): void {
    s.requestId = this.#nextRequestId++;
    this.#sendFrame(
      {
        case: "send",
        value: {
          conversationId: s.conversationId,
          clientMsgId: s.clientMsgId,
          text: s.text,
          seenHlc: this.#seenHlc,
        },
      },
      s.requestId,
    );
  }

  #onSendAnswer(s: QueuedSend, frame: ServerFrame): void {
    const k = frame.kind;
    if (k.case === "error" && k.value.retryable) {
      // Try again shortly with the same id; the server deduplicates.
      s.requestId = 0;
      setTimeout(() => this.#flushSends(), 500 + Math.floor(Math.random() * 500));
      return;
    }
    this.#sends.splice(this.#sends.indexOf(s), 1);
    void this.#saveState();
    if (k.case === "sendResult") {
      if (k.value.hlc > this.#seenHlc) this.#seenHlc = k.value.hlc;
      s.resolve(k.value);
    } else if (k.case === "error") {
      s.reject(new ChatClientError(k.value.code, k.value.message, k.value.field, false));
    } else {
      s.reject(
        new ChatClientError(ErrorCode.INTERNAL, `unexpected answer ${String(k.case)} to a send`),
      );
    }
  }

  #sendFrame(kind: ClientKind, requestId = 0): void {
    const ws = this.#ws;
    if (ws?.readyState !== 1) return;
    const frame: ClientFrame = create(ClientFrameSchema, { requestId, kind });
    ws.send(
      this.#o.encoding === "json"
        ? toJsonString(ClientFrameSchema, frame)
        : toBinary(ClientFrameSchema, frame),
    );
  }

  #failInflight(code: ErrorCode, message: string): void {
    for (const [id, f] of this.#inflight) {
      clearTimeout(f.timer);
      f.reject(new ChatClientError(code, message, "", true));
      this.#inflight.delete(id);
    }
    for (const s of this.#sends) s.requestId = 0;
  }

  // --- inbox: acks and gaps ------------------------------------------------------------------

  /** release hands messages the tracker let through to the app, and acknowledges them. */
  #release(messages: Message[], replay: boolean): void {
    for (const m of messages) {
      if (m.hlc > this.#seenHlc) this.#seenHlc = m.hlc;
      this.#noteDelivered(m);
      this.emit("message", m, { replay });
    }
    if (messages.length > 0) this.#scheduleAck();
  }

  #noteDelivered(m: Message): void {
    const byRegion = this.#unacked.get(m.conversationId) ?? new Map<string, bigint>();
    if (m.seq > (byRegion.get(m.originRegion) ?? 0n)) byRegion.set(m.originRegion, m.seq);
    this.#unacked.set(m.conversationId, byRegion);
  }

  #scheduleAck(): void {
    if (this.#ackTimer) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      this.#flushAck();
    }, this.#o.ackDelayMs);
  }

  #flushAck(): void {
    void this.#saveState();
    if (this.#state !== "connected" || this.#unacked.size === 0) return;
    const conversations = [...this.#unacked].map(([conversationId, upTo]) => ({
      conversationId,
      upTo: toVector(upTo),
    }));
    this.#unacked = new Map();
    for (let i = 0; i < conversations.length; i += 256) {
      this.#sendFrame({
        case: "ack",
        value: {
          inbox: toVector(this.#tracker.vector()),
          conversations: conversations.slice(i, i + 256),
        },
      });
    }
  }

  /** watchGap asks for a sync when a hole in the inbox stays open for gapTimeoutMs. */
  #watchGap(now = false): void {
    if (!now && !this.#tracker.hasGap()) {
      clearTimeout(this.#gapTimer);
      this.#gapTimer = undefined;
      return;
    }
    if (this.#gapTimer) return;
    this.#gapTimer = setTimeout(
      () => {
        this.#gapTimer = undefined;
        if (this.#state === "connected") this.sync();
      },
      now ? 0 : this.#o.gapTimeoutMs,
    );
  }
}

/** newClientMsgId returns a random idempotency key (22 URL-safe characters). */
export function newClientMsgId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function toVector(v: Map<string, bigint>): VersionVector {
  return create(VersionVectorSchema, { seqs: Object.fromEntries(v) });
}

type FrameValue<C extends ServerFrame["kind"]["case"]> = Extract<
  ServerFrame["kind"],
  { case: C }
>["value"];

function expect<C extends NonNullable<ServerFrame["kind"]["case"]>>(
  frame: ServerFrame,
  kind: C,
): FrameValue<C> {
  if (frame.kind.case !== kind) {
    throw new ChatClientError(
      ErrorCode.INTERNAL,
      `expected ${kind}, got ${String(frame.kind.case)}`,
    );
  }
  return frame.kind.value as FrameValue<C>;
}
