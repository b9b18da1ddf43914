// Makes the push credentials of the notification service a Copilot secrets input file,
// checked as the service checks them at start (a wrong key fails here, not in production):
//
//   npm run -s push-secrets -- --fcm-key service-account.json --apns-key AuthKey_ABC123DEFG.p8 \
//     --apns-key-id ABC123DEFG --apns-team-id DEF123GHIJ --apns-topic com.example.chat \
//     us-east-1 eu-west-1 > push.yml
//   copilot secret init --cli-input-yaml push.yml && shred -u push.yml
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { ConfigError, loadNotificationConfig } from "../services/shared/config.ts";
import { REGION_PATTERN } from "../services/shared/ids.ts";

const USAGE =
  "usage: npm run -s push-secrets -- --fcm-key FILE --apns-key FILE --apns-key-id ID --apns-team-id ID --apns-topic BUNDLE_ID <environment>... > push.yml\n";

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}`);
  process.exit(2);
}

let parsed: ReturnType<typeof parseArgs>;
try {
  parsed = parseArgs({
    options: {
      "fcm-key": { type: "string" },
      "apns-key": { type: "string" },
      "apns-key-id": { type: "string" },
      "apns-team-id": { type: "string" },
      "apns-topic": { type: "string" },
    },
    allowPositionals: true,
  });
} catch (err) {
  fail((err as Error).message);
}
const { values: a, positionals: environments } = parsed as {
  values: Record<string, string | undefined>;
  positionals: string[];
};
const bad = environments.find((e) => !REGION_PATTERN.test(e));
if (environments.length === 0) fail("name at least one environment");
if (bad !== undefined) fail(`not an environment name: ${JSON.stringify(bad)}`);
const read = (flag: string) => {
  const path = a[flag];
  if (!path) fail(`--${flag} is required`);
  try {
    return readFileSync(path, "utf8").trim();
  } catch (err) {
    fail(`--${flag}: ${(err as Error).message}`);
  }
};
/** serviceAccount is the FCM key on one line; a file that is not JSON is refused unquoted. */
function serviceAccount(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    fail("--fcm-key: not a JSON service-account key (Firebase console, Service accounts)");
  }
}
const values: Record<string, string> = {
  FCM_SERVICE_ACCOUNT: serviceAccount(read("fcm-key")),
  APNS_KEY: read("apns-key"),
  APNS_KEY_ID: a["apns-key-id"] ?? "",
  APNS_TEAM_ID: a["apns-team-id"] ?? "",
  APNS_TOPIC: a["apns-topic"] ?? "",
};
try {
  // The notification service's own checks: key types, ids, topic.
  loadNotificationConfig({ PUSH_PROVIDER: "fcm,apns", ...values });
} catch (err) {
  fail(err instanceof ConfigError ? err.message : String(err));
}
/** secrets: Copilot's input format, secret name → environment → value. */
const secrets = Object.fromEntries(
  Object.entries(values).map(([name, value]) => [
    name,
    Object.fromEntries(environments.map((env) => [env, value])),
  ]),
);
process.stdout.write(stringify(secrets));
