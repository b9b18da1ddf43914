import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import test, { type ExecutionContext } from "ava";
import { generateKeyPair, type JWK, SignJWT } from "jose";
import { WebSocketServer } from "ws";
import { ChatClient, type ChatClientError } from "../../client/index.ts";
import { DEV_AUDIENCE, type DevIssuer, startDevIssuer } from "../../dev/issuer.ts";
import {
  ClientFrameSchema,
  ErrorCode,
  type ServerFrame,
  ServerFrameSchema,
} from "../../gen/chat/v1/client_pb.ts";
import { createJwtVerifier } from "../../services/gateway/auth.ts";
import type { LocalRegion } from "../../services/region/region.ts";
import { RawSocket } from "../support/raw-socket.ts";
import { within, withRegion } from "../support/region.ts";

/**
 * An identity provider that can misbehave: a real HTTP server publishing the dev issuer's
 * JSON Web Key Set, switchable to answer 500, to hang (longer than the gateway's fetch
 * timeout), to answer something that is not a key set, or to stop listening altogether
 * (connection refused).
 */
type Mode = "ok" | "500" | "hang" | "not json" | "not a key set";

class FlakyJwks {
  mode: Mode = "ok";
  /** requests counts the JWKS fetches that reached the server. */
  requests = 0;
  readonly #jwks: { keys: JWK[] };
  readonly #server: Server;
  #port = 0;
  #listening = false;

  private constructor(jwks: { keys: JWK[] }) {
    this.#jwks = jwks;
    this.#server = createServer((req, res) => {
      this.requests++;
      if (req.url !== "/.well-known/jwks.json") {
        res.writeHead(404).end();
        return;
      }
      switch (this.mode) {
        case "ok":
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify(this.#jwks));
          return;
        case "500":
          res.writeHead(500, { "content-type": "text/plain" }).end("internal error");
          return;
        case "hang":
          return; // never answers; the client's timeout must end it
        case "not json":
          res.writeHead(200, { "content-type": "application/json" }).end("<html>oops</html>");
          return;
        case "not a key set":
          res.writeHead(200, { "content-type": "application/json" }).end('{"hello":"world"}');
          return;
      }
    });
  }

  /** start serves `issuer`'s keys on an ephemeral port, stopped when the test ends. */
  static async start(t: ExecutionContext, issuer: DevIssuer): Promise<FlakyJwks> {
    const jwks = (await (await fetch(issuer.jwksUrl)).json()) as { keys: JWK[] };
    const s = new FlakyJwks(jwks);
    await s.listen();
    t.teardown(() => s.stop());
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}/.well-known/jwks.json`;
  }

  get kid(): string {
    return this.#jwks.keys[0]?.kid ?? "";
  }

  /** listen (re)opens the server on its port. */
  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.#port, "127.0.0.1", () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    this.#listening = true;
  }

  /** stop closes the port: fetches now fail with connection refused. */
  async stop(): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

/** regionWithJwks starts a dev issuer, a flaky JWKS in front of it, and a region using both. */
async function regionWithJwks(
  t: ExecutionContext,
  mode: Mode = "ok",
): Promise<{ region: LocalRegion; issuer: DevIssuer; jwks: FlakyJwks }> {
  const issuer = await startDevIssuer();
  t.teardown(() => issuer.close());
  const jwks = await FlakyJwks.start(t, issuer);
  jwks.mode = mode;
  // The gateway is given the flaky JWKS; tokens are still signed by the dev issuer's key.
  const region = await withRegion(t, {
    issuer: {
      url: issuer.url,
      jwksUrl: jwks.url,
      issuer: issuer.issuer,
      token: (userId, ttl) => issuer.token(userId, ttl),
      operatorToken: (userId) => issuer.operatorToken(userId),
      trustInternal: (region, operator) => issuer.trustInternal(region, operator),
      close: async () => undefined,
    },
  });
  return { region, issuer, jwks };
}

function errorOf(f: ServerFrame) {
  if (f.kind.case !== "error") throw new Error(`expected an error frame, got ${f.kind.case}`);
  return f.kind.value;
}

/** helloWith sends a hello with `token` and returns the answer and how the socket closed. */
async function helloWith(
  t: ExecutionContext,
  region: LocalRegion,
  token: string,
  ms = 5_000,
): Promise<{ answer: ServerFrame; closed: { code: number; reason: string } | undefined }> {
  const raw = await RawSocket.open(t, region);
  raw.send(1, { case: "hello", value: { token, deviceId: "raw" } });
  const answer = await raw.answer(1, ms);
  if (answer.kind.case !== "welcome") {
    await raw.next(() => false, 3_000).catch(() => undefined);
  }
  return { answer, closed: raw.closed };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  await within(
    (async () => {
      while (!cond()) await new Promise((r) => setTimeout(r, 20));
    })(),
    ms,
    what,
  );
}

/** foreignToken is signed by a key the identity provider never published. */
async function foreignToken(issuer: DevIssuer, kid: string): Promise<string> {
  const { privateKey } = await generateKeyPair("ES256");
  return new SignJWT({})
    .setProtectedHeader({ alg: "ES256", kid })
    .setSubject("mallory")
    .setIssuer(issuer.issuer)
    .setAudience(DEV_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(privateKey);
}

const OUTAGES: Array<{ mode: Mode | "refused"; ms: number }> = [
  { mode: "500", ms: 5_000 },
  { mode: "refused", ms: 5_000 },
  { mode: "not json", ms: 5_000 },
  { mode: "not a key set", ms: 5_000 },
  // Slower than the gateway's JWKS fetch timeout: the hello is answered once that expires.
  { mode: "hang", ms: 8_000 },
];

for (const { mode, ms } of OUTAGES) {
  test(`a JWKS that ${mode === "refused" ? "refuses connections" : `answers ${mode}`} makes a hello UNAVAILABLE (1011), not 4401; the gateway recovers as soon as it is back`, async (t) => {
    const { region, issuer, jwks } = await regionWithJwks(t);
    if (mode === "refused") await jwks.stop();
    else jwks.mode = mode;

    // Cold cache, keys unobtainable: the server's problem, not the token's.
    const token = await issuer.token("alice");
    const down = await helloWith(t, region, token, ms);
    const err = errorOf(down.answer);
    t.is(err.code, ErrorCode.UNAVAILABLE, err.message);
    t.true(err.retryable);
    t.regex(err.message, /identity provider unavailable/);
    t.is(down.closed?.code, 1011);

    // A failed fetch leaves no cooldown behind: the next hello fetches again, and is welcomed
    // as soon as the keys can be had (well within jose's 30 s cooldown).
    if (mode === "refused") await jwks.listen();
    jwks.mode = "ok";
    const before = jwks.requests;
    const started = Date.now();
    const up = await helloWith(t, region, token);
    t.is(up.answer.kind.case, "welcome");
    t.true(jwks.requests > before);
    t.true(Date.now() - started < 5_000);
  });
}

test("the SDK rides out a JWKS outage: it retries with backoff, never reports an auth failure, and connects once the keys are back", async (t) => {
  const { region, jwks } = await regionWithJwks(t, "500");
  const client = new ChatClient({
    url: region.wsUrl,
    token: () => region.token("alice"),
    deviceId: "phone",
    reconnect: { initialMs: 50, maxMs: 300 },
  });
  t.teardown(() => client.close());
  const disconnects: Array<{ code: number; reason: string; reconnectInMs?: number }> = [];
  const errors: ChatClientError[] = [];
  client.on("disconnected", (d) => disconnects.push(d));
  client.on("error", (e) => errors.push(e));
  let refused: unknown;
  const connected = client.connect();
  connected.catch((e) => {
    refused = e;
  });

  // Many more attempts than the two a refused token gets, across two kinds of outage.
  await until(() => disconnects.length >= 4 || refused !== undefined, 10_000, "4 attempts");
  await jwks.stop();
  await until(() => disconnects.length >= 8 || refused !== undefined, 10_000, "8 attempts");
  t.is(refused, undefined, "connect() must not give up while the identity provider is down");
  t.is(client.state, "connecting");
  for (const d of disconnects) {
    t.is(d.code, 1011, `${d.code} ${d.reason}`);
    t.not(d.reconnectInMs, undefined);
  }
  t.true(errors.length > 0);
  for (const e of errors) {
    t.is(e.code, ErrorCode.UNAVAILABLE, e.message);
    t.true(e.retryable);
  }

  await jwks.listen();
  jwks.mode = "ok";
  const welcome = await within(connected, 5_000, "the connection once the JWKS is back");
  t.is(welcome.userId, "alice");
  t.is(client.state, "connected");
  t.truthy(await client.listConversations()); // and it works
  t.false(errors.some((e) => e.code === ErrorCode.UNAUTHENTICATED));
});

test("a token signed by a key the identity provider never published is still refused with 4401", async (t) => {
  const { region, issuer, jwks } = await regionWithJwks(t);

  // Same kid as the real key, wrong signature.
  const forged = await helloWith(t, region, await foreignToken(issuer, jwks.kid));
  t.is(errorOf(forged.answer).code, ErrorCode.UNAUTHENTICATED);
  t.is(forged.closed?.code, 4401);

  // A kid the set does not have (jose refetches the set once, then refuses).
  const unknown = await helloWith(t, region, await foreignToken(issuer, "not-a-published-kid"));
  t.is(errorOf(unknown.answer).code, ErrorCode.UNAUTHENTICATED);
  t.is(unknown.closed?.code, 4401);

  // The SDK still gives up on a refused token instead of retrying forever.
  const bad = await foreignToken(issuer, jwks.kid);
  const client = new ChatClient({
    url: region.wsUrl,
    token: () => bad,
    deviceId: "phone",
    reconnect: { initialMs: 50, maxMs: 300 },
  });
  t.teardown(() => client.close());
  const codes: number[] = [];
  client.on("disconnected", (d) => codes.push(d.code));
  const err = await t.throwsAsync<ChatClientError>(within(client.connect(), 5_000, "refusal"));
  t.is(err?.code, ErrorCode.UNAUTHENTICATED);
  t.deepEqual(codes, [4401, 4401]);
  t.is(client.state, "closed");
});

test("the verifier bounds a JWKS fetch and does not cache the failure", async (t) => {
  const issuer = await startDevIssuer();
  t.teardown(() => issuer.close());
  const jwks = await FlakyJwks.start(t, issuer);
  const verifier = createJwtVerifier({
    jwksUrl: jwks.url,
    issuer: issuer.issuer,
    audience: DEV_AUDIENCE,
    timeoutMs: 300,
  });
  const token = await issuer.token("alice");

  jwks.mode = "hang";
  const started = Date.now();
  const err = await t.throwsAsync(verifier.verify(token));
  t.true(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
  t.not(err?.name, "AuthError", "a JWKS that cannot be fetched is not a bad token");
  t.regex(err?.message ?? "", /identity provider unavailable/);

  jwks.mode = "500";
  const err500 = await t.throwsAsync(verifier.verify(token));
  t.not(err500?.name, "AuthError");

  jwks.mode = "ok";
  t.is((await verifier.verify(token)).userId, "alice");
});

test("the SDK treats an UNAVAILABLE answer to its hello as a failed attempt at once, even if the server keeps the socket open", async (t) => {
  // A stub gateway: it refuses the first hellos with UNAVAILABLE and leaves the socket open
  // (a proxy might), then welcomes.
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  let hellos = 0;
  wss.on("connection", (ws) => {
    ws.on("message", (data) => {
      const frame = fromBinary(ClientFrameSchema, new Uint8Array(data as Buffer));
      if (frame.kind.case !== "hello") return;
      hellos++;
      const kind: MessageInitShape<typeof ServerFrameSchema>["kind"] =
        hellos <= 3
          ? {
              case: "error",
              value: {
                code: ErrorCode.UNAVAILABLE,
                message: "identity provider unavailable: could not fetch signing keys; retry",
                retryable: true,
              },
            }
          : {
              case: "welcome",
              value: { userId: "alice", deviceId: "phone", region: "stub", sessionId: "s1" },
            };
      ws.send(
        toBinary(
          ServerFrameSchema,
          create(ServerFrameSchema, { requestId: frame.requestId, kind }),
        ),
      );
    });
  });
  const { port } = wss.address() as AddressInfo;
  const client = new ChatClient({
    url: `ws://127.0.0.1:${port}/ws`,
    token: () => "a-token",
    deviceId: "phone",
    reconnect: { initialMs: 50, maxMs: 200 },
    // Far longer than the test waits: the attempt must not end by timing out.
    connectTimeoutMs: 30_000,
  });
  t.teardown(() => client.close());
  const disconnects: Array<{ code: number; reason: string; reconnectInMs?: number }> = [];
  client.on("disconnected", (d) => disconnects.push(d));
  const welcome = await within(client.connect(), 5_000, "the welcome after three refusals");
  t.is(welcome.userId, "alice");
  t.is(hellos, 4);
  t.is(disconnects.length, 3);
  for (const d of disconnects) {
    t.is(d.code, 1011);
    t.regex(d.reason, /identity provider unavailable/);
    t.not(d.reconnectInMs, undefined);
  }
});
