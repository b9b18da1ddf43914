import { createRemoteJWKSet, errors, type JWTVerifyGetKey, jwtVerify } from "jose";
import { ID_PATTERN } from "../shared/ids.ts";

/** Identity is who a verified token speaks for. */
export interface Identity {
  userId: string;
  /** expiresAtMs is when the token stops being valid (Unix ms), if it says. */
  expiresAtMs?: number;
}

/** TokenVerifier checks a client's bearer token. */
export interface TokenVerifier {
  /**
   * verify resolves the identity, or rejects with an AuthError saying what is wrong with the
   * token, or with an AuthUnavailableError when the token could not be checked at all.
   */
  verify(token: string): Promise<Identity>;
}

/** AuthError says why a token was refused, in words fit for the client. */
export class AuthError extends Error {
  override name = "AuthError";
}

/**
 * AuthUnavailableError says a token could not be checked because the keys to check it could
 * not be had: the identity provider's key set did not come (HTTP error, timeout, connection
 * error) or was unusable. The token may well be valid; the client should retry later. The
 * message is fit for the client; `detail` (and `cause`) are for the server's logs.
 */
export class AuthUnavailableError extends Error {
  override name = "AuthUnavailableError";
  readonly detail: string;
  constructor(detail: string, options?: { cause?: unknown }) {
    super("identity provider unavailable: could not fetch signing keys; retry", options);
    this.detail = detail;
  }
}

/** CLOCK_TOLERANCE_S is the skew allowed between the identity provider's clock and ours. */
const CLOCK_TOLERANCE_S = 30;

/** ALGORITHMS are the JWS algorithms accepted: asymmetric only, so gateways hold no secret. */
export const ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/**
 * JWKS_TIMEOUT_MS bounds one fetch of the key set. It is shorter than the SDK's 5 s wait for a
 * welcome, so a client whose hello waits on a hanging identity provider hears why it failed.
 */
export const JWKS_TIMEOUT_MS = 3_000;

/**
 * JWKS_REFETCH_MS rate-limits the refetches an unknown key id causes. After the identity
 * provider rotates its signing key, tokens with the new key id fail at most this long on a
 * gateway that fetched the set just before; then the set is fetched again and they pass.
 */
export const JWKS_REFETCH_MS = 5_000;

/**
 * createJwtVerifier verifies JWTs against a JSON Web Key Set (fetched from `jwksUrl` and cached,
 * or given directly), checking signature, expiry, and issuer and audience when configured.
 * The user id is the `sub` claim, which must be a valid id.
 *
 * A token is refused (AuthError) only when it is at fault: a bad signature or claim, or a key
 * id the set does not have. When the set cannot be fetched or used, verify rejects with
 * AuthUnavailableError instead. A failed fetch is not cached: the set is fetched again by the
 * next verify that needs it (jose starts its refetch cooldown only from a successful fetch),
 * so the gateway recovers as soon as the identity provider does.
 */
export function createJwtVerifier(opts: {
  jwksUrl?: string;
  keys?: JWTVerifyGetKey;
  issuer?: string;
  audience?: string;
  /** timeoutMs bounds one fetch of the key set (default JWKS_TIMEOUT_MS). */
  timeoutMs?: number;
  /**
   * refetchAfterMs is the least time between two fetches of the key set caused by a token
   * whose key id the set lacks (a key rotation): the rate limit on refetches (default
   * JWKS_REFETCH_MS).
   */
  refetchAfterMs?: number;
}): TokenVerifier {
  const timeoutMs = opts.timeoutMs ?? JWKS_TIMEOUT_MS;
  const source =
    opts.keys ??
    createRemoteJWKSet(new URL(opts.jwksUrl ?? ""), {
      timeoutDuration: timeoutMs,
      cooldownDuration: opts.refetchAfterMs ?? JWKS_REFETCH_MS,
      cacheMaxAge: 10 * 60_000,
    });
  const keys: JWTVerifyGetKey = async (header, token) => {
    try {
      return await source(header, token);
    } catch (err) {
      // The token names a key the (fresh enough) set lacks, or is ambiguous: its fault.
      if (
        err instanceof errors.JWKSNoMatchingKey ||
        err instanceof errors.JWKSMultipleMatchingKeys
      ) {
        throw err;
      }
      throw new AuthUnavailableError(describeKeyFailure(err, opts.jwksUrl, timeoutMs), {
        cause: err,
      });
    }
  };
  return {
    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, keys, {
          algorithms: ALGORITHMS,
          issuer: opts.issuer,
          audience: opts.audience,
          clockTolerance: CLOCK_TOLERANCE_S,
          // A token that never expires would be a session that never ends.
          requiredClaims: ["exp"],
        });
        if (typeof payload.sub !== "string" || !ID_PATTERN.test(payload.sub)) {
          throw new AuthError("token subject is not a valid user id");
        }
        // The clock tolerance is for the identity provider's clock, not a grace period: a
        // session closes at `exp` by this clock, so a token already past it is refused here.
        const nowS = Date.now() / 1000;
        if (typeof payload.exp === "number" && payload.exp <= nowS) {
          throw new AuthError("token expired");
        }
        if (typeof payload.iat === "number" && payload.iat > nowS + CLOCK_TOLERANCE_S) {
          throw new AuthError("token issued in the future (iat)");
        }
        return {
          userId: payload.sub,
          expiresAtMs: payload.exp === undefined ? undefined : payload.exp * 1000,
        };
      } catch (err) {
        if (err instanceof AuthError || err instanceof AuthUnavailableError) throw err;
        if (err instanceof errors.JWTExpired) throw new AuthError("token expired");
        if (err instanceof errors.JWTClaimValidationFailed && err.claim === "exp") {
          throw new AuthError(
            err.reason === "missing"
              ? "token has no expiry (exp)"
              : "token expiry (exp) is not valid",
          );
        }
        if (err instanceof errors.JWTClaimValidationFailed) {
          throw new AuthError(`token claim ${err.claim} is not accepted`);
        }
        if (err instanceof errors.JOSEError) throw new AuthError("token is not valid");
        throw err;
      }
    },
  };
}

/** describeKeyFailure says, for the logs, why the key set could not be had. */
function describeKeyFailure(err: unknown, url: string | undefined, timeoutMs: number): string {
  const where = url ? `key set ${url}` : "key set";
  if (err instanceof errors.JWKSTimeout) return `${where}: no answer within ${timeoutMs} ms`;
  if (err instanceof errors.JWKSInvalid) return `${where} is not usable: ${err.message}`;
  // jose: "Expected 200 OK …" for any other status, "Failed to parse …" for a body not JSON.
  if (err instanceof errors.JOSEError) return `${where}: ${err.message}`;
  if (err instanceof Error) {
    // fetch fails with a TypeError whose cause says why (ECONNREFUSED, ENOTFOUND, …).
    const cause = err.cause as { code?: string; message?: string } | undefined;
    const why = cause?.code ?? cause?.message;
    return `${where}: ${err.message}${why ? ` (${why})` : ""}`;
  }
  return `${where}: ${String(err)}`;
}
