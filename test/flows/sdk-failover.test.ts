import test, { type ExecutionContext } from "ava";
import { ChatClient, ChatClientError, type ChatClientOptions } from "../../client/index.ts";
import { TcpProxy } from "../../dev/tcp-proxy.ts";
import { ErrorCode } from "../../gen/chat/v1/client_pb.ts";
import type { LocalRegion } from "../../services/region/region.ts";
import { within, withRegion } from "../support/region.ts";
import { Terminal } from "../support/terminal.ts";
import { ROOT } from "../support/tools.ts";

// Two independent regions, each behind its own proxy, so a test can make one far away, cut it
// or turn it into a black hole. They do not replicate to each other: these tests are about how
// the SDK picks and leaves regions, not about what the regions hold.

type RegionName = "us-east-1" | "eu-west-1";

interface Regions {
  east: LocalRegion;
  west: LocalRegion;
  /** proxy is the way in to each region. */
  proxy: Record<RegionName, TcpProxy>;
}

async function twoRegions(t: ExecutionContext): Promise<Regions> {
  const [east, west] = await Promise.all([
    withRegion(t, { env: { CHAT_REGION: "us-east-1" } }),
    withRegion(t, { env: { CHAT_REGION: "eu-west-1" } }),
  ]);
  const proxy: Record<RegionName, TcpProxy> = {
    "us-east-1": await TcpProxy.start(east.wsUrl),
    "eu-west-1": await TcpProxy.start(west.wsUrl),
  };
  for (const p of Object.values(proxy)) t.teardown(() => p.close());
  return { east, west, proxy };
}

/**
 * failoverClient opens a client for both regions, listed in `order`. Each region runs its own
 * dev issuer and accepts only its tokens, so the token provider signs for the region dialled.
 */
function failoverClient(
  t: ExecutionContext,
  r: Regions,
  userId: string,
  order: RegionName[] = ["us-east-1", "eu-west-1"],
  opts: Partial<ChatClientOptions> = {},
): ChatClient {
  const client = new ChatClient({
    regions: order.map((name) => ({ name, url: r.proxy[name].url("/ws") })),
    token: ({ region }) => (region === "us-east-1" ? r.east : r.west).token(userId),
    deviceId: "phone",
    reconnect: { initialMs: 50, maxMs: 500 },
    probeTimeoutMs: 1_000,
    probeIntervalMs: 200,
    pongTimeoutMs: 500,
    ackTimeoutMs: 500,
    connectTimeoutMs: 1_000,
    ...opts,
  });
  t.teardown(() => client.close());
  return client;
}

/** regionEvents records every `region` event of a client. */
function regionEvents(client: ChatClient) {
  const seen: Array<{ from?: string; to: string; reason: string }> = [];
  client.on("region", (info) => seen.push(info));
  return seen;
}

test.serial("the client connects to the region with the lowest round-trip time", async (t) => {
  const r = await twoRegions(t);
  r.proxy["eu-west-1"].delay(150);
  // Listed first, but farther away: measured round-trip time wins over the configured order.
  // A generous probe timeout: this is about ranking, not about giving up on a slow region.
  const client = failoverClient(t, r, "alice", ["eu-west-1", "us-east-1"], {
    probeTimeoutMs: 10_000,
  });
  const switches = regionEvents(client);
  const welcome = await client.connect();
  t.is(welcome.region, "us-east-1");
  t.is(client.region, "us-east-1");
  t.deepEqual(switches, [{ from: undefined, to: "us-east-1", reason: "first connection" }]);
  const ranked = client.regionLatencies();
  t.deepEqual(
    ranked.map((l) => l.name),
    ["us-east-1", "eu-west-1"],
  );
  t.true(
    ranked.every((l) => l.rttMs !== undefined),
    "both regions answered the probe",
  );
});

test.serial(
  "a preferred region is used while it answers, and left like any other when it does not",
  async (t) => {
    const r = await twoRegions(t);
    r.proxy["eu-west-1"].delay(150);
    // Farther away, but preferred.
    const client = failoverClient(t, r, "carol", ["us-east-1", "eu-west-1"], {
      preferRegion: "eu-west-1",
      probeTimeoutMs: 10_000,
    });
    const welcome = await client.connect();
    t.is(welcome.region, "eu-west-1");
    const moved = client.once("region");
    r.proxy["eu-west-1"].cut();
    const [left] = await within(moved, 10_000, "the switch to us-east-1");
    t.like(left, { from: "eu-west-1", to: "us-east-1" });
    t.throws(() => failoverClient(t, r, "dave", undefined, { preferRegion: "ap-south-1" }), {
      message: /preferRegion "ap-south-1" is not one of the regions \(us-east-1, eu-west-1\)/,
    });
  },
);

test.serial(
  "a cut region is left at once for the other; the client stays there until that connection is lost",
  async (t) => {
    const r = await twoRegions(t);
    r.proxy["eu-west-1"].delay(50);
    const client = failoverClient(t, r, "bob");
    const switches = regionEvents(client);
    await client.connect();
    t.is(client.region, "us-east-1");

    const toWest = client.once("region");
    r.proxy["us-east-1"].cut();
    const [left] = await within(toWest, 10_000, "the switch to eu-west-1");
    t.is(left.from, "us-east-1");
    t.is(left.to, "eu-west-1");
    t.regex(left.reason, /connection lost \(1006/);
    t.deepEqual(
      (await client.listConversations()).conversations,
      [],
      "requests are answered by the new region",
    );

    // us-east-1 is back and nearer, but moving a working connection would only cost a replay:
    // nothing here can be awaited, so give a flapping client several probe intervals to move.
    r.proxy["us-east-1"].thaw();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await client.listConversations();
    t.is(client.region, "eu-west-1", "no move while connected");

    const back = client.once("region");
    r.proxy["eu-west-1"].cut();
    const [returned] = await within(back, 10_000, "the return to us-east-1");
    t.is(returned.from, "eu-west-1");
    t.is(returned.to, "us-east-1", "the next reconnection starts from the preferred region");
    t.deepEqual(
      switches.map((s) => s.to),
      ["us-east-1", "eu-west-1", "us-east-1"],
    );
  },
);

test.serial(
  "a region that stops answering (black hole) is noticed within seconds while a request waits",
  async (t) => {
    const r = await twoRegions(t);
    r.proxy["eu-west-1"].delay(50);
    const client = failoverClient(t, r, "carol", ["us-east-1", "eu-west-1"], {
      requestTimeoutMs: 30_000,
    });
    await client.connect();
    t.is(client.region, "us-east-1");

    const dropped = client.once("disconnected");
    const switched = client.once("region");
    r.proxy["us-east-1"].freeze();
    // The request goes into the black hole; its late answer makes the client ping, and the
    // missing pong condemns the connection long before the request's own 30 s deadline.
    const waiting = client.listConversations();
    const [lost] = await within(dropped, 5_000, "the dead connection to be dropped");
    t.deepEqual({ code: lost.code, reason: lost.reason }, { code: 1006, reason: "no answer" });
    const err = await t.throwsAsync(waiting, { instanceOf: ChatClientError });
    t.is(err?.code, ErrorCode.UNAVAILABLE);
    t.true(err?.retryable, "the app may retry the request");

    const [info] = await within(switched, 10_000, "the switch to eu-west-1");
    t.is(info.to, "eu-west-1");
    t.regex(info.reason, /no answer/);
    t.deepEqual((await client.listConversations()).conversations, [], "the retry is answered");
  },
);

test.serial("the terminal client shows the region it is in and when it switches", async (t) => {
  const r = await twoRegions(t);
  r.proxy["eu-west-1"].delay(50);
  const regions = `us-east-1=${r.proxy["us-east-1"].url("/ws")},eu-west-1=${r.proxy["eu-west-1"].url("/ws")}`;
  const issuers = `us-east-1=${r.east.issuer.url},eu-west-1=${r.west.issuer.url}`;
  const term = new Terminal(t, ["--user", "dora", "--regions", regions, "--issuer", issuers]);
  const at = await term.see("connected to us-east-1 as dora");
  r.proxy["us-east-1"].cut();
  await term.see(/connected to eu-west-1 \(switched from us-east-1: connection lost/, at);
  term.type("/list");
  await term.see("[eu-west-1] > ", at);
  t.pass();
});

test("the terminal client refuses a bad --regions list, naming the entry", async (t) => {
  const { spawnSync } = await import("node:child_process");
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ["client/cli.ts", "--user", "eve", ...args], {
      cwd: ROOT,
      encoding: "utf8",
    });
  const bad = run("--regions", "us-east-1=ws://127.0.0.1:8080/ws,eu-west-1");
  t.is(bad.status, 2);
  t.regex(bad.stderr, /bad region entry "eu-west-1"/);
  const both = run("--regions", "us-east-1=ws://127.0.0.1:8080/ws", "--url", "ws://h/ws");
  t.is(both.status, 2);
  t.regex(both.stderr, /--url .* or --regions, not both/);
});
