import type { Bus, BusRecord, Subscription } from "../../services/shared/ports/bus.ts";
import { defaultOnError, type Replication, type ReplicationOptions } from "./replication.ts";

/**
 * mirrorTopics is the topic mirror, MirrorMaker 2 / MSK Replicator style: every record of the
 * source region's `topics` is published on the target region's bus as `<alias>.<topic>` (alias
 * defaults to the source region's name, the naming CHAT_PEER_REGIONS reads), with the same key
 * and value, `delayMs` after the source wrote it. Per partition the order is kept. It consumes
 * as a consumer group on the source bus and commits only what the target took, so it is
 * at-least-once: a record whose publish failed (target down) comes again. It never reads
 * prefixed topics, so nothing loops back.
 */
export async function mirrorTopics(opts: {
  from: { region: string; bus: Bus; alias?: string };
  to: { region: string; bus: Bus };
  topics: readonly string[];
  options?: ReplicationOptions;
}): Promise<Replication> {
  const alias = opts.from.alias ?? opts.from.region;
  const name = `topics ${opts.from.region} → ${opts.to.region}`;
  const delayMs = opts.options?.delayMs ?? 0;
  const onError = opts.options?.onError ?? defaultOnError(name);
  const pending = new Map<BusRecord[], { left: number; oldestMs: number }>();
  /** oldestPending is the source time of the oldest record not yet republished. */
  const oldestPending = () => {
    let oldest = Number.POSITIVE_INFINITY;
    for (const p of pending.values()) oldest = Math.min(oldest, p.oldestMs);
    return oldest;
  };
  let applied = 0;
  /** lastError is the failure reported last: a target that stays down is reported once. */
  let lastError = "";
  let paused = false;
  let closed = false;
  let wake: Array<() => void> = [];
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = wake.filter((w) => w !== done);
        resolve();
      }
      wake.push(done);
    });
  const poke = () => {
    for (const w of wake) w();
  };

  const handler = async (batch: BusRecord[]) => {
    const state = {
      left: batch.length,
      oldestMs: Math.min(...batch.map((r) => r.timestampMs)),
    };
    pending.set(batch, state);
    try {
      let i = 0;
      while (i < batch.length) {
        if (closed) throw new Error("mirror closed; the batch will be consumed again");
        if (paused) {
          await sleep(60_000);
          continue;
        }
        const now = Date.now();
        let j = i;
        while (j < batch.length && (batch[j] as BusRecord).timestampMs + delayMs <= now) j++;
        if (j === i) {
          await sleep((batch[i] as BusRecord).timestampMs + delayMs - now);
          continue;
        }
        const due = batch.slice(i, j).filter((r) => !opts.options?.lose?.(`${r.topic} ${r.key}`));
        const byTopic = new Map<string, BusRecord[]>();
        for (const r of due) byTopic.set(r.topic, [...(byTopic.get(r.topic) ?? []), r]);
        for (const [topic, records] of byTopic) {
          await opts.to.bus.publish(
            `${alias}.${topic}`,
            // Headers go along, as MirrorMaker 2 and MSK Replicator copy them: a trace
            // continues in the other region.
            records.map((r) => ({ key: r.key, value: r.value, headers: r.headers })),
          );
        }
        applied += due.length;
        lastError = "";
        state.left -= j - i;
        i = j;
        const next = batch[i];
        if (next) state.oldestMs = next.timestampMs;
      }
    } catch (err) {
      // The target is down or closed (a killed region): the batch is consumed again, so this
      // is a retry, never a failure of the mirror.
      const message = (err as Error).message;
      if (!closed && message !== lastError) {
        const retry = new Error(`the target refused a batch (${message}); it will be retried`);
        retry.name = "ReplicationRetry";
        onError(retry);
      }
      lastError = message;
      throw err;
    } finally {
      pending.delete(batch);
    }
  };
  const subscription: Subscription = await opts.from.bus.subscribe({
    groupId: `mirror-${alias}-to-${opts.to.region}`,
    topics: [...opts.topics],
    fromBeginning: true,
    handler,
  });

  const lag = () => {
    let count = 0;
    for (const p of pending.values()) count += p.left;
    const oldest = oldestPending();
    return {
      pending: count,
      oldestMs: Number.isFinite(oldest) ? Math.max(0, Date.now() - oldest) : 0,
      applied,
    };
  };
  return {
    name,
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      poke();
    },
    get paused() {
      return paused;
    },
    lag,
    /**
     * drained resolves once no record written before the call has been pending for a quiet
     * spell: the mirror cannot see records the source bus has not handed it yet, so a quiet
     * spell of a few polls stands for "caught up". Later records do not hold it up.
     */
    async drained(timeoutMs = 30_000) {
      const asked = Date.now();
      const deadline = asked + timeoutMs;
      let quietSince = Date.now();
      for (;;) {
        if (oldestPending() <= asked || paused) quietSince = Date.now();
        else if (Date.now() - quietSince >= 300) return;
        if (Date.now() > deadline) {
          throw new Error(`${name} not drained after ${timeoutMs} ms: ${JSON.stringify(lag())}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async close() {
      closed = true;
      poke();
      await subscription.close();
    },
  };
}
