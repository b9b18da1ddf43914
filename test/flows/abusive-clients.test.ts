import type { ExecutionContext } from "ava";
import test from "ava";
import { ErrorCode, type ServerFrame } from "../../gen/chat/v1/client_pb.ts";
import type { VersionVector } from "../../gen/chat/v1/types_pb.ts";
import type { LocalRegion } from "../../services/region/region.ts";
import { ConfigError, loadGatewayConfig } from "../../services/shared/config.ts";
import { RawSocket } from "../support/raw-socket.ts";
import { connect, operatorCall, within, withRegion } from "../support/region.ts";

// Each test here is a client that abuses one limit of the gateway, and what everyone else
// must still get while it does.

/** TEXT_16K is a message of the largest size a send may carry. */
const TEXT_16K = "x".repeat(16_384);

/**
 * seedHistory has `sender` write `count` messages of 16 KB into its direct conversation with
 * `peer`, from four devices at once (sends of one connection run one after another).
 */
async function seedHistory(
  t: ExecutionContext,
  region: LocalRegion,
  sender: string,
  peer: string,
  count: number,
): Promise<string> {
  const devices = await Promise.all(
    [0, 1, 2, 3].map((d) => connect(t, region, sender, `seeder-${d}`)),
  );
  const dm = await (devices[0] as (typeof devices)[0]).createDirect(peer);
  await Promise.all(
    devices.map(async (device, d) => {
      for (let i = d; i < count; i += devices.length) await device.send(dm.id, TEXT_16K);
    }),
  );
  return dm.id;
}

/** openAs opens a socket that can stop reading and says hello as `userId` with `inbox`. */
async function openAs(
  t: ExecutionContext,
  region: LocalRegion,
  userId: string,
  deviceId: string,
  inbox?: VersionVector,
): Promise<RawSocket> {
  const raw = await RawSocket.openStoppable(t, region);
  raw.send(1, { case: "hello", value: { token: await region.token(userId), deviceId, inbox } });
  await raw.next((f) => f.kind.case === "welcome");
  await raw.next((f) => f.kind.case === "syncState", 10_000);
  return raw;
}

/** inboxHead is where `userId`'s inbox stands now (what a device that read it all presents). */
async function inboxHead(
  t: ExecutionContext,
  region: LocalRegion,
  userId: string,
): Promise<VersionVector | undefined> {
  const raw = await RawSocket.open(t, region);
  raw.send(1, { case: "hello", value: { token: await region.token(userId), deviceId: "probe" } });
  const state = await raw.next((f) => f.kind.case === "syncState", 10_000);
  raw.ws.close();
  return state.kind.case === "syncState" ? state.kind.value.inboxHead : undefined;
}

/** devicesOf lists the devices of `userId` connected to the region's gateway. */
async function devicesOf(region: LocalRegion, userId: string): Promise<string[]> {
  const listed = (await operatorCall(region, "ListSessions", { userId })) as {
    sessions?: Array<{ deviceId: string }>;
  };
  return (listed.sessions ?? []).map((s) => s.deviceId);
}

/** historyReads counts the history pages persistence has read (finished reads, any outcome). */
async function historyReads(region: LocalRegion): Promise<number> {
  const persistence = region.services.find((s) => s.app.name === "persistence");
  if (!persistence) throw new Error("no persistence service in the region");
  const metric = await persistence.app.metrics.rpcDuration.get();
  return metric.values
    .filter(
      (v) =>
        v.metricName === "chat_rpc_duration_seconds_count" &&
        String(v.labels.method).endsWith("/ReadHistory"),
    )
    .reduce((sum, v) => sum + v.value, 0);
}

/** closedWith waits for a socket's close (reading what was written before it) and its code. */
async function closedWith(raw: RawSocket): Promise<number | undefined> {
  await raw.next(() => false, 10_000).catch(() => undefined);
  return raw.closed?.code;
}

test("clients that pipeline big history pages and never read are closed 1013, their work bounded, and others' sends all succeed", async (t) => {
  // Over loopback, as separate tasks call each other: the services' HTTP/2 sessions are part
  // of what the abuse must not exhaust.
  const region = await withRegion(t, { env: { FRAMES_PER_SECOND: "10000" }, calls: "loopback" });
  // 200 messages of 16 KB: a history page of 200 is 3.2 MB.
  const dm = await seedHistory(t, region, "trent", "mallory", 200);
  const head = await inboxHead(t, region, "mallory");
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const chat = await alice.createDirect("bob");
  const readsBefore = await historyReads(region);
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }, 20);
  t.teardown(() => clearInterval(sampler));

  // Eight devices of mallory's each ask for 64 pages of 3.2 MB, and read none of it.
  const bots = await Promise.all(
    Array.from({ length: 8 }, (_, d) => openAs(t, region, "mallory", `bot-${d}`, head)),
  );
  for (const bot of bots) {
    bot.stopReading();
    for (let i = 0; i < 64; i++) {
      bot.send(100 + i, { case: "getHistory", value: { conversationId: dm, limit: 200 } });
    }
  }

  // Meanwhile alice chats with bob. The SDK tries a send again when it is refused for now, so
  // its attempts tell whether any was refused.
  let attempts = 0;
  alice.on("attempt", () => attempts++);
  const sending = (async () => {
    const failures: string[] = [];
    for (let i = 0; i < 50; i++) {
      await alice.send(chat.id, `hi ${i}`).catch((err: Error) => failures.push(err.message));
    }
    return failures;
  })();

  // Each bot is closed as a slow reader: it reads what was written before the close, then 1013.
  const codes = new Map<string, Promise<number | undefined>>();
  await within(
    (async () => {
      while (codes.size < bots.length) {
        const connected = new Set(await devicesOf(region, "mallory"));
        bots.forEach((bot, d) => {
          if (connected.has(`bot-${d}`) || codes.has(`bot-${d}`)) return;
          bot.resumeReading();
          codes.set(`bot-${d}`, closedWith(bot));
        });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })(),
    20_000,
    "every slow reader to be closed",
  );
  t.deepEqual(await Promise.all(codes.values()), Array(bots.length).fill(1013));

  t.deepEqual(await within(sending, 20_000, "alice's sends"), [], "every send of alice succeeds");
  t.is(attempts, 50, "each at its first attempt: none was refused, even for now");
  const bobSaw = await bob.history(chat.id, { limit: 100 });
  t.is(bobSaw.messages.length, 50);

  // What the bots cost is bounded: a few pages each, not the 512 they asked for.
  const reads = (await historyReads(region)) - readsBefore;
  t.true(reads <= bots.length * 16, `persistence read ${reads} history pages for the bots`);
  const grewMb = (rssPeak - rssBefore) / 1e6;
  t.true(grewMb < 1_000, `the process grew by ${Math.round(grewMb)} MB`);
  t.log(`history pages read: ${reads}; memory growth: ${Math.round(grewMb)} MB`);
});

test("a user opening more connections than MAX_CONNECTIONS_PER_USER is refused with 4429; others are not", async (t) => {
  const region = await withRegion(t, { env: { MAX_CONNECTIONS_PER_USER: "3" } });
  const held: RawSocket[] = [];
  for (let d = 0; d < 3; d++) {
    const raw = await RawSocket.open(t, region);
    await raw.hello(region, "hoarder", `device-${d}`);
    held.push(raw);
  }

  const extra = await RawSocket.open(t, region);
  extra.send(1, {
    case: "hello",
    value: { token: await region.token("hoarder"), deviceId: "device-3" },
  });
  const refused = await extra.answer(1);
  if (refused.kind.case !== "error") return t.fail(`got ${refused.kind.case}`);
  t.is(refused.kind.value.code, ErrorCode.RESOURCE_EXHAUSTED);
  t.true(refused.kind.value.retryable, "it may pass once another device disconnects");
  t.regex(refused.kind.value.message, /connections/);
  await t.throwsAsync(
    extra.next(() => false),
    { message: /socket closed \(4429/ },
  );
  // The same device again, on a fresh connection: refused too (connections are counted).
  const again = await RawSocket.open(t, region);
  again.send(1, {
    case: "hello",
    value: { token: await region.token("hoarder"), deviceId: "device-0" },
  });
  await t.throwsAsync(
    again.next(() => false),
    { message: /socket closed \(4429/ },
  );

  // Everyone else connects as before, and the hoarder's devices carry on.
  const alice = await connect(t, region, "alice");
  await alice.createDirect("hoarder");
  held[0]?.send(7, { case: "ping", value: { nonce: 7n } });
  t.is((await (held[0] as RawSocket).answer(7)).kind.case, "pong");

  // A device that leaves makes room for another.
  held.pop()?.ws.close();
  const next = await within(
    (async () => {
      for (;;) {
        const raw = await RawSocket.open(t, region);
        raw.send(1, {
          case: "hello",
          value: { token: await region.token("hoarder"), deviceId: "device-4" },
        });
        const answer: ServerFrame = await raw.answer(1);
        if (answer.kind.case === "welcome") return answer;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })(),
    5_000,
    "a connection once one was closed",
  );
  t.is(next.kind.case, "welcome");
});

test("a history page is capped by bytes: the oldest messages are left out, has_more says so, and paging on loses nothing", async (t) => {
  const region = await withRegion(t, {
    env: { FRAMES_PER_SECOND: "10000", MAX_HISTORY_PAGE_BYTES: "262144" },
  });
  const dm = await seedHistory(t, region, "trent", "mallory", 40);
  const trent = await connect(t, region, "trent");

  const first = await trent.history(dm, { limit: 200 });
  const texts = first.messages.filter((m) => m.content.case === "text");
  t.true(texts.length >= 10 && texts.length < 16, `a page of ${texts.length} messages of 16 KB`);
  t.true(first.hasMore, "older messages are left for the next page");

  // Paging backwards from the first message of each page brings every message, once.
  const seen = [...first.messages];
  let page = first;
  while (page.hasMore) {
    const oldest = page.messages[0];
    if (!oldest) return t.fail("a page with has_more and no messages");
    page = await trent.history(dm, { limit: 200, before: oldest });
    seen.unshift(...page.messages);
  }
  const seqs = seen.filter((m) => m.content.case === "text").map((m) => Number(m.seq));
  t.is(seqs.length, 40);
  t.deepEqual(
    seqs,
    [...seqs].sort((a, b) => a - b),
    "in order",
  );
  t.is(new Set(seqs).size, 40, "each once");
});

test("requests beyond MAX_REQUESTS_IN_FLIGHT are refused (retryable); page requests beyond their cap wait, and all are answered", async (t) => {
  const region = await withRegion(t, {
    env: {
      FRAMES_PER_SECOND: "10000",
      MAX_REQUESTS_IN_FLIGHT: "8",
      MAX_PAGE_REQUESTS_IN_FLIGHT: "2",
    },
  });
  const dm = await seedHistory(t, region, "trent", "mallory", 20);
  const raw = await RawSocket.open(t, region);
  await raw.hello(region, "mallory", "greedy");
  for (let i = 0; i < 20; i++) {
    raw.send(100 + i, { case: "getHistory", value: { conversationId: dm, limit: 200 } });
  }
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => raw.answer(100 + i)));
  const kinds = answers.map((a) =>
    a.kind.case !== "error"
      ? a.kind.case
      : a.kind.value.code === ErrorCode.RESOURCE_EXHAUSTED
        ? "RESOURCE_EXHAUSTED"
        : `error ${a.kind.value.code}`,
  );
  t.deepEqual(kinds.slice(0, 8), Array(8).fill("history"), "the first eight are all answered");
  t.true(
    kinds.slice(8).every((k) => k === "RESOURCE_EXHAUSTED"),
    `the rest are refused: ${kinds.slice(8).join(",")}`,
  );
  t.true(answers.slice(8).every((a) => a.kind.case === "error" && a.kind.value.retryable));
  t.is(raw.closed, undefined, "the connection stays open");
});

test("a bad limit stops the gateway with a message naming it", (t) => {
  const err = t.throws(
    () =>
      loadGatewayConfig({
        AUTH_JWKS_URL: "https://idp.example/jwks",
        MAX_BUFFERED_BYTES: "1000",
        MAX_REQUESTS_IN_FLIGHT: "lots",
        MAX_HISTORY_PAGE_BYTES: "100",
        MAX_CONNECTIONS_PER_USER: "0",
      }),
    { instanceOf: ConfigError },
  );
  t.regex(err.message, /MAX_BUFFERED_BYTES: .*65536.*\(got "1000"\)/);
  t.regex(err.message, /MAX_REQUESTS_IN_FLIGHT: .*\(got "lots"\)/);
  t.regex(err.message, /MAX_HISTORY_PAGE_BYTES: must be at least 16384.*\(got "100"\)/);
  t.regex(err.message, /MAX_CONNECTIONS_PER_USER: .*\(got "0"\)/);
});
