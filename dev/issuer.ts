import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { ID_PATTERN } from "../services/shared/ids.ts";
import type { Audience, InternalSigner } from "../services/shared/internal-auth.ts";

/**
 * A development token issuer: it signs JWTs for any user name and publishes its public key as a
 * JSON Web Key Set, exactly what a real identity provider gives the gateway. For local runs and
 * tests only; a deployment points AUTH_JWKS_URL at its identity provider instead.
 *
 *   GET /token?user=alice       → {"token": "...", "user": "alice", "expires_at": "..."}
 *   GET /token?user=ops&operator=true → the same, for the gateway's operator API
 *                                 (audience OPERATOR_AUDIENCE)
 *   GET /.well-known/jwks.json  → the public keys
 *   GET /internal-token?to=messaging&user=alice[&region=us-east-1]
 *                               → {"token": "..."}: an operator's internal token (read-only) for
 *                                 calling a service of a local region directly (probes)
 */
export interface DevIssuer {
  readonly url: string;
  readonly jwksUrl: string;
  /** issuer is the `iss` claim of every token. */
  readonly issuer: string;
  /** token signs a token for `userId`, valid for `ttlSeconds`. */
  token(userId: string, ttlSeconds?: number): Promise<string>;
  /** operatorToken signs a token for the gateway's operator API (audience OPERATOR_AUDIENCE). */
  operatorToken(userId: string): Promise<string>;
  /** trustInternal lets /internal-token sign with a local region's operator key. */
  trustInternal(region: string, operator: InternalSigner): void;
  close(): Promise<void>;
}

/** DEV_AUDIENCE is the `aud` claim of development tokens. */
export const DEV_AUDIENCE = "connect-chat";
/** OPERATOR_AUDIENCE is the `aud` claim of operator tokens (the default AUTH_OPERATOR_AUDIENCE). */
export const OPERATOR_AUDIENCE = "connect-chat-operator";

/** startDevIssuer starts an issuer with a fresh ES256 key on `host:port` (0 picks a port). */
export async function startDevIssuer(
  opts: { host?: string; port?: number } = {},
): Promise<DevIssuer> {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const kid = `dev-${Date.now().toString(36)}`;
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  const host = opts.host ?? "127.0.0.1";
  let url = "";
  const operators = new Map<string, InternalSigner>();
  const sign = (userId: string, ttlSeconds = 24 * 3600, audience = DEV_AUDIENCE) =>
    new SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid })
      .setSubject(userId)
      .setIssuer(url)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime(`${ttlSeconds}s`)
      .sign(privateKey);

  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://localhost");
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(`${JSON.stringify(body)}\n`);
    };
    if (req.method === "GET" && u.pathname === "/.well-known/jwks.json") {
      return json(200, { keys: [jwk] });
    }
    if (req.method === "GET" && u.pathname === "/token") {
      const user = u.searchParams.get("user") ?? "";
      if (!ID_PATTERN.test(user)) {
        return json(400, { error: "user must be 1-64 letters, digits, '_' or '-'" });
      }
      const ttl = Number(u.searchParams.get("ttl") ?? 24 * 3600);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 30 * 24 * 3600) {
        return json(400, { error: "ttl must be whole seconds between 1 and 2592000" });
      }
      const operator = u.searchParams.get("operator") === "true";
      sign(user, ttl, operator ? OPERATOR_AUDIENCE : DEV_AUDIENCE).then(
        (token) =>
          json(200, { token, user, expires_at: new Date(Date.now() + ttl * 1000).toISOString() }),
        () => json(500, { error: "could not sign" }),
      );
      return;
    }
    if (req.method === "GET" && u.pathname === "/internal-token") {
      const to = u.searchParams.get("to") ?? "";
      const user = u.searchParams.get("user");
      const region =
        u.searchParams.get("region") ?? (operators.size === 1 ? [...operators.keys()][0] : "");
      const signer = operators.get(region ?? "");
      if (!["messaging", "notification", "persistence"].includes(to)) {
        return json(400, { error: "to must be messaging, notification or persistence" });
      }
      if (user !== null && !ID_PATTERN.test(user)) {
        return json(400, { error: "user must be 1-64 letters, digits, '_' or '-'" });
      }
      if (!signer) {
        return json(400, { error: `region must be one of: ${[...operators.keys()].join(", ")}` });
      }
      signer.token(to as Audience, user === null ? undefined : { userId: user, deviceId: "" }).then(
        (token) => json(200, { token }),
        () => json(500, { error: "could not sign" }),
      );
      return;
    }
    json(404, { error: "try GET /token?user=alice" });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  url = `http://${host}:${port}`;
  return {
    url,
    jwksUrl: `${url}/.well-known/jwks.json`,
    issuer: url,
    token: (userId, ttl) => sign(userId, ttl),
    operatorToken: (userId) => sign(userId, 3600, OPERATOR_AUDIENCE),
    trustInternal: (region, operator) => operators.set(region, operator),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
