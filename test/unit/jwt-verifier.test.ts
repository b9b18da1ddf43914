import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import test from "ava";
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT } from "jose";
import { AuthError, createJwtVerifier } from "../../services/gateway/auth.ts";

const { privateKey, publicKey } = await generateKeyPair("ES256");
const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
const verifier = createJwtVerifier({ keys: createLocalJWKSet({ keys: [jwk] }) });
const now = () => Math.floor(Date.now() / 1000);

/** sign makes a token for alice with the given times (seconds since the epoch, or none). */
function sign(times: { exp?: number; iat?: number }) {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k1" }).setSubject("alice");
  if (times.exp !== undefined) jwt.setExpirationTime(times.exp);
  if (times.iat !== undefined) jwt.setIssuedAt(times.iat);
  return jwt.sign(privateKey);
}

async function refusal(token: Promise<string>): Promise<string> {
  const err = await verifierError(await token);
  return err instanceof AuthError ? err.message : `not an AuthError: ${String(err)}`;
}
async function verifierError(token: string): Promise<unknown> {
  try {
    await verifier.verify(token);
    return new Error("accepted");
  } catch (err) {
    return err;
  }
}

test("a valid token is accepted, with its expiry", async (t) => {
  const exp = now() + 600;
  const identity = await verifier.verify(await sign({ exp, iat: now() }));
  t.deepEqual(identity, { userId: "alice", expiresAtMs: exp * 1000 });
});

test("a token without exp is refused: it would be a session that never ends", async (t) => {
  t.is(await refusal(sign({ iat: now() })), "token has no expiry (exp)");
});

test("a token past its exp is refused, even within the clock tolerance", async (t) => {
  t.is(await refusal(sign({ exp: now() - 2, iat: now() - 60 })), "token expired");
  t.is(await refusal(sign({ exp: now() - 120, iat: now() - 600 })), "token expired");
});

test("a token issued in the future is refused beyond the clock tolerance", async (t) => {
  t.is(
    await refusal(sign({ exp: now() + 7200, iat: now() + 3600 })),
    "token issued in the future (iat)",
  );
  // Within the tolerance (a provider's clock a little ahead) it is accepted.
  await t.notThrowsAsync(verifier.verify(await sign({ exp: now() + 600, iat: now() + 10 })));
});

test("after the identity provider rotates its key, tokens with the new key id pass within the refetch limit", async (t) => {
  const old = await generateKeyPair("ES256");
  const next = await generateKeyPair("ES256");
  const keyOf = async (k: Parameters<typeof exportJWK>[0], kid: string) => ({
    ...(await exportJWK(k)),
    kid,
    alg: "ES256",
  });
  let keys = [await keyOf(old.publicKey, "old")];
  let fetches = 0;
  const server = createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as AddressInfo;
  const remote = createJwtVerifier({
    jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
    refetchAfterMs: 300,
  });
  const token = (k: Parameters<typeof exportJWK>[0], kid: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid })
      .setSubject("alice")
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(k);

  await remote.verify(await token(old.privateKey, "old"));
  t.is(fetches, 1);
  // The provider publishes the new key and signs with it; the old one is withdrawn.
  keys = [await keyOf(next.publicKey, "next")];
  const fresh = await token(next.privateKey, "next");
  // Just after a fetch, the unknown key id does not refetch (the rate limit)...
  await t.throwsAsync(remote.verify(fresh), { instanceOf: AuthError });
  // ...but once the limit has passed, it does, and the new key is known.
  await new Promise((r) => setTimeout(r, 400));
  t.like(await remote.verify(fresh), { userId: "alice" });
  t.is(fetches, 2);
  // A token signed with a key the provider never published stays refused, without a refetch
  // storm: at most one fetch per refetch interval.
  const forged = await generateKeyPair("ES256");
  for (let i = 0; i < 5; i++) {
    await t.throwsAsync(remote.verify(await token(forged.privateKey, "forged")), {
      instanceOf: AuthError,
    });
  }
  t.true(fetches <= 3, `fetches: ${fetches}`);
});
