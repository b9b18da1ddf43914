import { createPrivateKey, type KeyObject } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http2";
import { SignJWT } from "jose";
import { PushPlatform } from "../../../gen/chat/v1/types_pb.ts";
import type { Logger } from "../../shared/logger.ts";
import { apnsCollapseId } from "./apns-push.ts";
import { H2Client, parseJson } from "./h2-client.ts";
import type { PushNote, PushOutcome, PushProvider, PushTarget } from "./push-provider.ts";
import {
  type Attempt,
  type Clock,
  DEFAULT_RETRY,
  parseRetryAfter,
  type RetryPolicy,
  reported,
  SYSTEM_CLOCK,
  withRetries,
} from "./retry.ts";

/** FCM_SCOPE is the one OAuth scope sending needs. */
export const FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging";
export const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";
export const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/** ServiceAccount is what sending needs of a Google service-account key. */
export interface ServiceAccount {
  clientEmail: string;
  /** privateKey is the key's RSA private key, PEM. */
  privateKey: string;
  privateKeyId?: string;
  /** tokenUri is where the key's assertions are exchanged for access tokens. */
  tokenUri: string;
}

/**
 * TokenError is a failed token request; `retryable` when another try may succeed (the token
 * endpoint was unreachable, throttled or failing), not when it refused the key.
 */
export class TokenError extends Error {
  override name = "TokenError";
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean) {
    super(message);
    this.retryable = retryable;
  }
}

/** ASSERTION_LIFETIME_S is the assertion's lifetime: Google takes at most an hour. */
const ASSERTION_LIFETIME_S = 3_600;
/** REFRESH_MARGIN_MS: an access token is replaced this long before it expires. */
const REFRESH_MARGIN_MS = 5 * 60_000;

/**
 * GoogleAccessTokens gets OAuth2 access tokens for a service account with the JWT bearer grant
 * (RFC 7523, as Google's "OAuth 2.0 for server to server applications" describes it): an RS256
 * assertion `{iss: client_email, scope, aud: token endpoint, iat, exp ≤ iat + 1 h}` is POSTed
 * form-encoded to the token endpoint. The token is cached until shortly before it expires, and
 * concurrent sends share one request for it.
 */
export class GoogleAccessTokens {
  readonly #account: ServiceAccount;
  readonly #key: KeyObject;
  readonly #url: URL;
  readonly #http: H2Client;
  readonly #clock: Clock;
  #cached: { token: string; refreshAtMs: number } | undefined;
  #pending: Promise<string> | undefined;
  /** requests counts token requests, for tests. */
  requests = 0;

  constructor(
    account: ServiceAccount,
    opts: { tokenUrl?: string; ca?: string | Buffer; clock?: Clock } = {},
  ) {
    this.#account = account;
    this.#key = createPrivateKey(account.privateKey);
    this.#url = new URL(opts.tokenUrl ?? account.tokenUri);
    // Minted about hourly: no reason to keep that connection open in between.
    this.#http = new H2Client(this.#url.origin, { ca: opts.ca, idleMs: 30_000 });
    this.#clock = opts.clock ?? SYSTEM_CLOCK;
  }

  /** token returns a valid access token, asking for a new one only when needed. */
  token(timeoutMs: number): Promise<string> {
    const c = this.#cached;
    if (c && this.#clock.now() < c.refreshAtMs) return Promise.resolve(c.token);
    this.#pending ??= this.#fetch(timeoutMs).finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  /** invalidate drops `token` after the service refused it (401), unless already replaced. */
  invalidate(token: string): void {
    if (this.#cached?.token === token) this.#cached = undefined;
  }

  close(): Promise<void> {
    return this.#http.close();
  }

  async #fetch(timeoutMs: number): Promise<string> {
    this.requests++;
    const nowS = Math.floor(this.#clock.now() / 1000);
    const header: { alg: string; typ: string; kid?: string } = { alg: "RS256", typ: "JWT" };
    if (this.#account.privateKeyId) header.kid = this.#account.privateKeyId;
    const assertion = await new SignJWT({ scope: FCM_SCOPE })
      .setProtectedHeader(header)
      .setIssuer(this.#account.clientEmail)
      .setAudience(this.#url.href)
      .setIssuedAt(nowS)
      .setExpirationTime(nowS + ASSERTION_LIFETIME_S)
      .sign(this.#key);
    let res: Awaited<ReturnType<H2Client["request"]>>;
    try {
      res = await this.#http.request({
        method: "POST",
        path: this.#url.pathname + this.#url.search,
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: JWT_BEARER, assertion }).toString(),
        timeoutMs,
      });
    } catch (err) {
      throw new TokenError(`token endpoint: ${(err as Error).message}`, true);
    }
    const body = parseJson(res.body) as {
      access_token?: unknown;
      expires_in?: unknown;
      error?: unknown;
      error_description?: unknown;
    };
    if (res.status !== 200 || typeof body?.access_token !== "string") {
      // {"error":"invalid_grant","error_description":"Invalid JWT Signature."} and the like.
      const why = [body?.error, body?.error_description].filter((x) => typeof x === "string");
      throw new TokenError(
        `token endpoint answered ${res.status}${why.length ? ` ${why.join(": ")}` : ""}`,
        res.status === 429 || res.status >= 500,
      );
    }
    const lifetimeMs = (typeof body.expires_in === "number" ? body.expires_in : 3_600) * 1000;
    const margin = Math.min(REFRESH_MARGIN_MS, lifetimeMs / 2);
    this.#cached = {
      token: body.access_token,
      refreshAtMs: this.#clock.now() + lifetimeMs - margin,
    };
    return body.access_token;
  }
}

/** FcmOptions configure FcmPushProvider; the defaults are production's. */
export interface FcmOptions {
  projectId: string;
  serviceAccount: ServiceAccount;
  /** endpoint is FCM's origin (FCM_ENDPOINT). */
  endpoint?: string;
  /** tokenUrl overrides the key's token_uri (FCM_TOKEN_URL). */
  tokenUrl?: string;
  /** ca replaces the trusted roots, for tests against a local server. */
  ca?: string | Buffer;
  retry?: Partial<RetryPolicy>;
  clock?: Clock;
  log?: Logger;
}

/** FcmError is FCM v1's error body: a google.rpc.Status with FCM's and BadRequest details. */
interface FcmErrorBody {
  error?: {
    code?: number;
    message?: string;
    status?: string;
    details?: Array<{
      "@type"?: string;
      errorCode?: string;
      fieldViolations?: Array<{ field?: string; description?: string }>;
    }>;
  };
}

/**
 * FcmPushProvider sends through the FCM HTTP v1 API:
 * `POST {endpoint}/v1/projects/{project}/messages:send` with an OAuth2 access token of a
 * service account (GoogleAccessTokens). Each note is a notification message with the note's
 * data, high priority on Android (a chat message is worth waking the device for), the
 * collapse key both as FCM's collapse_key and as the notification's tag (a newer note of the
 * conversation replaces the older one), and the same for iOS apps that receive through FCM.
 *
 * Answers (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode): FcmError UNREGISTERED
 * (404) and INVALID_ARGUMENT about the token mean a dead token. A 404 without UNREGISTERED (a
 * wrong project) or an INVALID_ARGUMENT about the payload does not: forgetting every token
 * because of a configuration mistake would be far worse than a failed push. 401 gets a new
 * access token once; 429 and 5xx are retried, after Retry-After when given.
 */
export class FcmPushProvider implements PushProvider {
  readonly platforms = [PushPlatform.FCM] as const;
  readonly tokens: GoogleAccessTokens;
  readonly #http: H2Client;
  readonly #path: string;
  readonly #retry: RetryPolicy;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;

  constructor(opts: FcmOptions) {
    this.#clock = opts.clock ?? SYSTEM_CLOCK;
    this.tokens = new GoogleAccessTokens(opts.serviceAccount, {
      tokenUrl: opts.tokenUrl,
      ca: opts.ca,
      clock: this.#clock,
    });
    this.#http = new H2Client(opts.endpoint ?? "https://fcm.googleapis.com", { ca: opts.ca });
    this.#path = `/v1/projects/${encodeURIComponent(opts.projectId)}/messages:send`;
    this.#retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.#log = opts.log;
  }

  async send(target: PushTarget, note: PushNote): Promise<PushOutcome> {
    const body = JSON.stringify({ message: fcmMessage(target.token, note) });
    let refreshed = false;
    const tried = await withRetries(this.#retry, this.#clock, async (timeoutMs) => {
      // The token request (when one is due) and the send share the attempt's time.
      const started = performance.now();
      let token: string;
      try {
        token = await this.tokens.token(timeoutMs);
      } catch (err) {
        const e = err as TokenError;
        return e.retryable ? { retry: e.message } : { outcome: "failed", reason: e.message };
      }
      const left = Math.round(timeoutMs - (performance.now() - started));
      if (left <= 0) return { retry: `no time left after the token request` };
      let res: Awaited<ReturnType<H2Client["request"]>>;
      try {
        res = await this.#http.request({
          method: "POST",
          path: this.#path,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body,
          timeoutMs: left,
        });
      } catch (err) {
        return { retry: (err as Error).message };
      }
      const a = this.#judge(res.status, res.headers, res.body);
      if ("retry" in a && res.status === 401) {
        // The access token was revoked or expired early: one new one, at once.
        if (refreshed) return { outcome: "failed", reason: a.retry };
        refreshed = true;
        this.tokens.invalidate(token);
      }
      return a;
    });
    return reported(tried, "fcm", target.token, this.#log);
  }

  close(): Promise<void> {
    return Promise.all([this.#http.close(), this.tokens.close()]).then(() => undefined);
  }

  #judge(status: number, headers: IncomingHttpHeaders, text: string): Attempt {
    if (status === 200) return { outcome: "sent" };
    const err = (parseJson(text) as FcmErrorBody | undefined)?.error;
    const details = Array.isArray(err?.details) ? err.details : [];
    const fcmCode = details.find((d) =>
      d["@type"]?.endsWith("google.firebase.fcm.v1.FcmError"),
    )?.errorCode;
    const fields = details
      .filter((d) => d["@type"]?.endsWith("google.rpc.BadRequest"))
      .flatMap((d) => d.fieldViolations ?? [])
      .map((v) => v.field);
    const reason = `${status} ${fcmCode ?? err?.status ?? ""} ${err?.message ?? ""}`.trim();
    if (fcmCode === "UNREGISTERED") return { outcome: "invalid-token", reason };
    if (status === 400 && (fcmCode === "INVALID_ARGUMENT" || err?.status === "INVALID_ARGUMENT")) {
      // The same code covers a bad payload; only one about the token says the token is dead.
      const aboutToken = fields.length
        ? fields.includes("message.token")
        : /registration token/i.test(err?.message ?? "");
      return { outcome: aboutToken ? "invalid-token" : "failed", reason };
    }
    // THIRD_PARTY_AUTH_ERROR is a 401 about the APNs credentials in Firebase, not ours.
    if (status === 401 && fcmCode !== "THIRD_PARTY_AUTH_ERROR") {
      return { retry: reason, afterMs: 0 };
    }
    if (status === 429 || status >= 500) {
      return { retry: reason, afterMs: parseRetryAfter(headers["retry-after"], this.#clock.now()) };
    }
    return { outcome: "failed", reason };
  }
}

/** fcmMessage is the v1 Message for one device. */
export function fcmMessage(token: string, note: PushNote) {
  return {
    token,
    notification: { title: note.title, body: note.body },
    data: note.data,
    android: {
      priority: "high",
      collapse_key: note.collapseKey,
      notification: { tag: note.collapseKey },
    },
    apns: {
      headers: { "apns-collapse-id": apnsCollapseId(note.collapseKey), "apns-priority": "10" },
      payload: { aps: { "thread-id": note.conversationId } },
    },
  };
}
