import {
  type AttributeValue,
  DeleteItemCommand,
  DescribeTableCommand,
  DynamoDBClient,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  type _Record as StreamRecord,
} from "@aws-sdk/client-dynamodb-streams";
import { writerRegionOf } from "../../services/shared/item-keys.ts";
import { DelayQueue, queueReplication, SingleWriterError } from "./delay-queue.ts";
import { defaultOnError, type Replication, type ReplicationOptions } from "./replication.ts";

/**
 * REPLICATED_FROM marks an item the replicator wrote, with the region it came from, as Global
 * Tables (2017) marked theirs with aws:rep:updateregion. It keeps replication loop-free and lets
 * the other direction tell a replicated copy from an item a region wrote itself.
 */
export const REPLICATED_FROM = "replicatedFrom";

/** DynamoTable names one region's table on a DynamoDB endpoint (DynamoDB Local here). */
export interface DynamoTable {
  region: string;
  endpoint: string;
  table: string;
}

type Image = Record<string, AttributeValue>;

/**
 * replicateDynamoTable is the table replicator for regions on DynamoDB Local: it tails the
 * source table's stream (DynamoDB Streams, NEW_AND_OLD_IMAGES) and applies every item the
 * source region wrote to the target region's table after the delay, as Global Tables do. Only
 * items whose key names the source region are copied; a stream record of an item that names
 * another region is either a copy this tool made (marked with REPLICATED_FROM, skipped) or an
 * item two regions wrote, and then replication stops loudly. It survives either table going
 * away and coming back (it keeps its stream position and retries).
 */
export async function replicateDynamoTable(opts: {
  from: DynamoTable;
  to: DynamoTable;
  options?: ReplicationOptions & { pollMs?: number };
}): Promise<Replication> {
  const { from, to } = opts;
  const name = `table ${from.region} → ${to.region}`;
  const onError = opts.options?.onError ?? defaultOnError(name);
  // Polls come quickly while records flow and slow down to pollMs × 8 while the stream is
  // quiet: DynamoDB Local is one JVM on a small machine, and idle polling must not load it.
  const pollMs = opts.options?.pollMs ?? 50;
  const credentials = { accessKeyId: "local", secretAccessKey: "local" };
  const client = (endpoint: string) =>
    new DynamoDBClient({ endpoint, region: "us-east-1", credentials, maxAttempts: 2 });
  const source = client(from.endpoint);
  const target = client(to.endpoint);
  const streams = new DynamoDBStreamsClient({
    endpoint: from.endpoint,
    region: "us-east-1",
    credentials,
    maxAttempts: 2,
  });

  const queue = new DelayQueue<{ keys: Image; image?: Image }>({
    delayMs: opts.options?.delayMs ?? 0,
    jitterMs: opts.options?.jitterMs ?? 0,
    onError,
    // One request per item, a round's worth at once, each with its own outcome: DynamoDB Local
    // serializes writes behind a lock either way, and BatchWriteItem measured slower there.
    apply: (items) =>
      Promise.all(
        items.map(({ value }) =>
          (value.image
            ? target.send(
                new PutItemCommand({
                  TableName: to.table,
                  Item: { ...value.image, [REPLICATED_FROM]: { S: from.region } },
                }),
              )
            : target.send(new DeleteItemCommand({ TableName: to.table, Key: value.keys }))
          ).then(
            () => undefined,
            (err: Error) => err,
          ),
        ),
      ),
  });

  /** position per shard: the last sequence number handled. */
  const positions = new Map<string, string>();
  const iterators = new Map<string, string>();
  const finished = new Set<string>();
  let streamArn: string | undefined;
  let shards: string[] = [];
  let shardsReadAt = 0;
  let caughtUpThrough = 0;
  let closed = false;
  let failure: Error | undefined;

  const handle = (record: StreamRecord) => {
    const d = record.dynamodb;
    const pk = d?.Keys?.pk?.S;
    const sk = d?.Keys?.sk?.S;
    if (!d || pk === undefined || sk === undefined) return;
    const writer = writerRegionOf(pk, sk);
    const image = record.eventName === "REMOVE" ? undefined : (d.NewImage as Image | undefined);
    const copiedFrom = (image ?? (d.OldImage as Image | undefined))?.[REPLICATED_FROM]?.S;
    if (writer === from.region && copiedFrom === undefined) {
      if (opts.options?.lose?.(`${pk} ${sk}`)) return;
      const writtenAt = d.ApproximateCreationDateTime?.getTime() ?? Date.now();
      queue.push(`${pk}\u0000${sk}`, { keys: d.Keys as Image, image }, writtenAt);
      return;
    }
    if (copiedFrom !== undefined && copiedFrom === writer && writer !== from.region) return;
    if (record.eventName === "REMOVE" && writer !== from.region) return; // a local expiry
    throw new SingleWriterError(
      `${name}: ${from.region} wrote item ${pk} / ${sk}, which belongs to ${writer}: two regions write it`,
    );
  };

  /** pollOnce reads every shard once; it says whether it read nothing and reached the end. */
  const pollOnce = async (): Promise<{ quiet: boolean; atEnd: boolean }> => {
    streamArn ??= (await source.send(new DescribeTableCommand({ TableName: from.table }))).Table
      ?.LatestStreamArn;
    if (!streamArn) throw new Error(`${from.table} has no stream`);
    // The shard list changes rarely (DynamoDB splits shards every few hours): read it again
    // every few seconds, not on every poll.
    if (Date.now() - shardsReadAt > 5_000) {
      const found: string[] = [];
      let start: string | undefined;
      do {
        const res = await streams.send(
          new DescribeStreamCommand({ StreamArn: streamArn, ExclusiveStartShardId: start }),
        );
        for (const s of res.StreamDescription?.Shards ?? []) if (s.ShardId) found.push(s.ShardId);
        start = res.StreamDescription?.LastEvaluatedShardId;
      } while (start);
      shards = found;
      shardsReadAt = Date.now();
    }
    let quiet = true;
    let atEnd = true;
    for (const shard of shards) {
      if (finished.has(shard)) continue;
      let iterator = iterators.get(shard);
      if (!iterator) {
        const last = positions.get(shard);
        iterator = (
          await streams.send(
            new GetShardIteratorCommand({
              StreamArn: streamArn,
              ShardId: shard,
              ...(last
                ? { ShardIteratorType: "AFTER_SEQUENCE_NUMBER", SequenceNumber: last }
                : { ShardIteratorType: "TRIM_HORIZON" }),
            }),
          )
        ).ShardIterator;
        if (!iterator) {
          finished.add(shard);
          continue;
        }
      }
      let res: GetRecordsCommandOutput;
      try {
        res = await streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
      } catch (err) {
        iterators.delete(shard); // expired or the server restarted: start again from the position
        throw err;
      }
      for (const record of res.Records ?? []) {
        handle(record);
        const seq = record.dynamodb?.SequenceNumber;
        if (seq) positions.set(shard, seq);
      }
      // A full page means more is waiting: this cycle did not reach the end of the stream.
      if ((res.Records ?? []).length >= 1000) atEnd = false;
      if ((res.Records ?? []).length > 0) quiet = false;
      if (res.NextShardIterator) iterators.set(shard, res.NextShardIterator);
      else {
        iterators.delete(shard);
        finished.add(shard);
      }
    }
    return { quiet, atEnd };
  };

  const loop = (async () => {
    let backoff = pollMs;
    let idle = pollMs;
    while (!closed) {
      const cycleStart = Date.now();
      try {
        const { quiet, atEnd } = await pollOnce();
        if (atEnd) caughtUpThrough = cycleStart;
        backoff = pollMs;
        idle = quiet ? Math.min(idle * 2, pollMs * 8) : pollMs;
        if (quiet) await new Promise((r) => setTimeout(r, idle));
      } catch (err) {
        if (err instanceof SingleWriterError) {
          failure = err;
          queue.fail(err);
          return;
        }
        // The source is down or restarting: keep the position and try again.
        streamArn = undefined;
        shardsReadAt = 0;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(2_000, backoff * 2);
      }
    }
  })();

  return queueReplication(name, queue, {
    async drained(timeoutMs = 30_000) {
      const asked = Date.now();
      const deadline = asked + timeoutMs;
      while (caughtUpThrough < asked) {
        if (failure) throw failure;
        if (Date.now() > deadline) throw new Error(`${name}: the stream was not read in time`);
        await new Promise((r) => setTimeout(r, pollMs));
      }
      await queue.drained(Math.max(1, deadline - Date.now()));
    },
    async close() {
      closed = true;
      await loop;
      await queue.close();
      source.destroy();
      target.destroy();
      streams.destroy();
    },
  });
}
