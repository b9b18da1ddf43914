/**
 * db-create creates the chat table (with its index, stream and TTL) where the configuration
 * points: `DYNAMODB_ENDPOINT=http://127.0.0.1:8000 npm run db:create` for DynamoDB Local.
 * Production tables come from the deployment's CloudFormation, with the same definition.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import { connectDynamo } from "../services/shared/adapters/dynamodb/client.ts";
import { chatTableDefinition, TTL_ATTRIBUTE } from "../services/shared/adapters/dynamodb/table.ts";
import { loadPersistenceConfig } from "../services/shared/config.ts";

/** createChatTable creates the table unless it exists; it says which it did. */
export async function createChatTable(env: NodeJS.ProcessEnv): Promise<string> {
  const config = loadPersistenceConfig({ ...env, CHAT_STORE: "dynamodb" });
  const backend = config.backends.store;
  if (backend.kind !== "dynamodb") throw new Error("unreachable");
  const db = connectDynamo(backend);
  try {
    try {
      await db.send(new DescribeTableCommand({ TableName: backend.table }));
      return `table ${backend.table} already exists`;
    } catch (err) {
      if ((err as Error).name !== "ResourceNotFoundException") throw err;
    }
    await db.send(new CreateTableCommand(chatTableDefinition(backend.table)));
    await waitUntilTableExists({ client: db, maxWaitTime: 60 }, { TableName: backend.table });
    await db.send(
      new UpdateTimeToLiveCommand({
        TableName: backend.table,
        TimeToLiveSpecification: { Enabled: true, AttributeName: TTL_ATTRIBUTE },
      }),
    );
    return `created table ${backend.table}${backend.endpoint ? ` at ${backend.endpoint}` : ""}`;
  } finally {
    db.destroy();
  }
}

if (import.meta.main) {
  try {
    console.log(await createChatTable(process.env));
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  }
}
