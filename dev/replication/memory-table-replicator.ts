import type { ItemChange, Replica } from "../../services/shared/adapters/memory/replica.ts";
import { writerRegionOf } from "../../services/shared/item-keys.ts";
import { DelayQueue, queueReplication, SingleWriterError } from "./delay-queue.ts";
import { defaultOnError, type Replication, type ReplicationOptions } from "./replication.ts";

/**
 * replicateMemoryTables is the table replicator for embedded regions: what DynamoDB Global
 * Tables do between two regions' replicas, done between in-memory stores. It takes every item
 * the source region's stores write (their change feed), holds it for the delay, and applies it
 * to the target region's stores of the same kind (`pairs`: chat store to chat store, inbox
 * store to inbox store). Only items whose key names the source region are copied; an item
 * whose key names another region means two regions wrote it, and replication stops loudly.
 */
export function replicateMemoryTables(opts: {
  from: string;
  to: string;
  pairs: Array<[Replica, Replica]>;
  options?: ReplicationOptions;
}): Replication {
  const name = `table ${opts.from} → ${opts.to}`;
  const onError = opts.options?.onError ?? defaultOnError(name);
  const targets = new Map<number, Replica>();
  const queue = new DelayQueue<{ change: ItemChange; pair: number }>({
    delayMs: opts.options?.delayMs ?? 0,
    jitterMs: opts.options?.jitterMs ?? 0,
    onError,
    apply: async (items) =>
      items.map(({ value }) => {
        try {
          targets.get(value.pair)?.applyReplicated(value.change);
          return undefined;
        } catch (err) {
          return new SingleWriterError(`${name}: ${(err as Error).message}`);
        }
      }),
  });
  const unsubscribe = opts.pairs.map(([source, target], pair) => {
    if (source.region !== opts.from || target.region !== opts.to) {
      throw new Error(`${name}: pair ${pair} joins ${source.region} to ${target.region}`);
    }
    targets.set(pair, target);
    return source.onChange((change) => {
      let writer: string;
      try {
        writer = writerRegionOf(change.pk, change.sk);
      } catch (err) {
        queue.fail(new SingleWriterError(`${name}: ${(err as Error).message}`));
        return;
      }
      if (writer !== opts.from) {
        queue.fail(
          new SingleWriterError(
            `${name}: ${opts.from} wrote item ${change.pk} / ${change.sk}, which belongs to ${writer}: two regions write it`,
          ),
        );
        return;
      }
      if (opts.options?.lose?.(`${change.pk} ${change.sk}`)) return;
      queue.push(`${pair}\u0000${change.pk}\u0000${change.sk}`, { change, pair });
    });
  });
  return queueReplication(name, queue, {
    async close() {
      for (const u of unsubscribe) u();
      await queue.close();
    },
  });
}
