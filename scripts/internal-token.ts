// Signs an operator's internal token (read-only; valid one hour) for probing a deployed
// service directly, with the operator key of that environment:
//
//   export INTERNAL_AUTH_KEY="$(aws ssm get-parameter --with-decryption --query Parameter.Value \
//     --output text --name /copilot/connect-chat/us-east-1/secrets/INTERNAL_AUTH_KEY_OPERATOR)"
//   npm run -s internal-token -- messaging alice
import { parseArgs } from "node:util";
import { ID_PATTERN } from "../services/shared/ids.ts";
import {
  type Audience,
  InternalSigner,
  OPERATOR_MAX_TTL_S,
  parseSigningKey,
} from "../services/shared/internal-auth.ts";

const usage =
  "usage: INTERNAL_AUTH_KEY=<operator key> npm run -s internal-token -- <messaging|notification|persistence> [user]";
const { positionals } = parseArgs({ allowPositionals: true });
const [to = "", user] = positionals;
const key = process.env.INTERNAL_AUTH_KEY ?? "";
try {
  if (!["messaging", "notification", "persistence"].includes(to)) throw new Error(usage);
  if (user !== undefined && !ID_PATTERN.test(user)) throw new Error(`not a user id: ${user}`);
  if (!key) throw new Error(`INTERNAL_AUTH_KEY is not set\n${usage}`);
  const signer = new InternalSigner(parseSigningKey(key, "operator"), OPERATOR_MAX_TTL_S);
  const token = await signer.token(
    to as Audience,
    user === undefined ? undefined : { userId: user, deviceId: "" },
  );
  process.stdout.write(`${token}\n`);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
}
