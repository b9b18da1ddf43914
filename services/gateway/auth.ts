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
  /** verify resolves the identity or rejects with an AuthError saying what is wrong. */
  verify(token: string): Promise<Identity>;
}

/** AuthError says why a token was refused, in words fit for the client. */
export class AuthError extends Error {
  override name = "AuthError";
}

/** ALGORITHMS are the JWS algorithms accepted: asymmetric only, so gateways hold no secret. */
export const ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/**
 * createJwtVerifier verifies JWTs against a JSON Web Key Set (fetched from `jwksUrl` and cached,
 * or given directly), checking signature, expiry, and issuer and audience when configured.
 * The user id is the `sub` claim, which must be a valid id.
 */
export function createJwtVerifier(opts: {
  jwksUrl?: string;
  keys?: JWTVerifyGetKey;
  issuer?: string;
  audience?: string;
}): TokenVerifier {
  const keys =
    opts.keys ??
    createRemoteJWKSet(new URL(opts.jwksUrl ?? ""), {
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
    });
  return {
    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, keys, {
          algorithms: ALGORITHMS,
          issuer: opts.issuer,
          audience: opts.audience,
          clockTolerance: 30,
        });
        if (typeof payload.sub !== "string" || !ID_PATTERN.test(payload.sub)) {
          throw new AuthError("token subject is not a valid user id");
        }
        return {
          userId: payload.sub,
          expiresAtMs: payload.exp === undefined ? undefined : payload.exp * 1000,
        };
      } catch (err) {
        if (err instanceof AuthError) throw err;
        if (err instanceof errors.JWTExpired) throw new AuthError("token expired");
        if (err instanceof errors.JWTClaimValidationFailed) {
          throw new AuthError(`token claim ${err.claim} is not accepted`);
        }
        if (err instanceof errors.JOSEError) throw new AuthError("token is not valid");
        throw err;
      }
    },
  };
}
