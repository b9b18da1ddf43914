import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
} from "node:crypto";
import {
  type CallOptions,
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import { type JWK, errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { type Caller, callerKey } from "./interceptors.ts";

/**
 * Service-to-service authentication. Every call between the region's services carries
 * `authorization: Bearer <internal token>`: a short-lived JWT (EdDSA, Ed25519) that the calling
 * service signs with its own private key. The callee verifies it against the public keys of the
 * services it accepts (INTERNAL_AUTH_PEERS), checks that the token is addressed to it (`aud`),
 * and lets each caller identity call only the methods its policy names. A token minted by the
 * gateway for a client's request names the user and device it acts for (`sub`, `dev`); that is
 * the only way a user identity travels between services (no header is ever taken on trust).
 *
 * Identities are the services that call others, plus `operator`: a key held by the operators'
 * tools (probes, the chaos checker's reader), allowed read-only methods. A key's id is
 * `<identity>.<version>` (e.g. `messaging.2026-12-06`), so keys can be rotated: publish the new
 * public key in every peer set first, then give the service its new private key.
 */

export const IDENTITIES = ["gateway", "messaging", "notification", "operator"] as const;
/** Identity is who signs an internal token. */
export type Identity = (typeof IDENTITIES)[number];
/** Audience is a service that verifies internal tokens. */
export type Audience = "messaging" | "notification" | "persistence";

/** AUDIENCES maps each gRPC service to the service (audience) that serves it. */
const AUDIENCES: Record<string, Audience> = {
  "chat.v1.MessagingService": "messaging",
  "chat.v1.NotificationService": "notification",
  "chat.v1.PersistenceService": "persistence",
};

/** OPEN_SERVICES need no token: health checks and reflection reveal nothing about users. */
const OPEN_SERVICES = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

/** TOKEN_TTL_S is how long a service's token lives; callers renew it halfway. */
export const TOKEN_TTL_S = 60;
/** OPERATOR_MAX_TTL_S is the longest lifetime accepted for an operator's token. */
export const OPERATOR_MAX_TTL_S = 3600;
const CLOCK_TOLERANCE_S = 5;
const CACHE_LIMIT = 50_000;

/** identityOfKid reads the identity from a key id `<identity>.<version>`. */
function identityOfKid(kid: string | undefined): Identity | undefined {
  const id = kid?.split(".")[0];
  return (IDENTITIES as readonly string[]).includes(id ?? "") ? (id as Identity) : undefined;
}

/** SigningKey is a service's private key and its key id. */
export interface SigningKey {
  identity: Identity;
  kid: string;
  key: KeyObject;
}

/**
 * parseSigningKey reads a private Ed25519 JWK (INTERNAL_AUTH_KEY) whose key id names `identity`.
 * Errors name what is wrong, never the key.
 */
export function parseSigningKey(json: string, identity: Identity): SigningKey {
  let jwk: JWK;
  try {
    jwk = JSON.parse(json) as JWK;
  } catch {
    throw new Error("INTERNAL_AUTH_KEY: must be a JSON Web Key (JSON)");
  }
  if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || typeof jwk.d !== "string") {
    throw new Error("INTERNAL_AUTH_KEY: must be a private Ed25519 key (kty OKP, crv Ed25519, d)");
  }
  if (identityOfKid(jwk.kid) !== identity) {
    throw new Error(
      `INTERNAL_AUTH_KEY: its key id must be "${identity}.<version>", not ${JSON.stringify(jwk.kid ?? "")}`,
    );
  }
  return { identity, kid: jwk.kid as string, key: importKey(jwk, "INTERNAL_AUTH_KEY", true) };
}

/** PeerKeys are the public keys of the identities a service accepts, by key id. */
export type PeerKeys = ReadonlyMap<string, KeyObject>;

/** parsePeerKeys reads a JSON Web Key Set of public Ed25519 keys (INTERNAL_AUTH_PEERS). */
export function parsePeerKeys(json: string): PeerKeys {
  let set: { keys?: unknown };
  try {
    set = JSON.parse(json) as { keys?: unknown };
  } catch {
    throw new Error('INTERNAL_AUTH_PEERS: must be a JSON Web Key Set ({"keys":[...]})');
  }
  if (!Array.isArray(set.keys) || set.keys.length === 0) {
    throw new Error('INTERNAL_AUTH_PEERS: must be a JSON Web Key Set ({"keys":[...]}) with keys');
  }
  const keys = new Map<string, KeyObject>();
  for (const jwk of set.keys as JWK[]) {
    if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || "d" in jwk) {
      throw new Error(
        `INTERNAL_AUTH_PEERS: key ${JSON.stringify(jwk.kid ?? "")} must be a public Ed25519 key`,
      );
    }
    if (!identityOfKid(jwk.kid)) {
      throw new Error(
        `INTERNAL_AUTH_PEERS: key id ${JSON.stringify(jwk.kid ?? "")} must be <identity>.<version>, the identity one of ${IDENTITIES.join(", ")}`,
      );
    }
    keys.set(jwk.kid as string, importKey(jwk, "INTERNAL_AUTH_PEERS", false));
  }
  return keys;
}

/**
 * NEEDS says which keys each service needs: its own to call others (INTERNAL_AUTH_KEY), the
 * peers' to be called (INTERNAL_AUTH_PEERS).
 */
export const NEEDS: Record<string, { key: boolean; peers: boolean }> = {
  gateway: { key: true, peers: false },
  messaging: { key: true, peers: true },
  notification: { key: true, peers: true },
  persistence: { key: false, peers: true },
};

/** requireInternalAuth fails, naming the variable, when `service` lacks a key it needs. */
export function requireInternalAuth<T extends { key?: string; peers?: string }>(
  service: string,
  auth: T,
): T {
  const needs = NEEDS[service] ?? { key: false, peers: false };
  const missing = [
    ...(needs.key && !auth.key ? ["INTERNAL_AUTH_KEY: required (this service's private key)"] : []),
    ...(needs.peers && !auth.peers
      ? ["INTERNAL_AUTH_PEERS: required (the public keys of the services that call this one)"]
      : []),
  ];
  if (missing.length > 0) {
    throw new Error(
      `invalid configuration:\n  ${missing.join("\n  ")}\n  (npm run internal-keys makes them; see docs/security.md)`,
    );
  }
  return auth;
}

/** importKey turns a JWK into a key, or an error naming the variable (never the key). */
function importKey(jwk: JWK, variable: string, isPrivate: boolean): KeyObject {
  try {
    const input = { key: jwk as JsonWebKey, format: "jwk" as const };
    return isPrivate ? createPrivateKey(input) : createPublicKey(input);
  } catch {
    throw new Error(`${variable}: key ${JSON.stringify(jwk.kid ?? "")} is not a valid Ed25519 key`);
  }
}

/** InternalKeySet is a fresh key pair per identity: what `npm run internal-keys` prints. */
export interface InternalKeySet {
  /** privateKeys are each identity's INTERNAL_AUTH_KEY (a private JWK, as JSON). */
  privateKeys: Record<Identity, string>;
  /** peers is every service's INTERNAL_AUTH_PEERS (the public keys, a JWKS as JSON). */
  peers: string;
}

/** generateKeySet creates a key pair for every identity, versioned `version`. */
export function generateKeySet(version = "1"): InternalKeySet {
  const privateKeys = {} as Record<Identity, string>;
  const publicKeys: JWK[] = [];
  for (const identity of IDENTITIES) {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const kid = `${identity}.${version}`;
    privateKeys[identity] = JSON.stringify({ ...privateKey.export({ format: "jwk" }), kid });
    publicKeys.push({ ...publicKey.export({ format: "jwk" }), kid, alg: "EdDSA", use: "sig" });
  }
  return { privateKeys, peers: JSON.stringify({ keys: publicKeys }) };
}

/** signerOf makes the signer of `identity` from a key set (local runs and tests). */
export function signerOf(keys: InternalKeySet, identity: Identity, ttlS?: number): InternalSigner {
  return new InternalSigner(parseSigningKey(keys.privateKeys[identity], identity), ttlS);
}

/** boundedSet adds to a Map used as a cache, dropping the oldest entry past CACHE_LIMIT. */
function boundedSet<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > CACHE_LIMIT) map.delete(map.keys().next().value as K);
}

/**
 * InternalSigner mints a service's internal tokens: one per (callee, user, device), reused until
 * half its lifetime has passed, so a call costs a map lookup, not a signature.
 */
export class InternalSigner {
  readonly #key: SigningKey;
  readonly #ttlS: number;
  readonly #cache = new Map<string, { token: string; renewAtMs: number }>();

  constructor(key: SigningKey, ttlS = TOKEN_TTL_S) {
    this.#key = key;
    this.#ttlS = ttlS;
  }

  get identity(): Identity {
    return this.#key.identity;
  }

  async token(audience: Audience, caller?: Caller): Promise<string> {
    const cacheKey = `${audience}\0${caller?.userId ?? ""}\0${caller?.deviceId ?? ""}`;
    const now = Date.now();
    const cached = this.#cache.get(cacheKey);
    if (cached && cached.renewAtMs > now) return cached.token;
    const claims = caller ? { dev: caller.deviceId } : {};
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: "EdDSA", kid: this.#key.kid })
      .setIssuer(this.#key.identity)
      .setAudience(audience)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(Math.floor(now / 1000) + this.#ttlS);
    if (caller) jwt.setSubject(caller.userId);
    const token = await jwt.sign(this.#key.key);
    boundedSet(this.#cache, cacheKey, { token, renewAtMs: now + (this.#ttlS * 1000) / 2 });
    return token;
  }
}

const actingForKey = createContextKey<Caller | undefined>(undefined, {
  description: "the user a call acts for",
});

/** actingFor returns call options for a call made on behalf of `caller` (a client's request). */
export function actingFor(caller: Caller): CallOptions {
  return { contextValues: createContextValues().set(actingForKey, caller) };
}

/**
 * signingInterceptor is the client interceptor of every service that calls another: it puts
 * the caller's internal token on each request, naming the user of `actingFor` if any.
 */
export function signingInterceptor(signer: InternalSigner): Interceptor {
  return (next) => async (req) => {
    const audience = AUDIENCES[req.service.typeName];
    if (audience) {
      const caller = req.contextValues.get(actingForKey);
      req.header.set("authorization", `Bearer ${await signer.token(audience, caller)}`);
    }
    return next(req);
  };
}

/** Verified is what an internal token proves: who calls, and for which user if any. */
export interface Verified {
  identity: Identity;
  caller?: Caller;
  expMs: number;
}

/** InternalVerifier checks internal tokens addressed to one service, remembering good ones. */
export class InternalVerifier {
  readonly #audience: Audience;
  readonly #peers: PeerKeys;
  readonly #cache = new Map<string, Verified>();

  constructor(audience: Audience, peers: PeerKeys) {
    this.#audience = audience;
    this.#peers = peers;
  }

  get audience(): Audience {
    return this.#audience;
  }

  /** verify returns what `token` proves, or throws a ConnectError (Unauthenticated) saying why. */
  async verify(token: string): Promise<Verified> {
    const cached = this.#cache.get(token);
    if (cached && cached.expMs > Date.now() - CLOCK_TOLERANCE_S * 1000) return cached;
    let kid: string | undefined;
    try {
      const { payload, protectedHeader } = await jwtVerify(
        token,
        (header) => {
          kid = header.kid;
          const key = header.kid === undefined ? undefined : this.#peers.get(header.kid);
          if (!key) throw new joseErrors.JWKSNoMatchingKey();
          return key;
        },
        {
          algorithms: ["EdDSA"],
          audience: this.#audience,
          requiredClaims: ["iss", "iat", "exp"],
          clockTolerance: CLOCK_TOLERANCE_S,
        },
      );
      const identity = identityOfKid(protectedHeader.kid);
      if (!identity || payload.iss !== identity) {
        throw unauthenticated(`internal token: issuer does not match its key ${kid ?? ""}`);
      }
      const iat = payload.iat as number;
      const exp = payload.exp as number;
      const maxTtl = identity === "operator" ? OPERATOR_MAX_TTL_S : TOKEN_TTL_S;
      if (exp - iat > maxTtl || iat > Date.now() / 1000 + CLOCK_TOLERANCE_S) {
        throw unauthenticated(`internal token: lifetime beyond ${maxTtl} s`);
      }
      let caller: Caller | undefined;
      if (payload.sub !== undefined) {
        const deviceId = typeof payload.dev === "string" ? payload.dev : "";
        if (!ID.test(payload.sub) || (deviceId !== "" && !ID.test(deviceId))) {
          throw unauthenticated("internal token: malformed user or device");
        }
        caller = { userId: payload.sub, deviceId };
      }
      const verified: Verified = { identity, caller, expMs: exp * 1000 };
      boundedSet(this.#cache, token, verified);
      return verified;
    } catch (err) {
      if (err instanceof ConnectError) throw err;
      if (err instanceof joseErrors.JWKSNoMatchingKey) {
        throw unauthenticated(`internal token: key ${JSON.stringify(kid ?? "")} is not trusted`);
      }
      if (err instanceof joseErrors.JOSEError) {
        throw unauthenticated(`internal token: ${err.message}`);
      }
      throw unauthenticated("internal token: malformed");
    }
  }
}

const ID = /^[A-Za-z0-9_-]{1,64}$/;

function unauthenticated(message: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated);
}

/**
 * CallerPolicy says which methods (by name) each identity may call on a service; identities it
 * does not name may call nothing.
 */
export type CallerPolicy = Partial<Record<Identity, (method: string) => boolean>>;

/** READ_ONLY lets a caller use the methods that only read: what operators' tools may call. */
export const READ_ONLY = (method: string): boolean => /^(Get|List|Read|BatchRead)/.test(method);
/** ANY lets a caller use every method. */
export const ANY = (): boolean => true;
/** only lets a caller use the named methods. */
export const only =
  (...methods: string[]) =>
  (method: string): boolean =>
    methods.includes(method);

/**
 * authenticatingInterceptor is the first server interceptor of a service behind the gateway:
 * every call but health and reflection must carry an internal token addressed to this service,
 * from an identity the policy lets call the method. The user a verified token names becomes
 * the request's caller (see callerOf); nothing else can make one.
 */
export function authenticatingInterceptor(
  verifier: InternalVerifier,
  policy: CallerPolicy,
): Interceptor {
  return (next) => async (req) => {
    if (OPEN_SERVICES.has(req.service.typeName)) return next(req);
    const header = req.header.get("authorization") ?? "";
    const token = /^Bearer (\S+)$/.exec(header)?.[1];
    if (!token) {
      throw unauthenticated(
        `${verifier.audience} needs an internal token (authorization: Bearer); see docs/security.md`,
      );
    }
    const { identity, caller } = await verifier.verify(token);
    if (!policy[identity]?.(req.method.name)) {
      throw new ConnectError(
        `${identity} may not call ${req.service.typeName}/${req.method.name}`,
        Code.PermissionDenied,
      );
    }
    if (caller) req.contextValues.set(callerKey, caller);
    return next(req);
  };
}
