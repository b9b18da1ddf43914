import { createHash, createPrivateKey, type KeyObject } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http2";
import { SignJWT } from "jose";
import { PushPlatform } from "../../../gen/chat/v1/types_pb.ts";
import type { Logger } from "../../shared/logger.ts";
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

export const APNS_PRODUCTION = "https://api.push.apple.com";
export const APNS_SANDBOX = "https://api.sandbox.push.apple.com";

/**
 * A provider token may be replaced no more often than every 20 minutes (else APNs answers 429
 * TooManyProviderTokenUpdates) and must be replaced within 60 (else 403 ExpiredProviderToken):
 * it is replaced after 50, leaving room for clock skew either way.
 */
export const PROVIDER_TOKEN_REFRESH_MS = 50 * 60_000;
export const PROVIDER_TOKEN_MIN_AGE_MS = 20 * 60_000;

/**
 * ApnsProviderTokens makes APNs provider tokens: ES256 JWTs `{alg, kid}` `{iss: team id, iat}`
 * signed with the .p8 key, each reused by every request until it is PROVIDER_TOKEN_REFRESH_MS
 * old. Concurrent sends share one signing.
 */
export class ApnsProviderTokens {
  readonly #key: KeyObject;
  readonly #keyId: string;
  readonly #teamId: string;
  readonly #clock: Clock;
  #current: { jwt: string; issuedAtMs: number } | undefined;
  #pending: Promise<string> | undefined;
  /** minted counts the tokens made, for tests. */
  minted = 0;

  constructor(opts: { key: string; keyId: string; teamId: string; clock?: Clock }) {
    this.#key = createPrivateKey(opts.key);
    this.#keyId = opts.keyId;
    this.#teamId = opts.teamId;
    this.#clock = opts.clock ?? SYSTEM_CLOCK;
  }

  token(): Promise<string> {
    const c = this.#current;
    if (c && this.#clock.now() - c.issuedAtMs < PROVIDER_TOKEN_REFRESH_MS) {
      return Promise.resolve(c.jwt);
    }
    this.#pending ??= this.#mint().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  /**
   * expired says APNs found `jwt` expired and whether a new token may be tried: only when it
   * is old enough to be replaced. A younger one "expired" means the clock is off, and a new
   * one would be no better and count against the replacement limit.
   */
  expired(jwt: string): boolean {
    const c = this.#current;
    if (!c || c.jwt !== jwt) return true; // Already replaced by another send.
    if (this.#clock.now() - c.issuedAtMs < PROVIDER_TOKEN_MIN_AGE_MS) return false;
    this.#current = undefined;
    return true;
  }

  async #mint(): Promise<string> {
    const issuedAtMs = this.#clock.now();
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid: this.#keyId })
      .setIssuer(this.#teamId)
      .setIssuedAt(Math.floor(issuedAtMs / 1000))
      .sign(this.#key);
    this.minted++;
    this.#current = { jwt, issuedAtMs };
    return jwt;
  }
}

/** ApnsOptions configure ApnsPushProvider; the defaults are production's. */
export interface ApnsOptions {
  /** key is the .p8 signing key (PEM), keyId its 10-character id, teamId the team's. */
  key: string;
  keyId: string;
  teamId: string;
  /** topic is the app's bundle id. */
  topic: string;
  /** endpoint is APNs' origin: APNS_PRODUCTION, or APNS_SANDBOX for development builds. */
  endpoint?: string;
  /** ca replaces the trusted roots, for tests against a local server. */
  ca?: string | Buffer;
  /** priority: 10 delivers at once, 5 when the device sees fit. */
  priority?: 10 | 5;
  retry?: Partial<RetryPolicy>;
  clock?: Clock;
  log?: Logger;
}

/**
 * ApnsPushProvider sends alert notifications through APNs' HTTP/2 provider API with token
 * authentication: `POST /3/device/<token>` on one long-lived connection (H2Client), with
 * apns-topic, apns-push-type alert, apns-priority and apns-collapse-id; the payload is
 * `{"aps":{"alert":{title,body},"thread-id":<conversation>}}` with the note's data as top-level
 * keys, so that the device groups a conversation's notes and a newer one replaces an older.
 *
 * Answers (developer.apple.com, "Handling error responses from APNs"): 410 (Unregistered,
 * ExpiredToken) and 400 BadDeviceToken mean a dead token; 403 ExpiredProviderToken gets a new
 * provider token once (ApnsProviderTokens.expired); 429 and 5xx are retried; anything else,
 * such as 400 DeviceTokenNotForTopic or 403 InvalidProviderToken, is a failure that a wrong
 * APNS_TOPIC or key would cause for every token, so no token is forgotten for it.
 */
export class ApnsPushProvider implements PushProvider {
  readonly platforms = [PushPlatform.APNS] as const;
  readonly tokens: ApnsProviderTokens;
  readonly http: H2Client;
  readonly #topic: string;
  readonly #priority: string;
  readonly #retry: RetryPolicy;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;

  constructor(opts: ApnsOptions) {
    this.#clock = opts.clock ?? SYSTEM_CLOCK;
    this.tokens = new ApnsProviderTokens({ ...opts, clock: this.#clock });
    this.http = new H2Client(opts.endpoint ?? APNS_PRODUCTION, { ca: opts.ca });
    this.#topic = opts.topic;
    this.#priority = String(opts.priority ?? 10);
    this.#retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.#log = opts.log;
  }

  async send(target: PushTarget, note: PushNote): Promise<PushOutcome> {
    const body = JSON.stringify(apnsPayload(note));
    const path = `/3/device/${encodeURIComponent(target.token)}`;
    let renewed = false;
    const tried = await withRetries(this.#retry, this.#clock, async (timeoutMs) => {
      const jwt = await this.tokens.token();
      let res: Awaited<ReturnType<H2Client["request"]>>;
      try {
        res = await this.http.request({
          method: "POST",
          path,
          headers: {
            authorization: `bearer ${jwt}`,
            "apns-topic": this.#topic,
            "apns-push-type": "alert",
            "apns-priority": this.#priority,
            "apns-collapse-id": apnsCollapseId(note.collapseKey),
          },
          body,
          timeoutMs,
        });
      } catch (err) {
        return { retry: (err as Error).message };
      }
      const reason = reasonOf(res.body);
      if (res.status === 403 && reason === "ExpiredProviderToken") {
        if (renewed || !this.tokens.expired(jwt)) {
          return { outcome: "failed", reason: "403 ExpiredProviderToken (is the clock right?)" };
        }
        renewed = true;
        return { retry: "403 ExpiredProviderToken", afterMs: 0 };
      }
      return this.#judge(res.status, res.headers, reason);
    });
    return reported(tried, "apns", target.token, this.#log);
  }

  close(): Promise<void> {
    return this.http.close();
  }

  #judge(status: number, headers: IncomingHttpHeaders, reason: string): Attempt {
    const why = `${status} ${reason}`.trim();
    if (status === 200) return { outcome: "sent" };
    if (status === 410 || (status === 400 && reason === "BadDeviceToken")) {
      return { outcome: "invalid-token", reason: why };
    }
    if (status === 429 || status >= 500) {
      return { retry: why, afterMs: parseRetryAfter(headers["retry-after"], this.#clock.now()) };
    }
    return { outcome: "failed", reason: why };
  }
}

/** apnsPayload is the JSON body of a note: `aps` for the system, the data beside it. */
export function apnsPayload(note: PushNote): Record<string, unknown> {
  const { aps: _reserved, ...data } = note.data;
  return {
    ...data,
    aps: { alert: { title: note.title, body: note.body }, "thread-id": note.conversationId },
  };
}

/** apnsCollapseId fits a collapse key into APNs' 64 bytes, hashing a longer one (43 chars). */
export function apnsCollapseId(key: string): string {
  if (Buffer.byteLength(key) <= 64) return key;
  return createHash("sha256").update(key).digest("base64url");
}

/** reasonOf is the `reason` of an APNs error body, "" when there is none. */
function reasonOf(body: string): string {
  const r = (parseJson(body) as { reason?: unknown } | undefined)?.reason;
  return typeof r === "string" ? r : "";
}
