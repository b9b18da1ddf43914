import { create } from "@bufbuild/protobuf";
import {
  ErrorCode,
  ErrorCodeSchema,
  type GoAway,
  type ServerFrame,
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
import { FailoverPlan, type Loss } from "./failover.ts";
import { type ClientKind, decodeServerFrame, encodeClientFrame, subprotocol } from "./frames.ts";
import { InboxTracker } from "./inbox.ts";
import { Liveness } from "./liveness.ts";
import { type Probe, probe } from "./probe.ts";
import {
  preferenceOrder,
  type RegionEndpoint,
  type RegionLatency,
  resolveRegions,
} from "./regions.ts";
import { type ClientStateStore, MemoryStateStore, type PendingSend } from "./state.ts";

/** SEEN_LIMIT is how many shown sends the client remembers (and saves) to collapse copies. */
const SEEN_LIMIT = 5_000;

/** ChatClientOptions configure a client. Give `url` or `regions`, not both. */
export interface ChatClientOptions {
  /** url is the gateway WebSocket URL of one region, or several of its gateways (tried in turn). */
  url?: string | string[];
  /**
   * regions lists every region the client may use, each with its gateway's WebSocket URL. The
   * client measures their round-trip times, connects to the nearest, and fails over to the
   * others when that one is lost.
   */
  regions?: RegionEndpoint[];
  /**
   * preferRegion names one of `regions` to use whenever it answers, whatever its round-trip
   * time (a user's home region, or a test that wants clients on different regions); the others
   * are still ranked by round-trip time for failover.
   */
  preferRegion?: string;
  /**
   * token returns a JWT for the user; it is called before every (re)connection with the region
   * being dialled (its configured name, "" with `url`) and its URL.
   */
  token: (target: { region: string; url: string }) => string | Promise<string>;
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
  /**
   * syncIntervalMs is how often, while connected, the client asks for what its inbox holds
   * beyond its position (default 60 s, jittered; 0 never). A live delivery lost on the last
   * hop is otherwise noticed only when a later entry of the same region shows the hole: one
   * lost at the end of a conversation's burst would wait for the next message or reconnect.
   */
  syncIntervalMs?: number;
  /** ackDelayMs batches delivery acknowledgements (default 250 ms). */
  ackDelayMs?: number;
  /** probeTimeoutMs: a probed region that has not answered by then is unreachable (default 2 s). */
  probeTimeoutMs?: number;
  /** probeIntervalMs is the least time between two probes of the regions (default 5 s). */
  probeIntervalMs?: number;
  /** pongTimeoutMs: a ping unanswered for this long, in silence, means a dead connection (3 s). */
  pongTimeoutMs?: number;
  /** ackTimeoutMs: a request unanswered for this long, in silence, sends a ping (default 3 s). */
  ackTimeoutMs?: number;
  /** connectTimeoutMs bounds an attempt's open and its hello-to-welcome, each (default 5 s). */
  connectTimeoutMs?: number;
  /** client names the app in the server's logs. */
  client?: string;
  /**
   * WebSocket is the implementation to dial with (default: the global one, which browsers and
   * Node 22+ have). Runtimes without one pass theirs (e.g. the `ws` package); tests pass fakes.
   */
  WebSocket?: typeof WebSocket;
  onListenerError?: (err: unknown) => void;
}

/** ChatClientEvents are what a client tells the app. */
export type ChatClientEvents = {
  /** connected: the server accepted the hello (after every reconnection too). */
  connected: (welcome: Welcome) => void;
  /**
   * region: this connection's welcome came from another region than the previous one's (`from`
   * is unset on the first connection); `reason` says why the previous one was left.
   */
  region: (info: { from?: string; to: string; reason: string }) => void;
  /**
   * disconnected: the socket closed, or an attempt failed; `reconnectInMs` is set when the
   * client will retry. 4401: the token was refused (after two refusals in a row without a
   * welcome, the client gives up and `connect()` rejects with UNAUTHENTICATED). 1011: the
   * server could not open a session now (e.g. its identity provider is unavailable; `reason`
   * says why): the client retries with backoff for as long as it takes.
   */
  disconnected: (info: { code: number; reason: string; reconnectInMs?: number }) => void;
  /**
   * moved: a copy of a message already shown (a send that landed in two regions) sorts earlier
   * than the one shown; show the message at this copy's position (history shows it there).
   * Identify messages by (conversationId, senderId, clientMsgId) to find the one to move.
   */
  moved: (message: Message) => void;
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
  /**
   * error: the server reported a problem that answers no request of this client, or could not
   * accept a hello for now (UNAVAILABLE, retryable; a `disconnected` and a retry follow).
   */
  error: (error: ChatClientError) => void;
  /**
   * attempt: a send went on the wire to `region` (the first time and every retry, with the
   * same client_msg_id). For diagnostics and recorders; apps need not listen.
   */
  attempt: (info: { conversationId: string; clientMsgId: string; region: string }) => void;
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
 *
 * Given several regions, it connects to the one with the lowest measured round-trip time and,
 * when that connection is lost or stops answering, fails over to the others (see
 * FailoverPlan); the new region replays what the device missed from its inbox position.
 */
export class ChatClient extends Emitter<ChatClientEvents> {
  readonly deviceId: string;
  userId = "";
  region = "";
  readonly #o: Required<
    Omit<
      ChatClientOptions,
      "state" | "WebSocket" | "onListenerError" | "reconnect" | "url" | "regions" | "preferRegion"
    >
  >;
  readonly #regions: RegionEndpoint[];
  /** probes: with a choice of regions, they are ranked by measured round-trip time. */
  readonly #probes: boolean;
  /** preferred is the index of preferRegion in #regions, -1 without one. */
  #preferred = -1;
  #rtts: Array<number | undefined>;
  #probedAt = Number.NEGATIVE_INFINITY;
  #probing: { probe: Probe; done: Promise<void> } | undefined;
  readonly #failover: FailoverPlan;
  #target = 0;
  #cause = "first connection";
  #lastRegion: string | undefined;
  readonly #WebSocket: typeof WebSocket;
  readonly #store: ClientStateStore;
  #tracker = new InboxTracker(new Map(), { maxRemembered: SEEN_LIMIT });
  #state: "idle" | "connecting" | "connected" | "closed" = "idle";
  #ws: WebSocket | undefined;
  #nextRequestId = 1;
  readonly #inflight = new Map<number, Inflight>();
  readonly #sends: QueuedSend[] = [];
  #loaded: Promise<void> | undefined;
  #seenHlc = 0n;
  #liveness: Liveness | undefined;
  #attemptTimer: ReturnType<typeof setTimeout> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #gapTimer: ReturnType<typeof setTimeout> | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #syncTimer: ReturnType<typeof setTimeout> | undefined;
  #unacked = new Map<string, Map<string, bigint>>();
  #goAway: GoAway | undefined;
  #authFailures = 0;
  #connected: Array<{ resolve: (w: Welcome) => void; reject: (e: ChatClientError) => void }> = [];
  #welcome: Welcome | undefined;
  #saving: Promise<void> | undefined;
  #saveNext: Promise<void> | undefined;

  constructor(opts: ChatClientOptions) {
    super(opts.onListenerError);
    this.deviceId = opts.deviceId;
    this.#regions = resolveRegions(opts);
    this.#probes = opts.regions !== undefined && this.#regions.length > 1;
    if (opts.preferRegion !== undefined) {
      this.#preferred = this.#regions.findIndex((r) => r.name === opts.preferRegion);
      if (this.#preferred < 0) {
        throw new Error(
          `preferRegion ${JSON.stringify(opts.preferRegion)} is not one of the regions (${this.#regions.map((r) => r.name).join(", ")})`,
        );
      }
    }
    this.#rtts = this.#regions.map(() => undefined);
    // Browsers (and Node 22+) have a global WebSocket; elsewhere the app passes one (e.g. `ws`).
    const WebSocketImpl = opts.WebSocket ?? globalThis.WebSocket;
    if (typeof WebSocketImpl !== "function") {
      throw new Error(
        "ChatClient needs a WebSocket: this runtime has no global one, pass options.WebSocket",
      );
    }
    this.#WebSocket = WebSocketImpl;
    this.#store = opts.state ?? new MemoryStateStore();
    this.#failover = new FailoverPlan({
      regions: this.#regions.length,
      backoff: new Backoff(opts.reconnect),
    });
    this.#o = {
      token: opts.token,
      deviceId: opts.deviceId,
      encoding: opts.encoding ?? "proto",
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      gapTimeoutMs: opts.gapTimeoutMs ?? 1_000,
      syncIntervalMs: opts.syncIntervalMs ?? 60_000,
      ackDelayMs: opts.ackDelayMs ?? 250,
      client: opts.client ?? "connect-chat-sdk",
      probeTimeoutMs: opts.probeTimeoutMs ?? 2_000,
      probeIntervalMs: opts.probeIntervalMs ?? 5_000,
      pongTimeoutMs: opts.pongTimeoutMs ?? 3_000,
      ackTimeoutMs: opts.ackTimeoutMs ?? 3_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 5_000,
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

  /**
   * regionLatencies lists the regions in preference order (lowest measured round-trip time
   * first) with their latest measurement; rttMs is unset for a region that did not answer or
   * was not measured (regions are measured only when there is a choice).
   */
  regionLatencies(): RegionLatency[] {
    return this.#order().map((i) => {
      const { name, url } = this.#regions[i] as RegionEndpoint;
      const rttMs = this.#rtts[i];
      return { name: name || this.region, url, ...(rttMs === undefined ? {} : { rttMs }) };
    });
  }

  /** connect opens the connection and resolves at the first welcome. */
  connect(): Promise<Welcome> {
    if (this.#state === "closed") return Promise.reject(new Error("client is closed"));
    if (this.#state === "connected" && this.#welcome) return Promise.resolve(this.#welcome);
    const p = new Promise<Welcome>((resolve, reject) => this.#connected.push({ resolve, reject }));
    if (this.#state === "idle") {
      this.#state = "connecting";
      this.#failover.begin();
      void this.#dial();
    }
    return p;
  }

  /** close ends the connection for good; unsent messages stay in the state store. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#flushAck();
    this.#state = "closed";
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#attemptTimer);
    clearTimeout(this.#syncTimer);
    clearTimeout(this.#gapTimer);
    clearTimeout(this.#ackTimer);
    this.#liveness?.stop();
    this.#probing?.probe.cancel();
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
        { maxRemembered: SEEN_LIMIT, seen: saved.seen },
      );
      if (saved.seenHlc && /^[0-9]+$/.test(saved.seenHlc)) {
        const hlc = BigInt(saved.seenHlc);
        if (hlc > this.#seenHlc) this.#seenHlc = hlc;
      }
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
      seenHlc: this.#seenHlc.toString(),
      seen: this.#tracker.seen(),
    });
  }

  /** order is the regions' preference order, as indices into #regions. */
  #order(): number[] {
    const order = preferenceOrder(this.#rtts);
    // The preferred region goes first while it answers (an unreachable one stays last).
    if (this.#preferred < 0 || this.#rtts[this.#preferred] === undefined) return order;
    return [this.#preferred, ...order.filter((i) => i !== this.#preferred)];
  }

  /**
   * probeIfDue measures every region's round-trip time unless a probe is running (then it
   * waits for that one) or one ran within probeIntervalMs: a client cycling through backoff
   * must not open a socket to every region on every attempt.
   */
  #probeIfDue(): Promise<void> {
    if (!this.#probes) return Promise.resolve();
    if (this.#probing) return this.#probing.done;
    if (Date.now() - this.#probedAt < this.#o.probeIntervalMs) return Promise.resolve();
    this.#probedAt = Date.now();
    const p = probe(
      this.#regions.map((r) => r.url),
      { WebSocket: this.#WebSocket, encoding: this.#o.encoding, timeoutMs: this.#o.probeTimeoutMs },
    );
    const done = p.rtts.then((rtts) => {
      this.#rtts = rtts;
      this.#probing = undefined;
    });
    this.#probing = { probe: p, done };
    return done;
  }

  /**
   * dial starts the next attempt. When the failover plan picks by preference, a probe that is
   * due runs first (it is bounded by probeTimeoutMs); a retry of the region just lost does not
   * wait for it.
   */
  async #dial(): Promise<void> {
    await this.#load();
    const probing = this.#probeIfDue();
    if (this.#failover.ranked) await probing;
    if (this.#state === "closed") return;
    this.#open(this.#failover.next(this.#order()));
  }

  #open(target: number): void {
    const { name, url } = this.#regions[target] as RegionEndpoint;
    this.#target = target;
    let ws: WebSocket;
    try {
      ws = new this.#WebSocket(url, [subprotocol(this.#o.encoding)]);
    } catch (err) {
      this.#onDisconnect(1006, String(err));
      return;
    }
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    this.#expectWelcome(ws);
    ws.addEventListener("open", async () => {
      if (this.#ws !== ws) return;
      // A slow token provider is not a slow region: the attempt's clock stops meanwhile.
      clearTimeout(this.#attemptTimer);
      let token: string;
      try {
        token = await this.#o.token({ region: name, url });
      } catch (err) {
        if (this.#ws === ws) this.#abandon(ws, 4000, `token provider failed: ${err}`);
        return;
      }
      if (this.#ws !== ws) return;
      this.#expectWelcome(ws);
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
      this.#liveness?.received();
      let frame: ServerFrame;
      try {
        frame = decodeServerFrame(ev.data);
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

  /** expectWelcome fails the attempt on `ws` if it gets no further within connectTimeoutMs. */
  #expectWelcome(ws: WebSocket): void {
    clearTimeout(this.#attemptTimer);
    this.#attemptTimer = setTimeout(() => {
      if (this.#ws === ws && this.#state !== "connected") this.#abandon(ws, 1006, "no answer");
    }, this.#o.connectTimeoutMs);
  }

  /**
   * abandon drops a socket at once and handles it as closed with `code`: a region that stopped
   * answering may keep the TCP connection open for minutes, and nothing it sends later counts.
   */
  #abandon(ws: WebSocket, code: number, reason: string): void {
    this.#ws = undefined;
    try {
      ws.close(1000);
    } catch {
      // Closing a socket that never opened may throw in some implementations; it is gone.
    }
    this.#onDisconnect(code, reason);
  }

  #onDisconnect(code: number, reason: string): void {
    clearTimeout(this.#attemptTimer);
    clearTimeout(this.#syncTimer);
    this.#liveness?.stop();
    this.#liveness = undefined;
    clearTimeout(this.#gapTimer);
    this.#gapTimer = undefined;
    const wasConnected = this.#state === "connected";
    const goAway = this.#goAway;
    this.#goAway = undefined;
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
    const delay = wasConnected ? this.#lost(code, reason, goAway) : this.#failover.failed();
    this.emit("disconnected", { code, reason, reconnectInMs: delay });
    // Measure during the wait, so the attempts that pick by preference need not wait for it.
    void this.#probeIfDue();
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => void this.#dial(), delay);
  }

  /** lost classifies the end of a welcomed connection for the failover plan. */
  #lost(code: number, reason: string, goAway: GoAway | undefined): number {
    const detail = `${code}${reason ? ` ${reason}` : ""}`;
    let loss: Loss;
    if (code === 4401) {
      loss = { kind: "unauthenticated", afterMs: goAway?.reconnectAfterMs };
      this.#cause = `token refused (${detail})`;
    } else if (goAway?.leaveRegion) {
      loss = { kind: "leave" };
      this.#cause = `region cannot deliver (${goAway.reason || detail})`;
    } else if (goAway) {
      // The server asked us to reconnect (a drain): honour its hint, not a failure.
      loss = { kind: "drain", afterMs: goAway.reconnectAfterMs };
      this.#cause = `server asked to reconnect (${goAway.reason || detail})`;
    } else {
      loss = { kind: "dropped" };
      this.#cause = `connection lost (${detail})`;
    }
    return this.#failover.lost(this.#target, loss);
  }

  #onFrame(frame: ServerFrame): void {
    const k = frame.kind;
    if (frame.requestId !== 0) {
      const send = this.#sends.find((s) => s.requestId === frame.requestId);
      if (send) {
        this.#liveness?.answered(frame.requestId);
        this.#onSendAnswer(send, frame);
        return;
      }
      const inflight = this.#inflight.get(frame.requestId);
      if (inflight) {
        this.#liveness?.answered(frame.requestId);
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
      case "pong":
        this.#liveness?.pong(k.value.nonce);
        return;
      case "goAway":
        this.#goAway = k.value;
        return;
      case "error": {
        // Before the welcome, an error answers the hello. A refused token is reported by the
        // 4401 close that follows it.
        const hello = this.#state !== "connected";
        if (k.value.code === ErrorCode.UNAUTHENTICATED && hello) break;
        this.emit(
          "error",
          new ChatClientError(k.value.code, k.value.message, k.value.field, k.value.retryable),
        );
        // The server cannot open a session now (e.g. its identity provider is down): not the
        // token's fault. The attempt has failed; retry with backoff, however long it takes.
        const ws = this.#ws;
        if (hello && k.value.code === ErrorCode.UNAVAILABLE && ws) {
          this.#abandon(ws, 1011, k.value.message);
        }
        break;
      }
      default:
        break;
    }
  }

  #onWelcome(welcome: Welcome): void {
    clearTimeout(this.#attemptTimer);
    this.#state = "connected";
    this.#welcome = welcome;
    this.#authFailures = 0;
    this.#failover.connected();
    this.userId = welcome.userId;
    this.region = welcome.region;
    if (welcome.serverHlc > this.#seenHlc) this.#seenHlc = welcome.serverHlc;
    const ws = this.#ws;
    this.#liveness?.stop();
    this.#liveness = new Liveness({
      heartbeatMs: welcome.heartbeatIntervalMs || 15_000,
      pongTimeoutMs: this.#o.pongTimeoutMs,
      ackTimeoutMs: this.#o.ackTimeoutMs,
      ping: (nonce) => this.#sendFrame({ case: "ping", value: { nonce } }),
      dead: () => {
        if (ws && this.#ws === ws) this.#abandon(ws, 1006, "no answer");
      },
    });
    this.#flushSends();
    if (this.#unacked.size > 0) this.#scheduleAck();
    this.#scheduleSync();
    for (const c of this.#connected.splice(0)) c.resolve(welcome);
    const from = this.#lastRegion;
    this.#lastRegion = welcome.region;
    if (from !== welcome.region) {
      this.emit("region", { from, to: welcome.region, reason: this.#cause });
    }
    this.emit("connected", welcome);
  }

  // --- requests -----------------------------------------------------------------------------

  /**
   * request sends a request and resolves with its answer. One refused for the frame rate
   * (RESOURCE_EXHAUSTED with field frame_rate: the connection sent too many frames) is sent again after
   * 0.5–1 s, for as long as requestTimeoutMs allows; any other error is the caller's.
   */
  async #request(kind: ClientKind): Promise<ServerFrame> {
    const deadline = Date.now() + this.#o.requestTimeoutMs;
    for (;;) {
      try {
        return await this.#requestOnce(kind);
      } catch (err) {
        // Only the connection's frame rate: other refusals (a budget of conversations, say)
        // are the app's to handle.
        const slowDown =
          err instanceof ChatClientError &&
          err.retryable &&
          err.code === ErrorCode.RESOURCE_EXHAUSTED &&
          err.field === "frame_rate";
        const pause = 500 + Math.floor(Math.random() * 500);
        if (!slowDown || Date.now() + pause >= deadline) throw err;
        await new Promise((r) => setTimeout(r, pause));
      }
    }
  }

  async #requestOnce(kind: ClientKind): Promise<ServerFrame> {
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
        this.#liveness?.answered(requestId);
        reject(new ChatClientError(ErrorCode.DEADLINE_EXCEEDED, "no answer in time", "", true));
      }, this.#o.requestTimeoutMs);
      this.#inflight.set(requestId, { resolve, reject, timer });
      this.#sendFrame(kind, requestId);
      this.#liveness?.requestSent(requestId);
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
    this.#liveness?.requestSent(s.requestId);
    this.emit("attempt", {
      conversationId: s.conversationId,
      clientMsgId: s.clientMsgId,
      region: this.region,
    });
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
    ws.send(encodeClientFrame(kind, requestId, this.#o.encoding));
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
    // A copy is not shown again, but it was delivered: its origin's receipt must cover it, or
    // that region would think it undelivered (and push it).
    const copies = this.#tracker.takeCopies();
    for (const { message, moved } of copies) {
      this.#noteDelivered(message);
      if (moved) this.emit("moved", message);
    }
    if (messages.length > 0 || copies.length > 0) this.#scheduleAck();
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

  /** scheduleSync asks for a sync every syncIntervalMs (jittered) while connected. */
  #scheduleSync(): void {
    clearTimeout(this.#syncTimer);
    if (this.#o.syncIntervalMs <= 0) return;
    const jitter = 0.8 + Math.random() * 0.4;
    this.#syncTimer = setTimeout(() => {
      if (this.#state !== "connected") return;
      this.sync();
      this.#scheduleSync();
    }, this.#o.syncIntervalMs * jitter);
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
