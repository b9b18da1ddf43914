// Local stand-ins for FCM (with Google's token endpoint) and APNs: HTTP/2 servers that check
// requests as the real services do and answer with their error shapes.
import { spawnSync } from "node:child_process";
import { generateKeyPairSync, type KeyObject, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import {
  createSecureServer,
  createServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeProtectedHeader, jwtVerify } from "jose";
import { FCM_SCOPE, JWT_BEARER } from "../../services/notification/push/fcm-push.ts";
import type { Clock } from "../../services/notification/push/retry.ts";

/** TlsPair is a server's key and its self-signed certificate, which clients take as their CA. */
export interface TlsPair {
  key: string;
  cert: string;
}

let certificate: TlsPair | undefined;

/**
 * testCertificate makes (once per process) a self-signed P-256 certificate for 127.0.0.1 and
 * localhost with the openssl CLI.
 */
export function testCertificate(): TlsPair {
  if (certificate) return certificate;
  const dir = mkdtempSync(join(tmpdir(), "push-tls-"));
  try {
    const r = spawnSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-days",
        "1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { encoding: "utf8" },
    );
    if ((r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
      throw new Error(
        "the push tests make a TLS certificate with the openssl CLI, which is not installed: apt-get install openssl",
      );
    }
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    certificate = {
      key: readFileSync(join(dir, "key.pem"), "utf8"),
      cert: readFileSync(join(dir, "cert.pem"), "utf8"),
    };
    return certificate;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** FakeClock is a Clock whose sleeps return at once, moving its time on and recording them. */
export class FakeClock implements Clock {
  t = Date.now();
  readonly slept: number[] = [];
  now = () => this.t;
  sleep = async (ms: number) => {
    this.slept.push(ms);
    this.t += ms;
  };
  random = () => 0.5;
  advance(ms: number) {
    this.t += ms;
  }
}

/** Answer is what a fake answers: `hang` never answers; `goaway` closes the connection after. */
export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
  hang?: boolean;
  goaway?: boolean;
}

/** Received is one request as a fake saw it. */
export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** session numbers the connection it came on, from 1. */
  session: number;
  atMs: number;
}

/** FakeH2Server is an HTTP/2 server (TLS with `tls`, else h2c) answering through `handle`. */
export class FakeH2Server {
  readonly received: Received[] = [];
  origin = "";
  sessions = 0;
  readonly #server: Http2Server;
  readonly #tls: boolean;
  readonly #open = new Set<Http2Session>();
  readonly #ids = new WeakMap<Http2Session, number>();

  constructor(tls: TlsPair | undefined, handle: (r: Received) => Answer | Promise<Answer>) {
    this.#tls = tls !== undefined;
    this.#server = tls ? createSecureServer({ key: tls.key, cert: tls.cert }) : createServer();
    this.#server.on("session", (s: Http2Session) => {
      this.#ids.set(s, ++this.sessions);
      this.#open.add(s);
      s.on("close", () => this.#open.delete(s));
    });
    this.#server.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", async () => {
        const r: Received = {
          method: String(headers[":method"]),
          path: String(headers[":path"]),
          headers,
          body: Buffer.concat(chunks).toString("utf8"),
          session: this.#ids.get(stream.session as Http2Session) ?? 0,
          atMs: Date.now(),
        };
        this.received.push(r);
        const a = await handle(r);
        if (a.hang || stream.destroyed) return;
        stream.respond({ ":status": a.status, "content-type": "application/json", ...a.headers });
        stream.end(a.body === undefined ? undefined : JSON.stringify(a.body));
        if (a.goaway) stream.session?.close();
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, "127.0.0.1", r));
    this.origin = `${this.#tls ? "https" : "http"}://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  /** dropConnections cuts every connection, as a network failure would. */
  async dropConnections(): Promise<void> {
    for (const s of this.#open) s.destroy();
  }

  async close(): Promise<void> {
    await this.dropConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

/** script hands out a token's scripted answers in turn, then `otherwise`. */
function next(script: Map<string, Answer[]>, key: string, otherwise: Answer): Answer {
  return script.get(key)?.shift() ?? otherwise;
}

/** fcmError is FCM v1's error body: a google.rpc.Status with its details. */
export function fcmError(code: number, status: string, message: string, details: unknown[] = []) {
  return { error: { code, message, status, details } };
}

/** FCM_ERRORS are answers FCM gives, as firebase.google.com documents them. */
export const FCM_ERRORS = {
  unregistered: {
    status: 404,
    body: fcmError(404, "NOT_FOUND", "Requested entity was not found.", [
      { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode: "UNREGISTERED" },
    ]),
  },
  invalidToken: {
    status: 400,
    body: fcmError(
      400,
      "INVALID_ARGUMENT",
      "The registration token is not a valid FCM registration token",
      [
        {
          "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
          errorCode: "INVALID_ARGUMENT",
        },
      ],
    ),
  },
  tokenFieldViolation: {
    status: 400,
    body: fcmError(400, "INVALID_ARGUMENT", "Invalid value at 'message.token' (TYPE_STRING)", [
      {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        fieldViolations: [
          { field: "message.token", description: "Invalid value at 'message.token' (TYPE_STRING)" },
        ],
      },
    ]),
  },
  badPayload: {
    status: 400,
    body: fcmError(
      400,
      "INVALID_ARGUMENT",
      "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
      [
        {
          "@type": "type.googleapis.com/google.rpc.BadRequest",
          fieldViolations: [
            {
              field: "message.data[0].value",
              description: "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
            },
          ],
        },
      ],
    ),
  },
  /** A wrong project id: 404 too, but no FcmError UNREGISTERED. */
  noProject: {
    status: 404,
    body: fcmError(404, "NOT_FOUND", "Requested entity was not found."),
  },
  senderMismatch: {
    status: 403,
    body: fcmError(403, "PERMISSION_DENIED", "SenderId mismatch", [
      {
        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
        errorCode: "SENDER_ID_MISMATCH",
      },
    ]),
  },
  quota: (retryAfter?: string): Answer => ({
    status: 429,
    headers: retryAfter === undefined ? {} : { "retry-after": retryAfter },
    body: fcmError(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric", [
      {
        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
        errorCode: "QUOTA_EXCEEDED",
      },
    ]),
  }),
  unavailable: {
    status: 503,
    body: fcmError(503, "UNAVAILABLE", "The service is currently unavailable.", [
      { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode: "UNAVAILABLE" },
    ]),
  },
  unauthenticated: {
    status: 401,
    body: fcmError(
      401,
      "UNAUTHENTICATED",
      "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
    ),
  },
} satisfies Record<string, Answer | ((s?: string) => Answer)>;

/** ServiceAccountKeys are a service account made for a test: its RSA key pair and JSON key. */
export function serviceAccountKeys(projectId = "chat-test") {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const clientEmail = `push@${projectId}.iam.gserviceaccount.com`;
  return {
    publicKey,
    projectId,
    clientEmail,
    privateKeyId: "8f1c0ffee0ddba11",
    privateKey: pem,
    /** json is the key as FCM_SERVICE_ACCOUNT holds it, token_uri pointing at `tokenUri`. */
    json: (tokenUri: string) =>
      JSON.stringify({
        type: "service_account",
        project_id: projectId,
        private_key_id: "8f1c0ffee0ddba11",
        private_key: pem,
        client_email: clientEmail,
        client_id: "100000000000000000001",
        token_uri: tokenUri,
      }),
  };
}

/** SentFcm is a message FCM accepted or refused, with the access token it came with. */
export interface SentFcm {
  accessToken: string;
  // biome-ignore lint/suspicious/noExplicitAny: a JSON body the test compares whole
  message: any;
  atMs: number;
}

/**
 * FakeFcm is FCM v1 and Google's token endpoint (at /token) on one server. The token endpoint
 * verifies the assertion (signature, header, claims); sends must carry a token it issued and
 * not revoked. A device token's scripted answers come first, then 200. What does not check
 * out is recorded in `problems` (tests expect none) and answered 400.
 */
export class FakeFcm {
  readonly server: FakeH2Server;
  readonly sends: SentFcm[] = [];
  readonly issued: string[] = [];
  readonly revoked = new Set<string>();
  // biome-ignore lint/suspicious/noExplicitAny: JWT claims as sent
  readonly assertions: any[] = [];
  readonly problems: string[] = [];
  readonly script = new Map<string, Answer[]>();
  readonly tokenScript: Answer[] = [];
  expiresIn = 3599;
  readonly keys: ReturnType<typeof serviceAccountKeys>;
  readonly clock: Clock;

  /** With `h2c` it speaks HTTP/2 without TLS (http:// endpoints), else TLS with testCertificate. */
  constructor(
    keys: ReturnType<typeof serviceAccountKeys>,
    clock: Clock,
    opts: { h2c?: boolean } = {},
  ) {
    this.keys = keys;
    this.clock = clock;
    this.server = new FakeH2Server(opts.h2c ? undefined : testCertificate(), (r) =>
      this.#handle(r),
    );
  }

  get tokenUrl() {
    return `${this.server.origin}/token`;
  }

  async start() {
    await this.server.start();
    return this;
  }

  async #handle(r: Received): Promise<Answer> {
    if (r.method !== "POST") return this.#problem(`${r.method} ${r.path}`);
    if (r.path === "/token") return this.#token(r);
    if (r.path === `/v1/projects/${this.keys.projectId}/messages:send`) return this.#send(r);
    return { status: 404, body: fcmError(404, "NOT_FOUND", "Requested entity was not found.") };
  }

  async #token(r: Received): Promise<Answer> {
    if (r.headers["content-type"] !== "application/x-www-form-urlencoded") {
      return this.#problem(`token content-type ${r.headers["content-type"]}`);
    }
    const form = new URLSearchParams(r.body);
    if (form.get("grant_type") !== JWT_BEARER) {
      return this.#problem(`grant_type ${form.get("grant_type")}`);
    }
    try {
      const assertion = form.get("assertion") ?? "";
      const { payload, protectedHeader } = await jwtVerify(assertion, this.keys.publicKey, {
        algorithms: ["RS256"],
        issuer: this.keys.clientEmail,
        audience: this.tokenUrl,
        currentDate: new Date(this.clock.now()),
        requiredClaims: ["iat", "exp"],
      });
      if (protectedHeader.kid !== this.keys.privateKeyId) throw new Error("kid");
      if (payload.scope !== FCM_SCOPE) throw new Error(`scope ${payload.scope}`);
      if ((payload.exp as number) - (payload.iat as number) > 3600) throw new Error("exp > 1 h");
      this.assertions.push(payload);
    } catch (err) {
      this.problems.push(`assertion: ${(err as Error).message}`);
      return {
        status: 400,
        body: { error: "invalid_grant", error_description: "Invalid JWT Signature." },
      };
    }
    const scripted = this.tokenScript.shift();
    if (scripted) return scripted;
    const token = `ya29.test-${this.issued.length + 1}`;
    this.issued.push(token);
    return {
      status: 200,
      body: { access_token: token, expires_in: this.expiresIn, token_type: "Bearer" },
    };
  }

  #send(r: Received): Answer {
    const accessToken = /^Bearer (.+)$/.exec(String(r.headers.authorization))?.[1] ?? "";
    if (!this.issued.includes(accessToken) || this.revoked.has(accessToken)) {
      return FCM_ERRORS.unauthenticated;
    }
    if (r.headers["content-type"] !== "application/json") {
      return this.#problem(`send content-type ${r.headers["content-type"]}`);
    }
    // biome-ignore lint/suspicious/noExplicitAny: a JSON body
    let body: any;
    try {
      body = JSON.parse(r.body);
    } catch {
      return this.#problem("send body is not JSON");
    }
    const message = body?.message;
    if (typeof message?.token !== "string") return this.#problem("message.token missing");
    for (const [k, v] of Object.entries(message.data ?? {})) {
      if (typeof v !== "string") return this.#problem(`data ${k} is not a string`);
    }
    this.sends.push({ accessToken, message, atMs: r.atMs });
    return next(this.script, message.token, {
      status: 200,
      body: { name: `projects/${this.keys.projectId}/messages/0:${randomUUID()}` },
    });
  }

  #problem(what: string): Answer {
    this.problems.push(what);
    return { status: 400, body: fcmError(400, "INVALID_ARGUMENT", what) };
  }
}

/** ApnsKeys are an APNs signing key made for a test: the .p8 PEM and its public key. */
export function apnsKeys() {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return {
    publicKey: publicKey as KeyObject,
    key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    keyId: "ABC123DEFG",
    teamId: "DEF123GHIJ",
    topic: "com.example.chat",
  };
}

/** SentApns is a notification APNs took, with the provider token it came with. */
export interface SentApns {
  deviceToken: string;
  headers: IncomingHttpHeaders;
  // biome-ignore lint/suspicious/noExplicitAny: a JSON body the test compares whole
  payload: any;
  jwt: string;
  iat: number;
  session: number;
  atMs: number;
}

/**
 * FakeApns is APNs' provider API over TLS. It verifies the provider token (ES256 signature
 * with the team's key, header {alg, kid} and claims {iss, iat} only) and the headers, and
 * answers as APNs does: 403 ExpiredProviderToken for a token over an hour old, 429
 * TooManyProviderTokenUpdates when a connection's token changes within 20 minutes. A device
 * token's scripted answers come first, then 200.
 */
export class FakeApns {
  readonly server: FakeH2Server;
  readonly sends: SentApns[] = [];
  readonly problems: string[] = [];
  readonly script = new Map<string, Answer[]>();
  readonly #tokenOf = new Map<number, { jwt: string; iat: number }>();
  readonly keys: ReturnType<typeof apnsKeys>;
  readonly clock: Clock;

  constructor(keys: ReturnType<typeof apnsKeys>, clock: Clock) {
    this.keys = keys;
    this.clock = clock;
    this.server = new FakeH2Server(testCertificate(), (r) => this.#handle(r));
  }

  async start() {
    await this.server.start();
    return this;
  }

  async #handle(r: Received): Promise<Answer> {
    const answer = (status: number, reason: string, extra: object = {}): Answer => ({
      status,
      headers: { "apns-id": randomUUID() },
      body: { reason, ...extra },
    });
    if (r.method !== "POST") return answer(405, "MethodNotAllowed");
    const device = /^\/3\/device\/([0-9a-f]+)$/.exec(r.path)?.[1];
    if (!device) return answer(404, "BadPath");
    const jwt = /^bearer (.+)$/.exec(String(r.headers.authorization))?.[1];
    if (!jwt) return answer(403, "MissingProviderToken");
    let iat: number;
    try {
      const header = decodeProtectedHeader(jwt);
      if (Object.keys(header).sort().join() !== "alg,kid") throw new Error("header keys");
      const { payload } = await jwtVerify(jwt, this.keys.publicKey, {
        algorithms: ["ES256"],
        issuer: this.keys.teamId,
        currentDate: new Date(this.clock.now()),
        requiredClaims: ["iat"],
      });
      if (header.kid !== this.keys.keyId) throw new Error("kid");
      if (Object.keys(payload).sort().join() !== "iat,iss") throw new Error("claims");
      iat = payload.iat as number;
    } catch (err) {
      this.problems.push(`provider token: ${(err as Error).message}`);
      return answer(403, "InvalidProviderToken");
    }
    if (this.clock.now() / 1000 - iat > 3600) return answer(403, "ExpiredProviderToken");
    const before = this.#tokenOf.get(r.session);
    if (before && before.jwt !== jwt && iat - before.iat < 20 * 60) {
      return answer(429, "TooManyProviderTokenUpdates");
    }
    this.#tokenOf.set(r.session, { jwt, iat });
    if (r.headers["apns-topic"] !== this.keys.topic) return answer(400, "DeviceTokenNotForTopic");
    if (r.headers["apns-push-type"] !== "alert") return this.#problem("apns-push-type", answer);
    if (!["10", "5"].includes(String(r.headers["apns-priority"])))
      return answer(400, "BadPriority");
    const collapse = r.headers["apns-collapse-id"];
    if (collapse !== undefined && Buffer.byteLength(String(collapse)) > 64) {
      return answer(400, "BadCollapseId");
    }
    // biome-ignore lint/suspicious/noExplicitAny: a JSON body
    let payload: any;
    try {
      payload = JSON.parse(r.body);
    } catch {
      return answer(400, "PayloadEmpty");
    }
    if (typeof payload?.aps?.alert?.title !== "string") return this.#problem("aps.alert", answer);
    this.sends.push({
      deviceToken: device,
      headers: r.headers,
      payload,
      jwt,
      iat,
      session: r.session,
      atMs: r.atMs,
    });
    return next(this.script, device, { status: 200, headers: { "apns-id": randomUUID() } });
  }

  #problem(what: string, answer: (s: number, r: string) => Answer): Answer {
    this.problems.push(what);
    return answer(400, "BadRequest");
  }
}

/** APNS_ERRORS are answers APNs gives (developer.apple.com, handling error responses). */
export const APNS_ERRORS = {
  badDeviceToken: { status: 400, body: { reason: "BadDeviceToken" } },
  unregistered: { status: 410, body: { reason: "Unregistered", timestamp: 1_767_225_600_000 } },
  notForTopic: { status: 400, body: { reason: "DeviceTokenNotForTopic" } },
  tooManyRequests: { status: 429, body: { reason: "TooManyRequests" } },
  unavailable: { status: 503, body: { reason: "ServiceUnavailable" } },
  expiredProviderToken: { status: 403, body: { reason: "ExpiredProviderToken" } },
} satisfies Record<string, Answer>;
