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
