import { Code, ConnectError } from "@connectrpc/connect";
import test from "ava";
import { SignJWT } from "jose";
import {
  generateKeySet,
  InternalVerifier,
  parsePeerKeys,
  parseSigningKey,
  requireInternalAuth,
  signerOf,
} from "../../services/shared/internal-auth.ts";

const keys = generateKeySet("t");
const verifier = new InternalVerifier("messaging", parsePeerKeys(keys.peers));

async function refusal(token: string): Promise<string> {
  try {
    await verifier.verify(token);
  } catch (err) {
    const ce = ConnectError.from(err);
    if (ce.code !== Code.Unauthenticated) throw err;
    return ce.rawMessage;
  }
  throw new Error("the token was accepted");
}

test("a service's token proves who calls and for which user", async (t) => {
  const token = await signerOf(keys, "gateway").token("messaging", {
    userId: "alice",
    deviceId: "phone",
  });
  const v = await verifier.verify(token);
  t.is(v.identity, "gateway");
  t.deepEqual(v.caller, { userId: "alice", deviceId: "phone" });
  t.is(v.identity, "gateway");
  const none = await verifier.verify(await signerOf(keys, "gateway").token("messaging"));
  t.is(none.caller, undefined, "a token naming no user makes no caller");
});

test("expired, overlong, mislabelled and unsigned tokens are refused, saying why", async (t) => {
  const key = parseSigningKey(keys.privateKeys.gateway, "gateway");
  const now = Math.floor(Date.now() / 1000);
  const sign = (claims: Record<string, unknown>, kid = key.kid, iss = "gateway") =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "EdDSA", kid })
      .setIssuer(iss)
      .setAudience("messaging")
      .sign(key.key);
  t.regex(await refusal(await sign({ iat: now - 120, exp: now - 60 })), /"exp" claim/);
  t.regex(await refusal(await sign({ iat: now, exp: now + 86_400 })), /lifetime beyond 60 s/);
  t.regex(await refusal(await sign({ iat: now })), /missing required "exp" claim/);
  // Signed with the gateway's key but claiming to be messaging.
  t.regex(
    await refusal(await sign({ iat: now, exp: now + 30 }, key.kid, "messaging")),
    /issuer does not match/,
  );
  t.regex(await refusal(await sign({ iat: now, exp: now + 30 }, "gateway.other")), /not trusted/);
  const [h, p] = (await sign({ iat: now, exp: now + 30 })).split(".");
  t.regex(await refusal(`${h}.${p}.`), /signature/);
  t.regex(await refusal("not-a-token"), /internal token/);
});

test("key settings that cannot work stop the service with the variable named, never the key", (t) => {
  t.throws(() => parseSigningKey("{not json", "gateway"), {
    message: /^INTERNAL_AUTH_KEY: must be a JSON Web Key/,
  });
  t.throws(() => parseSigningKey(keys.privateKeys.messaging, "gateway"), {
    message: /INTERNAL_AUTH_KEY: its key id must be "gateway.<version>", not "messaging.t"/,
  });
  const publicOnly = JSON.stringify(JSON.parse(keys.peers).keys[0]);
  t.throws(() => parseSigningKey(publicOnly, "gateway"), {
    message: /must be a private Ed25519 key/,
  });
  const privateInPeers = JSON.stringify({ keys: [JSON.parse(keys.privateKeys.gateway)] });
  const err = t.throws(() => parsePeerKeys(privateInPeers));
  t.regex(err.message, /INTERNAL_AUTH_PEERS: key "gateway.t" must be a public Ed25519 key/);
  t.false(err.message.includes(JSON.parse(keys.privateKeys.gateway).d));
  t.throws(() => parsePeerKeys('{"keys":[]}'), { message: /INTERNAL_AUTH_PEERS/ });
  t.throws(() => requireInternalAuth("messaging", { peers: keys.peers }), {
    message: /INTERNAL_AUTH_KEY: required/,
  });
  t.throws(() => requireInternalAuth("persistence", {}), {
    message: /INTERNAL_AUTH_PEERS: required/,
  });
  t.notThrows(() => requireInternalAuth("gateway", { key: keys.privateKeys.gateway }));
});
