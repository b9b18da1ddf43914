import { DescribeTableCommand, DescribeTimeToLiveCommand } from "@aws-sdk/client-dynamodb";
import test from "ava";
import { startDynamoLocal } from "../../dev/backends/dynamodb.ts";
import { requireProgram } from "../../dev/backends/processes.ts";
import { createChatTable } from "../../scripts/db-create.ts";

const java = requireProgram("java", "install a Java 17 runtime for DynamoDB Local");
if (java.available) {
  test("npm run db:create creates the chat table once, with its index, stream and TTL", async (t) => {
    const local = await startDynamoLocal();
    t.teardown(() => local.stop());
    const env = {
      DYNAMODB_ENDPOINT: local.endpoint,
      DYNAMODB_TABLE: "made-by-script",
      AWS_REGION: "us-east-1",
    };
    t.regex(await createChatTable(env), /created table made-by-script/);
    t.regex(await createChatTable(env), /already exists/);
    const db = local.client();
    t.teardown(() => db.destroy());
    const { Table } = await db.send(new DescribeTableCommand({ TableName: "made-by-script" }));
    t.deepEqual(
      Table?.GlobalSecondaryIndexes?.map((i) => i.IndexName),
      ["by-order"],
    );
    t.is(Table?.StreamSpecification?.StreamViewType, "NEW_AND_OLD_IMAGES");
    const ttl = await db.send(new DescribeTimeToLiveCommand({ TableName: "made-by-script" }));
    t.is(ttl.TimeToLiveDescription?.AttributeName, "expires");
  });
} else {
  test.skip(`db:create: ${java.why}`, () => {});
}
