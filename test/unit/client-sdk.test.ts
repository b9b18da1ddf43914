import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import test, { type ExecutionContext } from "ava";
import { ChatClient, type ChatClientOptions, MemoryStateStore } from "../../client/index.ts";
import {
  type ClientFrame,
  ClientFrameSchema,
  type Hello,
  ServerFrameSchema,
} from "../../gen/chat/v1/client_pb.ts";
import { type Message, type MessageDraft, MessageSchema } from "../../gen/chat/v1/types_pb.ts";

// The SDK against in-process fake gateways (no sockets): each FakeRegion answers hello, ping,
// send and list_conversations the way a gateway does, and the test decides when a region goes
// down, goes silent (a black hole) or tells its clients to leave.

type ServerKind = MessageInitShape<typeof ServerFrameSchema>["kind"];

/** FakeRegion is one region's gateway as the SDK sees it. */
class FakeRegion {
  readonly name: string;
  readonly net: FakeNetwork;
  readonly url: string;
  /** down refuses connections; silent accepts them but never answers (a black hole). */
  state: "up" | "down" | "silent" = "up";
  /** pongDelayMs makes the region far away. */
  pongDelayMs = 0;
  /** holdSends leaves sends unanswered (a region that cannot deliver). */
  holdSends = false;
  heartbeatMs = 60_000;
  readonly hellos: Hello[] = [];
  readonly sends: MessageDraft[] = [];
  readonly conns = new Set<FakeSocket>();
  #sendWaiters: Array<() => void> = [];

  constructor(name: string, net: FakeNetwork) {
    this.name = name;
    this.net = net;
    this.url = `ws://${name}.example/ws`;
  }

  handle(conn: FakeSocket, frame: ClientFrame): void {
    const k = frame.kind;
    switch (k.case) {
      case "ping":
        setTimeout(
          () => conn.push({ case: "pong", value: { nonce: k.value.nonce } }, frame.requestId),
          this.pongDelayMs,
        );
        return;
      case "hello":
        this.hellos.push(k.value);
        this.net.hellos.push(this.name);
        conn.push({
          case: "welcome",
          value: {
            userId: "ann",
            deviceId: k.value.deviceId,
            region: this.name,
            sessionId: `s${this.hellos.length}`,
            heartbeatIntervalMs: this.heartbeatMs,
            serverHlc: 1n << 16n,
          },
        });
        return;
      case "send":
        this.sends.push(k.value);
        for (const w of this.#sendWaiters.splice(0)) w();
        if (this.holdSends) return;
        conn.push(
          {
            case: "sendResult",
            value: message(this.name, BigInt(this.sends.length), k.value.clientMsgId, 9n << 16n),
          },
          frame.requestId,
        );
        return;
      case "listConversations":
        conn.push({ case: "conversationPage", value: {} }, frame.requestId);
        return;
      default:
        return;
    }
  }

  /** sendArrived resolves when the region receives its next send. */
  sendArrived(): Promise<void> {
    return new Promise((resolve) => this.#sendWaiters.push(resolve));
  }

  /** goAway sends every connection a go_away and closes it, as a draining gateway does. */
  goAway(value: { reason: string; reconnectAfterMs?: number; leaveRegion?: boolean }): void {
    for (const c of this.conns) {
      c.push({ case: "goAway", value });
      c.serverClose(1012, value.reason);
    }
  }
}

/** message is a text message from ann stored in `region` (its origin) at `seq`. */
function message(region: string, seq: bigint, clientMsgId: string, hlc: bigint): Message {
  return create(MessageSchema, {
    conversationId: "dm-1",
    originRegion: region,
    seq,
    senderId: "ann",
    clientMsgId,
    hlc,
    content: { case: "text", value: clientMsgId },
  });
}

/** FakeNetwork routes fake WebSockets to fake regions by URL. */
class FakeNetwork {
  readonly regions = new Map<string, FakeRegion>();
  /** hellos lists the region of every hello, in order: where the client connected. */
  readonly hellos: string[] = [];
  readonly WebSocket: typeof WebSocket;

  constructor(names: string[]) {
    for (const name of names) {
      const r = new FakeRegion(name, this);
      this.regions.set(r.url, r);
    }
    const net = this;
    this.WebSocket = class extends FakeSocket {
      constructor(url: string, protocols: string[]) {
        super(net, url, protocols);
      }
    } as unknown as typeof WebSocket;
  }

  region(name: string): FakeRegion {
    const r = [...this.regions.values()].find((x) => x.name === name);
    if (!r) throw new Error(`no region ${name}`);
    return r;
  }
}

type Listener = (ev: { data?: unknown; code?: number; reason?: string }) => void;

/** FakeSocket is the part of the WebSocket API the SDK uses, connected to a FakeRegion. */
class FakeSocket {
  binaryType = "blob";
  readyState = 0;
  readonly #region: FakeRegion | undefined;
  readonly #listeners = new Map<string, Listener[]>();

  constructor(net: FakeNetwork, url: string, _protocols: string[]) {
    const region = net.regions.get(url);
    this.#region = region;
    setTimeout(() => {
      if (this.readyState !== 0 || region?.state === "silent") return;
      if (!region || region.state === "down") {
        this.#fire("error", {});
        this.#closed(1006, "");
        return;
      }
      this.readyState = 1;
      region.conns.add(this);
      this.#fire("open", {});
    });
  }

  addEventListener(type: string, listener: Listener): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener]);
  }

  send(data: Uint8Array): void {
    const region = this.#region;
    if (this.readyState !== 1 || !region || region.state === "silent") return;
    region.handle(this, fromBinary(ClientFrameSchema, data));
  }

  close(code = 1000, reason = ""): void {
    if (this.readyState >= 2) return;
    this.readyState = 2;
    setTimeout(() => this.#closed(code, reason));
  }

  /** push sends a server frame to the client. */
  push(kind: ServerKind, requestId = 0): void {
    if (this.readyState !== 1 || this.#region?.state === "silent") return;
    const bytes = toBinary(ServerFrameSchema, create(ServerFrameSchema, { requestId, kind }));
    const data = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    setTimeout(() => this.#fire("message", { data }));
  }

  /** serverClose closes from the server's side, after the frames already pushed. */
  serverClose(code: number, reason: string): void {
    setTimeout(() => this.#closed(code, reason));
  }

  #closed(code: number, reason: string): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.#region?.conns.delete(this);
    this.#fire("close", { code, reason });
  }

  #fire(type: string, ev: { data?: unknown; code?: number; reason?: string }): void {
    for (const l of this.#listeners.get(type) ?? []) l(ev);
  }
}

/** client opens an SDK client on a fake network with timeouts short enough for a unit test. */
function client(
  t: ExecutionContext,
  net: FakeNetwork,
  opts: Partial<ChatClientOptions> = {},
): ChatClient {
  const c = new ChatClient({
    regions: [...net.regions.values()].map((r) => ({ name: r.name, url: r.url })),
    token: ({ region }) => `token-for-${region}`,
    deviceId: "phone",
    WebSocket: net.WebSocket,
    reconnect: { initialMs: 10, maxMs: 50 },
    probeTimeoutMs: 200,
    pongTimeoutMs: 100,
    ackTimeoutMs: 100,
    connectTimeoutMs: 200,
    ...opts,
  });
  t.teardown(() => c.close());
  return c;
}

test("a region that does not answer the probe in time is ranked last", async (t) => {
  const net = new FakeNetwork(["us-east-1", "eu-west-1", "ap-south-1"]);
  net.region("us-east-1").state = "silent";
  net.region("eu-west-1").pongDelayMs = 30;
  const c = client(t, net);
  const welcome = await c.connect();
  t.is(welcome.region, "ap-south-1");
  t.deepEqual(
    c.regionLatencies().map((r) => [r.name, r.rttMs !== undefined]),
    [
      ["ap-south-1", true],
      ["eu-west-1", true],
      ["us-east-1", false],
    ],
  );
  t.deepEqual(net.hellos, ["ap-south-1"], "the first attempt went to the nearest region");
});

test("the token provider is asked for the region being dialled", async (t) => {
  const net = new FakeNetwork(["us-east-1", "eu-west-1"]);
  net.region("us-east-1").state = "down";
  const c = client(t, net);
  await c.connect();
  t.is(net.region("eu-west-1").hellos[0]?.token, "token-for-eu-west-1");
});

test("go_away with leave_region moves to another region at once, and a waiting send is retried there with its id", async (t) => {
  const net = new FakeNetwork(["us-east-1", "eu-west-1"]);
  net.region("eu-west-1").pongDelayMs = 20;
  const east = net.region("us-east-1");
  east.holdSends = true;
  const c = client(t, net);
  await c.connect();
  t.is(c.region, "us-east-1");

  const arrived = east.sendArrived();
  const sending = c.send("dm-1", "are you there?", { clientMsgId: "m-1" });
  const switched = c.once("region");
  await arrived;
  east.goAway({ reason: "delivery canary failing", reconnectAfterMs: 60_000, leaveRegion: true });
  const [info] = await switched;
  t.deepEqual(info, {
    from: "us-east-1",
    to: "eu-west-1",
    reason: "region cannot deliver (delivery canary failing)",
  });
  const stored = await sending;
  t.is(stored.originRegion, "eu-west-1", "acknowledged by the region the client moved to");
  t.deepEqual(
    net.region("eu-west-1").sends.map((s) => s.clientMsgId),
    ["m-1"],
  );
  t.deepEqual(
    net.hellos,
    ["us-east-1", "eu-west-1"],
    "the region that asked to be left was skipped, and its 60 s hint ignored",
  );
});

test("a drain (go_away without leave_region) reconnects to the same region, with no region event", async (t) => {
  const net = new FakeNetwork(["us-east-1", "eu-west-1"]);
  net.region("eu-west-1").pongDelayMs = 20;
  const c = client(t, net);
  const switches: string[] = [];
  c.on("region", (r) => switches.push(r.to));
  await c.connect();
  const back = c.once("connected");
  net.region("us-east-1").goAway({ reason: "server restarting; reconnect", reconnectAfterMs: 0 });
  const [welcome] = await back;
  t.is(welcome.region, "us-east-1");
  t.deepEqual(net.hellos, ["us-east-1", "us-east-1"]);
  t.deepEqual(switches, ["us-east-1"], "only the first connection's event");
});

test("a region that goes silent is dropped as 'no answer' after a missed heartbeat pong", async (t) => {
  const net = new FakeNetwork(["us-east-1", "eu-west-1"]);
  net.region("eu-west-1").pongDelayMs = 20;
  const east = net.region("us-east-1");
  east.heartbeatMs = 50;
  const c = client(t, net);
  await c.connect();
  const dropped = c.once("disconnected");
  const moved = c.once("region");
  east.state = "silent";
  const [info] = await dropped;
  t.is(info.code, 1006);
  t.is(info.reason, "no answer");
  t.is(info.reconnectInMs, 0, "the lost region is retried at once");
  const [region] = await moved;
  t.is(region.to, "eu-west-1", "the retry got no answer either, so the client moved");
});

test("a copy of a send made in two regions is shown once, even after the app restarts", async (t) => {
  const state = new MemoryStateStore();
  const net = new FakeNetwork(["us-east-1", "eu-west-1"]);
  const east = net.region("us-east-1");
  const west = net.region("eu-west-1");
  west.pongDelayMs = 20;
  // The send m-1 landed in both regions (a retry crossed them). eu-west-1's clock is behind.
  const original = message("us-east-1", 1n, "m-1", 1000n << 16n);
  const copy = message("eu-west-1", 1n, "m-1", 5n << 16n);
  const later = message("eu-west-1", 2n, "m-2", 6n << 16n);

  const first = client(t, net, { state });
  const shown: string[] = [];
  first.on("message", (m) => shown.push(`${m.originRegion}:${m.clientMsgId}`));
  await first.connect();
  const got = first.once("message");
  for (const conn of east.conns) {
    conn.push({
      case: "deliveries",
      value: { entries: [{ region: "us-east-1", seq: 1n, message: original }] },
    });
  }
  await got;
  await first.close();

  // The app restarts, and this time reaches eu-west-1, whose inbox holds the copy.
  east.state = "down";
  const second = client(t, net, { state });
  second.on("message", (m) => shown.push(`${m.originRegion}:${m.clientMsgId}`));
  await second.connect();
  t.deepEqual(
    Object.fromEntries(Object.entries(west.hellos[0]?.inbox?.seqs ?? {})),
    { "us-east-1": 1n },
    "the hello presents the inbox position saved by the first run",
  );
  const next = second.once("message");
  for (const conn of west.conns) {
    conn.push({
      case: "deliveries",
      value: {
        entries: [
          { region: "eu-west-1", seq: 1n, message: copy },
          { region: "eu-west-1", seq: 2n, message: later },
        ],
      },
    });
  }
  await next;
  t.deepEqual(shown, ["us-east-1:m-1", "eu-west-1:m-2"], "the copy was not shown again");

  await second.send("dm-1", "reply", { clientMsgId: "m-3" });
  t.true(
    (west.sends.at(-1)?.seenHlc ?? 0n) >= original.hlc,
    "a reply after a restart still sorts after what the device saw before it",
  );
});

test("a state saved before regions existed still loads", async (t) => {
  const state = new MemoryStateStore();
  state.save({ inbox: { "us-east-1": "4" }, pending: [] });
  const net = new FakeNetwork(["us-east-1"]);
  const c = client(t, net, { state });
  await c.connect();
  t.deepEqual(c.inbox(), new Map([["us-east-1", 4n]]));
  t.is(net.region("us-east-1").hellos[0]?.inbox?.seqs["us-east-1"], 4n);
});

test("a client is given url or regions, not both, and regions are named once each", (t) => {
  const base = { token: () => "t", deviceId: "phone" };
  t.throws(
    () => new ChatClient({ ...base, url: "ws://a/ws", regions: [{ name: "a", url: "ws://a/ws" }] }),
    { message: /not both/ },
  );
  t.throws(() => new ChatClient(base), { message: /needs a url or a list of regions/ });
  t.throws(() => new ChatClient({ ...base, regions: [] }), { message: /must not be empty/ });
  t.throws(
    () =>
      new ChatClient({
        ...base,
        regions: [
          { name: "a", url: "ws://a/ws" },
          { name: "a", url: "ws://b/ws" },
        ],
      }),
    { message: /region a is listed twice/ },
  );
});
