import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { type CallOptions, type Client, Code, ConnectError } from "@connectrpc/connect";
import type { WebSocket } from "ws";
import {
  type ClientFrame,
  type ConversationPosition,
  ErrorCode,
  type Error as ErrorFrame,
  type Hello,
  type ServerFrame,
  ServerFrameSchema,
} from "../../gen/chat/v1/client_pb.ts";
import { ConnectReason } from "../../gen/chat/v1/events_pb.ts";
import type { MessagingService, Outcome, SendOutcome } from "../../gen/chat/v1/messaging_pb.ts";
import type { NotificationService } from "../../gen/chat/v1/notification_pb.ts";
import type { MessageDraft, Presence, VersionVector } from "../../gen/chat/v1/types_pb.ts";
import { isRetryableCode, toConnectError } from "../shared/errors.ts";
import type { HybridClock } from "../shared/hlc.ts";
import { randomId } from "../shared/ids.ts";
import type { Caller } from "../shared/interceptors.ts";
import { actingFor } from "../shared/internal-auth.ts";
import type { Logger } from "../shared/logger.ts";
import type { Bus } from "../shared/ports/bus.ts";
import type { Session } from "../shared/ports/session-registry.ts";
import { publishEvents, TOPICS } from "../shared/topics.ts";
import { type OpenSpan, openSpan, ROOT_CONTEXT, SpanKind, tracingOn } from "../shared/tracing.ts";
import { AuthError, AuthUnavailableError, type TokenVerifier } from "./auth.ts";
import {
  decodeClientFrame,
  type Encoding,
  encodeServerFrame,
  reencodeServerFrame,
  requestIdOf,
} from "./codec.ts";
import { capHistory, historyLimit } from "./history-cap.ts";
import { type LiveFrame, ReplayGate } from "./replay-gate.ts";
import { Turns } from "./turns.ts";

/** Close codes the gateway uses (besides the standard 1000 and 1009). */
export const CLOSE = {
  /** The token was missing, invalid or expired: get a fresh one, then reconnect. */
  unauthenticated: 4401,
  /** No hello within the deadline. */
  helloTimeout: 4408,
  /** An operator disconnected the device. */
  disconnected: 4000,
  /**
   * The client read too slowly: what it was sent and had not taken passed the connection's
   * budget (MAX_BUFFERED_BYTES). Reconnect and resume.
   */
  slowConsumer: 1013,
  /**
   * The user already has MAX_CONNECTIONS_PER_USER connections in the region: a
   * RESOURCE_EXHAUSTED error frame says so. Close one, or reconnect with backoff.
   */
  tooManyConnections: 4429,
  /**
   * The server could not open the session, through no fault of the client or its token (e.g.
   * the identity provider's signing keys could not be fetched): an UNAVAILABLE error frame
   * says why. Reconnect with backoff, with the same token.
   */
  unavailable: 1011,
  /** Graceful drain: reconnect (to another instance). */
  serviceRestart: 1012,
} as const;

/** ConnectionHost is what a connection needs from its gateway instance. */
export interface ConnectionHost {
  readonly instanceId: string;
  readonly region: string;
  readonly heartbeatIntervalMs: number;
  /** sessionTtlMs is how long a session (and a user's presence) lives unless renewed. */
  readonly sessionTtlMs: number;
  readonly maxFrameBytes: number;
  readonly framesPerSecond: number;
  /**
   * maxBufferedBytes is what a connection may have written and the client not yet taken; a
   * frame due beyond it closes the connection as a slow reader, whatever the frame.
   */
  readonly maxBufferedBytes: number;
  /** maxRequestsInFlight bounds a connection's requests running or waiting to run. */
  readonly maxRequestsInFlight: number;
  /**
   * maxPageRequestsInFlight bounds, among them, the requests answered with pages (see
   * PAGE_REQUESTS) that run at once; the others wait for their turn.
   */
  readonly maxPageRequestsInFlight: number;
  /** maxHistoryPageBytes bounds the messages of one history answer (see capHistory). */
  readonly maxHistoryPageBytes: number;
  readonly verifier: TokenVerifier;
  readonly messaging: Client<typeof MessagingService>;
  /** sendMessage and markDelivered go out batched with other connections' (see Batcher). */
  sendMessage(actor: Caller, draft: MessageDraft): Promise<SendOutcome>;
  markDelivered(actor: Caller, conversations: ConversationPosition[]): Promise<Outcome>;
  readonly notification: Client<typeof NotificationService>;
  readonly bus: Pick<Bus, "publish">;
  readonly clock: HybridClock;
  readonly log: Logger;
  /**
   * opened registers an authenticated connection (index and session registry), or refuses it
   * (the user has too many connections), saying why.
   */
  opened(conn: Connection): Promise<{ firstOfUser: boolean } | { refused: string }>;
  /** closed forgets a connection (one it never registered is no concern of it). */
  closed(conn: Connection): void;
  /** watch replaces the users whose presence a connection follows, with their current state. */
  watch(conn: Connection, users: Presence[]): void;
}

/** FRAME_RATE_FIELD is the error field of a frame refused for the connection's frame rate. */
const FRAME_RATE_FIELD = "frame_rate";

/**
 * PAGE_REQUESTS are the requests whose answers can be large (a history page of 200 messages
 * of 16 KB is 3.2 MB): they run a few at a time per connection, since what they bring back is
 * held in memory until it is sent. A sync (a whole inbox replayed) is one too, but its turn
 * lasts until its replay ends, which may take seconds under load: syncs take turns of their
 * own, one at a time, so that they never hold up history pages.
 */
const PAGE_REQUESTS = new Set<ClientFrame["kind"]["case"]>(["getHistory", "listConversations"]);

/**
 * Connection is one client WebSocket: it authenticates the hello, turns client frames into
 * RPCs on the user's behalf, and writes server frames back. Frames are checked before
 * anything else happens: a frame that does not parse or validate is answered with an error
 * frame and changes nothing; the connection carries on. Sends are processed in the order the
 * client sent them; other requests run concurrently and answer by request_id.
 */
export class Connection {
  readonly sessionId = randomId("s");
  readonly encoding: Encoding;
  readonly connectedAtMs = Date.now();
  userId = "";
  deviceId = "";
  lastFrameAtMs = Date.now();
  readonly #ws: WebSocket;
  readonly #host: ConnectionHost;
  #state: "hello" | "authenticating" | "open" | "closed" = "hello";
  #opened: Promise<boolean> | undefined;
  #sends: Promise<void> = Promise.resolve();
  #inflight = 0;
  /** pages are the turns of page requests; syncs those of syncs (see PAGE_REQUESTS). */
  readonly #pages: Turns;
  readonly #syncs = new Turns(1);
  /**
   * abandon aborts when the connection closes: the calls it made are cancelled and the
   * requests still waiting never run, since their answers could not be sent.
   */
  readonly #abandon = new AbortController();
  #idle: (() => void) | undefined;
  #tokens: number;
  #refilledAt = Date.now();
  #expiry: NodeJS.Timeout | undefined;
  #helloTimer: NodeJS.Timeout | undefined;
  /** gate holds live frames while a replay runs (see ReplayGate). */
  readonly #gate: ReplayGate;

  constructor(ws: WebSocket, encoding: Encoding, host: ConnectionHost) {
    this.#ws = ws;
    this.encoding = encoding;
    this.#host = host;
    this.#pages = new Turns(host.maxPageRequestsInFlight);
    this.#gate = new ReplayGate({
      write: (frame) => this.#deliverNow(frame),
      onTimeout: (held) =>
        host.log.warn(
          { session: this.sessionId, held },
          "replay did not end in time: releasing the live frames held for it",
        ),
    });
    this.#tokens = host.framesPerSecond * 2;
    this.#helloTimer = setTimeout(() => {
      if (this.#state === "hello") this.close(CLOSE.helloTimeout, "no hello received");
    }, host.heartbeatIntervalMs);
    ws.on("message", (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    ws.on("close", () => this.#onClose());
    ws.on("error", (err) => host.log.debug({ err, session: this.sessionId }, "socket error"));
  }

  /** session is this connection's session registry entry. */
  get session(): Session {
    return {
      userId: this.userId,
      deviceId: this.deviceId,
      sessionId: this.sessionId,
      instanceId: this.#host.instanceId,
      connectedAtMs: this.connectedAtMs,
    };
  }

  get isOpen(): boolean {
    return this.#state === "open";
  }

  /** send writes a server frame. */
  send(frame: ServerFrame): void {
    this.#write(encodeServerFrame(frame, this.encoding));
  }

  /**
   * deliver writes a frame that arrived already encoded as binary protobuf (shared by every
   * connection it goes to). `replay` frames are this connection's replay stream (addressed to
   * its session alone); the others are live, and pass the replay gate.
   */
  deliver(frame: LiveFrame, replay = false): void {
    if (!replay) {
      this.#gate.live(frame);
      return;
    }
    this.#deliverNow(frame);
    let decoded: ServerFrame;
    try {
      decoded = frame.decoded ?? fromBinary(ServerFrameSchema, frame.bytes);
    } catch {
      return; // the client was sent it as it came; nothing to learn from it here
    }
    this.#gate.replayed(decoded);
  }

  #deliverNow(frame: LiveFrame): void {
    if (this.encoding === "proto") {
      this.#write(frame.bytes);
      return;
    }
    frame.json ??= reencodeServerFrame(frame.bytes, "json") as string;
    this.#write(frame.json);
  }

  /** goAway tells the client to reconnect (to another region, with leaveRegion), then closes. */
  goAway(code: number, reason: string, reconnectAfterMs: number, leaveRegion = false): void {
    this.send(
      create(ServerFrameSchema, {
        kind: { case: "goAway", value: { reason, reconnectAfterMs, leaveRegion } },
      }),
    );
    this.close(code, reason);
  }

  /**
   * drain waits (up to `timeoutMs`) for requests in flight, then sends go_away and closes;
   * `leaveRegion` sends the client to another region (this one cannot deliver).
   */
  async drain(timeoutMs: number, reconnectAfterMs: number, leaveRegion = false): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    // Nothing more of a replay reaches a draining connection (its client replays after it
    // reconnects): stop holding for one, which also ends a sync waiting for its replay.
    this.#gate.close();
    if (this.#inflight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => {
          this.#idle = resolve;
        }),
        new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()),
      ]);
    }
    this.goAway(
      CLOSE.serviceRestart,
      leaveRegion
        ? "this region cannot deliver; reconnect to another region"
        : "server restarting; reconnect",
      reconnectAfterMs,
      leaveRegion,
    );
  }

  close(code: number, reason: string): void {
    // Nothing more can be sent on a closing socket: forget the connection now, not once the
    // client has completed the close (a slow reader may never read the close frame).
    this.#forget();
    if (this.#ws.readyState === this.#ws.CLOSED || this.#ws.readyState === this.#ws.CLOSING) return;
    this.#ws.close(code, reason.slice(0, 120));
    // A peer that never answers the close handshake must not hold the socket.
    setTimeout(() => this.#ws.terminate(), 5_000).unref();
  }

  /** terminate drops the socket at once (dead peer). */
  terminate(): void {
    this.#ws.terminate();
  }

  #write(data: Uint8Array | string): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    // Whatever is due (a delivery, an answer, an error, a pong): a client that has left more
    // than its budget unread is a slow reader, and holding more for it would let a few such
    // clients fill the process. So the budget bounds a connection's buffer to one frame beyond it.
    const buffered = this.#ws.bufferedAmount;
    if (buffered > this.#host.maxBufferedBytes) {
      this.#host.log.info(
        { user: this.userId, device: this.deviceId, session: this.sessionId, buffered },
        "closing a slow reader",
      );
      this.close(CLOSE.slowConsumer, "reading too slowly; reconnect and resume");
      return;
    }
    this.#ws.send(data);
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    this.lastFrameAtMs = Date.now();
    if (this.#state === "closed") return;
    if (data.length > this.#host.maxFrameBytes) {
      this.#error(
        requestIdOf(data, isBinary),
        ErrorCode.INVALID_ARGUMENT,
        `frame of ${data.length} bytes exceeds the ${this.#host.maxFrameBytes}-byte limit`,
      );
      return;
    }
    if (!this.#takeToken()) {
      // Answered on the frame's request id when readable, so that the request fails at once
      // (retryable) instead of waiting out the client's timeout.
      this.#error(
        requestIdOf(data, isBinary),
        ErrorCode.RESOURCE_EXHAUSTED,
        "too many frames; slow down",
        FRAME_RATE_FIELD,
        true,
      );
      return;
    }
    const decoded = decodeClientFrame(data, isBinary, this.encoding);
    if ("error" in decoded) {
      const e = decoded.error;
      if (this.#state === "hello" && e.field.startsWith("hello.token")) {
        // A hello without a usable token can never succeed: 4401 at once, as for a bad one.
        this.#error(e.requestId, ErrorCode.UNAUTHENTICATED, e.message, e.field);
        this.#state = "closed";
        this.close(CLOSE.unauthenticated, "token missing");
        return;
      }
      this.#error(e.requestId, ErrorCode.INVALID_ARGUMENT, e.message, e.field);
      return;
    }
    const frame = decoded.frame;
    if (frame.kind.case === "hello") {
      const hello = frame.kind.value;
      const span = tracingOn() ? this.#frameSpan("hello", frame.requestId) : undefined;
      if (!span) {
        void this.#hello(frame.requestId, hello);
        return;
      }
      void span.run(() => this.#hello(frame.requestId, hello)).finally(() => span.end());
      return;
    }
    if (frame.kind.case === "ping") {
      this.send(
        create(ServerFrameSchema, {
          requestId: frame.requestId,
          kind: { case: "pong", value: { nonce: frame.kind.value.nonce } },
        }),
      );
      return;
    }
    if (this.#state === "hello") {
      this.#error(frame.requestId, ErrorCode.UNAUTHENTICATED, "send hello first");
      return;
    }
    const maxInflight = this.#host.maxRequestsInFlight;
    if (this.#inflight >= maxInflight) {
      this.#error(
        frame.requestId,
        ErrorCode.RESOURCE_EXHAUSTED,
        `more than ${maxInflight} requests in flight; wait for answers`,
        "",
        true,
      );
      return;
    }
    this.#inflight++;
    const span = tracingOn()
      ? this.#frameSpan(frame.kind.case ?? "unknown", frame.requestId)
      : undefined;
    const run = async () => {
      const turns = PAGE_REQUESTS.has(frame.kind.case)
        ? this.#pages
        : frame.kind.case === "sync"
          ? this.#syncs
          : undefined;
      let turn = false;
      try {
        if ((await this.#opened) !== true) return;
        if (turns) {
          turn = await turns.take();
          if (!turn) return;
        }
        if (this.#abandon.signal.aborted) return;
        await this.#dispatch(frame);
      } catch (err) {
        span?.failRpc(err);
        this.#rpcError(frame.requestId, err);
      } finally {
        if (turn) turns?.give();
        this.#inflight--;
        if (this.#inflight === 0) this.#idle?.();
        span?.end();
      }
    };
    const go = span ? () => span.run(run) : run;
    if (frame.kind.case === "send") {
      this.#sends = this.#sends.then(go);
    } else {
      void go();
    }
  }

  /**
   * frameSpan starts the span of a client frame (tracing on), the root of a new trace: what
   * the gateway does for the frame (its RPCs, and all that follows from them, deliveries to
   * other users included) is in it.
   */
  #frameSpan(kind: string, requestId: number): OpenSpan | undefined {
    return openSpan(`frame ${kind}`, {
      kind: SpanKind.SERVER,
      parent: ROOT_CONTEXT,
      service: "gateway",
      attributes: {
        "chat.frame": kind,
        "chat.request_id": requestId,
        "chat.user_id": this.userId,
        "chat.device_id": this.deviceId,
        "chat.session_id": this.sessionId,
      },
    });
  }

  async #hello(requestId: number, hello: Hello): Promise<void> {
    if (this.#state !== "hello") {
      this.#error(requestId, ErrorCode.FAILED_PRECONDITION, "hello was already sent");
      return;
    }
    this.#state = "authenticating";
    clearTimeout(this.#helloTimer);
    const host = this.#host;
    let settle!: (ok: boolean) => void;
    this.#opened = new Promise((resolve) => {
      settle = resolve;
    });
    try {
      const identity = await host.verifier.verify(hello.token);
      if (this.#state !== "authenticating") return settle(false);
      this.userId = identity.userId;
      this.deviceId = hello.deviceId;
      this.#state = "open";
      // Live frames may come as soon as the session is registered: they wait for the replay.
      this.#gate.begin();
      const opened = await host.opened(this);
      if ("refused" in opened) {
        settle(false);
        this.#error(requestId, ErrorCode.RESOURCE_EXHAUSTED, opened.refused, "", true);
        this.close(CLOSE.tooManyConnections, "too many connections");
        return;
      }
      const { firstOfUser } = opened;
      if (identity.expiresAtMs !== undefined) {
        const ms = Math.max(0, identity.expiresAtMs - Date.now());
        this.#expiry = setTimeout(
          () =>
            this.goAway(CLOSE.unauthenticated, "token expired; reconnect with a fresh token", 0),
          Math.min(ms, 2 ** 31 - 1),
        );
      }
      this.send(
        create(ServerFrameSchema, {
          requestId,
          kind: {
            case: "welcome",
            value: {
              userId: this.userId,
              deviceId: this.deviceId,
              region: host.region,
              sessionId: this.sessionId,
              heartbeatIntervalMs: host.heartbeatIntervalMs,
              serverHlc: host.clock.now(),
            },
          },
        }),
      );
      settle(true);
      await this.#requestReplay(hello.inbox, ConnectReason.CONNECT);
      if (firstOfUser) await this.#presence(true);
      host.log.debug(
        { user: this.userId, device: this.deviceId, session: this.sessionId },
        "connected",
      );
    } catch (err) {
      settle(false);
      if (err instanceof AuthError) {
        this.#error(requestId, ErrorCode.UNAUTHENTICATED, err.message);
        this.close(CLOSE.unauthenticated, err.message);
        return;
      }
      if (err instanceof AuthUnavailableError) {
        // Not the token's fault: the client keeps its token and retries with backoff.
        host.log.warn(
          { err: err.cause, detail: err.detail, session: this.sessionId },
          "hello refused for now: identity provider unavailable",
        );
        this.#error(requestId, ErrorCode.UNAVAILABLE, err.message, "", true);
        this.close(CLOSE.unavailable, "identity provider unavailable");
        return;
      }
      host.log.error({ err, session: this.sessionId }, "hello failed");
      this.#error(requestId, ErrorCode.UNAVAILABLE, "could not open the session; retry", "", true);
      this.close(CLOSE.unavailable, "internal error");
    }
  }

  async #dispatch(frame: ClientFrame): Promise<void> {
    const { messaging, notification } = this.#host;
    const opts: CallOptions = actingFor(this.#caller());
    opts.signal = this.#abandon.signal;
    const id = frame.requestId;
    const k = frame.kind;
    const answer = (kind: MessageInitShape<typeof ServerFrameSchema>["kind"]) =>
      this.send(create(ServerFrameSchema, { requestId: id, kind }));
    const ok = () => {
      if (id !== 0) answer({ case: "ok", value: {} });
    };
    switch (k.case) {
      case "send": {
        const res = await this.#host.sendMessage(this.#caller(), k.value);
        if (res.error) throw outcomeError(res.error);
        return answer({ case: "sendResult", value: present(res.message) });
      }
      case "createConversation": {
        const res = await messaging.createConversation({ conversation: k.value }, opts);
        return answer({ case: "conversation", value: present(res.conversation) });
      }
      case "addMembers": {
        const res = await messaging.addMembers({ change: k.value }, opts);
        return answer({ case: "conversation", value: present(res.conversation) });
      }
      case "removeMembers": {
        const res = await messaging.removeMembers({ change: k.value }, opts);
        return answer({ case: "conversation", value: present(res.conversation) });
      }
      case "getConversation": {
        const res = await messaging.getConversation(
          { conversationId: k.value.conversationId },
          opts,
        );
        return answer({ case: "conversation", value: present(res.conversation) });
      }
      case "listConversations": {
        const res = await messaging.listConversations(
          { pageToken: k.value.pageToken, limit: k.value.limit },
          opts,
        );
        return answer({ case: "conversationPage", value: present(res.page) });
      }
      case "getHistory": {
        const maxBytes = this.#host.maxHistoryPageBytes;
        const query = { ...k.value, limit: historyLimit(k.value.limit, maxBytes) };
        const res = await messaging.getHistory({ query }, opts);
        const history = capHistory(present(res.history), maxBytes);
        return answer({ case: "history", value: history });
      }
      case "ack": {
        if (k.value.conversations.length > 0) {
          const res = await this.#host.markDelivered(this.#caller(), k.value.conversations);
          if (res.error) throw outcomeError(res.error);
        }
        return ok();
      }
      case "markRead": {
        await messaging.markRead({ read: k.value }, opts);
        return ok();
      }
      case "typing": {
        await messaging.setTyping({ typing: k.value }, opts);
        return ok();
      }
      case "watchPresence": {
        const res = await messaging.getPresence({ userIds: k.value.userIds }, opts);
        this.#host.watch(this, res.users);
        return answer({ case: "presenceSnapshot", value: { users: res.users } });
      }
      case "sync": {
        this.#gate.begin();
        await this.#requestReplay(k.value.inbox, ConnectReason.SYNC, id);
        // The replay comes over the delivery channel: the request keeps its page turn until
        // the replay has been sent, so a client cannot have many replays run at once.
        await this.#gate.idle();
        return;
      }
      case "registerPushToken": {
        await notification.registerPushToken(
          { platform: k.value.platform, token: k.value.token },
          opts,
        );
        return ok();
      }
      case "getReceipts": {
        const res = await messaging.getReceipts({ conversationId: k.value.conversationId }, opts);
        return answer({ case: "receipts", value: { receipts: res.receipts } });
      }
      default:
        this.#error(id, ErrorCode.UNIMPLEMENTED, `frame kind ${String(k.case)} is not supported`);
        return;
    }
  }

  /** caller is who this connection's requests act for. */
  #caller(): Caller {
    return { userId: this.userId, deviceId: this.deviceId };
  }

  /** requestReplay asks notification (via user.connected) to replay the inbox after `inbox`. */
  async #requestReplay(inbox: VersionVector | undefined, reason: ConnectReason, requestId = 0) {
    await publishEvents(this.#host.bus, TOPICS.userConnected, [
      {
        key: this.userId,
        value: {
          userId: this.userId,
          deviceId: this.deviceId,
          sessionId: this.sessionId,
          instanceId: this.#host.instanceId,
          inbox,
          reason,
          requestId,
        },
      },
    ]);
  }

  async #presence(online: boolean) {
    await publishEvents(this.#host.bus, TOPICS.presenceChanged, [
      {
        key: this.userId,
        value: {
          presence: {
            userId: this.userId,
            online,
            changedAtMs: BigInt(Date.now()),
            regions: online ? [this.#host.region] : [],
          },
          region: this.#host.region,
          ttlMs: this.#host.sessionTtlMs,
        },
      },
    ]);
  }

  #onClose(): void {
    this.#forget();
  }

  /**
   * forget ends the connection's life in the gateway, once: its pending work is abandoned
   * (calls cancelled, waiting requests dropped, frames held for a replay let go) and the host
   * forgets it, so nothing is routed to it any more.
   */
  #forget(): void {
    if (this.#abandon.signal.aborted) return;
    const wasOpen = this.#state === "open" || this.#state === "closed";
    this.#state = "closed";
    this.#abandon.abort();
    this.#pages.close();
    this.#syncs.close();
    this.#gate.close();
    clearTimeout(this.#expiry);
    clearTimeout(this.#helloTimer);
    if (wasOpen && this.userId !== "") this.#host.closed(this);
  }

  /** offline is called by the host when this was the user's last session in the region. */
  async offline(): Promise<void> {
    await this.#presence(false);
  }

  #takeToken(): boolean {
    const now = Date.now();
    const rate = this.#host.framesPerSecond;
    this.#tokens = Math.min(rate * 2, this.#tokens + ((now - this.#refilledAt) / 1000) * rate);
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  #rpcError(requestId: number, err: unknown): void {
    // A call the connection cancelled as it closed: there is no one to tell.
    if (this.#abandon.signal.aborted) return;
    // The same classification as every service's edge: a service that answered keeps its
    // code; a call that failed on the way (refused, reset, or cancelled: clients cannot cancel
    // requests, so the service behind was interrupted) is UNAVAILABLE and retryable, naming no
    // address (retrying a send with its client_msg_id is safe); anything else is internal.
    const ce = toConnectError(err);
    if (ce.code === Code.Internal || ce.code === Code.Unknown) {
      this.#host.log.error({ err, session: this.sessionId }, "request failed");
    }
    this.#error(
      requestId,
      ce.code as number as ErrorCode,
      ce.code === Code.Internal ? "internal error" : ce.rawMessage,
      "",
      isRetryableCode(ce.code),
    );
  }

  #error(requestId: number, code: ErrorCode, message: string, field = "", retryable = false): void {
    this.send(
      create(ServerFrameSchema, {
        requestId,
        kind: { case: "error", value: { code, message, field, retryable } },
      }),
    );
  }
}

/** outcomeError turns the error of one item of a batch into the error of a request. */
function outcomeError(e: ErrorFrame): ConnectError {
  return new ConnectError(e.message, e.code as number as Code);
}

/** present unwraps a response field the callee always sets. */
function present<T>(value: T | undefined): T {
  if (value === undefined)
    throw new ConnectError("a service answered without a result", Code.Internal);
  return value;
}
