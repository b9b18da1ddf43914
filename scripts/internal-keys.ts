// Makes the keys the services of each environment authenticate each other with (see
// docs/security.md), as a Copilot secrets input file:
//
//   npm run -s internal-keys -- us-east-1 eu-west-1 > internal-keys.yml
//   copilot secret init --cli-input-yaml internal-keys.yml && shred -u internal-keys.yml
//
// Every environment gets key pairs of its own: a region's keys open nothing in another.
import { stringify } from "yaml";
import { REGION_PATTERN } from "../services/shared/ids.ts";
import { generateKeySet, IDENTITIES } from "../services/shared/internal-auth.ts";

const environments = process.argv.slice(2);
const bad = environments.find((e) => !REGION_PATTERN.test(e));
if (environments.length === 0 || bad !== undefined) {
  process.stderr.write(
    `${bad === undefined ? "" : `not an environment name: ${JSON.stringify(bad)}\n`}usage: npm run -s internal-keys -- <environment>... > internal-keys.yml\n`,
  );
  process.exit(2);
}
const version = new Date().toISOString().slice(0, 10);
/** secrets: Copilot's input format, secret name → environment → value. */
const secrets: Record<string, Record<string, string>> = { INTERNAL_AUTH_PEERS: {} };
for (const identity of IDENTITIES) secrets[`INTERNAL_AUTH_KEY_${identity.toUpperCase()}`] = {};
for (const env of environments) {
  const keys = generateKeySet(version);
  (secrets.INTERNAL_AUTH_PEERS as Record<string, string>)[env] = keys.peers;
  for (const identity of IDENTITIES) {
    (secrets[`INTERNAL_AUTH_KEY_${identity.toUpperCase()}`] as Record<string, string>)[env] =
      keys.privateKeys[identity];
  }
}
process.stdout.write(stringify(secrets));
