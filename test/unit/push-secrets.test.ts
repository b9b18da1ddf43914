import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { parse } from "yaml";
import { loadNotificationConfig } from "../../services/shared/config.ts";
import { ROOT } from "../support/tools.ts";

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["scripts/push-secrets.ts", ...args],
      { cwd: ROOT },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** credentials writes an FCM service-account key and an APNs .p8 key as the consoles give them. */
function credentials() {
  const dir = mkdtempSync(join(tmpdir(), "push-secrets-"));
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const fcm = join(dir, "service-account.json");
  writeFileSync(
    fcm,
    JSON.stringify(
      {
        type: "service_account",
        project_id: "chat-123",
        private_key_id: "k1",
        private_key: rsa.privateKey.export({ type: "pkcs8", format: "pem" }),
        client_email: "push@chat-123.iam.gserviceaccount.com",
        token_uri: "https://oauth2.googleapis.com/token",
      },
      null,
      2,
    ),
  );
  const p8 = join(dir, "AuthKey_ABC123DEFG.p8");
  writeFileSync(p8, ec.privateKey.export({ type: "pkcs8", format: "pem" }));
  return { dir, fcm, p8, rsa };
}

const apns = [
  "--apns-key-id",
  "ABC123DEFG",
  "--apns-team-id",
  "DEF123GHIJ",
  "--apns-topic",
  "com.example.chat",
];

test("push-secrets writes every credential per environment, as the service reads it", async (t) => {
  const c = credentials();
  const r = await run(["--fcm-key", c.fcm, "--apns-key", c.p8, ...apns, "us-east-1", "eu-west-1"]);
  t.is(r.code, 0, r.stderr);
  const secrets = parse(r.stdout) as Record<string, Record<string, string>>;
  t.deepEqual(Object.keys(secrets).sort(), [
    "APNS_KEY",
    "APNS_KEY_ID",
    "APNS_TEAM_ID",
    "APNS_TOPIC",
    "FCM_SERVICE_ACCOUNT",
  ]);
  for (const values of Object.values(secrets))
    t.deepEqual(Object.keys(values), ["us-east-1", "eu-west-1"]);
  // What Copilot will put in the service's environment starts it.
  const env = Object.fromEntries(Object.entries(secrets).map(([k, v]) => [k, v["eu-west-1"]]));
  const config = loadNotificationConfig({ PUSH_PROVIDER: "fcm,apns", ...env });
  t.truthy(config.push.fcm);
  t.like(config.push.apns, {
    keyId: "ABC123DEFG",
    teamId: "DEF123GHIJ",
    topic: "com.example.chat",
  });
});

test("push-secrets refuses a wrong key, saying which, and prints no secret", async (t) => {
  const c = credentials();
  // The .p8 where the service account's key should be.
  const swapped = await run(["--fcm-key", c.p8, "--apns-key", c.p8, ...apns, "us-east-1"]);
  t.is(swapped.code, 2);
  t.is(swapped.stdout, "");
  t.regex(swapped.stderr, /fcm-key|FCM_SERVICE_ACCOUNT/);
  // An RSA key where APNs needs its P-256 one.
  const rsaPem = join(c.dir, "rsa.p8");
  writeFileSync(rsaPem, c.rsa.privateKey.export({ type: "pkcs8", format: "pem" }));
  const wrong = await run(["--fcm-key", c.fcm, "--apns-key", rsaPem, ...apns, "us-east-1"]);
  t.is(wrong.code, 2);
  t.regex(wrong.stderr, /APNS_KEY/);
  t.notRegex(wrong.stderr, /PRIVATE KEY/);
  const noEnv = await run(["--fcm-key", c.fcm, "--apns-key", c.p8, ...apns]);
  t.regex(noEnv.stderr, /name at least one environment/);
});
