import type { Context } from "@opentelemetry/api";
import { activeContext, inMerged, tracingOn } from "./tracing.ts";

/**
 * Batcher coalesces calls made close together into one batch call ("smart batching"). Items
 * added while fewer than `maxInflight` batches are in flight leave at the end of the current
 * event-loop turn, together with everything else added in that turn; while `maxInflight`
 * batches are in flight, new items wait and leave together when one returns. An idle process
 * adds no delay, and a busy one makes batches as large as its load (up to `maxBatch`), which
 * is what spreads the fixed cost of an RPC over many items. With `lingerMs`, a batch waits that
 * long for company before it leaves (unless it fills up): for items nobody waits on, such as
 * acknowledgements, which would otherwise leave one by one at low load, an RPC each.
 */
export class Batcher<I, R> {
  readonly #run: (items: I[]) => Promise<R[]>;
  readonly #maxBatch: number;
  readonly #maxInflight: number;
  readonly #name: string;
  #queue: Array<{
    item: I;
    resolve: (r: R) => void;
    reject: (err: unknown) => void;
    /** trace is the context the item was added in (tracing on). */
    trace: Context | undefined;
  }> = [];
  #inflight = 0;
  #scheduled = false;
  #linger: NodeJS.Timeout | undefined;
  readonly #lingerMs: number;

  /**
   * `run` handles a batch and returns one result per item, in order; when it throws, every
   * item of the batch fails with that error. `name` names the batch in traces: a batch of
   * items from several traces runs in a span `batch <name>` linked to each of them (see
   * inMerged in tracing.ts); a batch of one runs in its item's own context.
   */
  constructor(opts: {
    maxBatch: number;
    maxInflight: number;
    run: (items: I[]) => Promise<R[]>;
    name?: string;
    lingerMs?: number;
  }) {
    this.#lingerMs = opts.lingerMs ?? 0;
    this.#run = opts.run;
    this.#maxBatch = opts.maxBatch;
    this.#maxInflight = opts.maxInflight;
    this.#name = opts.name ?? "items";
  }

  /** add queues an item and resolves with its result. */
  add(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject, trace: activeContext() });
      this.#schedule();
    });
  }

  /** schedule flushes soon; `waited` items (queued behind a batch in flight) linger no more. */
  #schedule(waited = false): void {
    if (this.#inflight >= this.#maxInflight) return;
    if (this.#linger && (waited || this.#queue.length >= this.#maxBatch)) {
      clearTimeout(this.#linger);
      this.#linger = undefined;
      this.#scheduled = false;
    }
    if (this.#scheduled) return;
    this.#scheduled = true;
    const go = () => {
      this.#linger = undefined;
      this.#scheduled = false;
      this.#flush();
    };
    if (this.#lingerMs > 0 && !waited && this.#queue.length < this.#maxBatch) {
      this.#linger = setTimeout(go, this.#lingerMs);
    } else setImmediate(go);
  }

  #flush(): void {
    while (this.#queue.length > 0 && this.#inflight < this.#maxInflight) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#inflight++;
      const items = batch.map((b) => b.item);
      const run = tracingOn()
        ? inMerged(
            this.#name,
            batch.map((b) => b.trace),
            () => this.#run(items),
          )
        : this.#run(items);
      run
        .then((results) => {
          if (results.length !== batch.length) {
            throw new Error(`batch of ${batch.length} answered with ${results.length} results`);
          }
          batch.forEach((b, i) => {
            b.resolve(results[i] as R);
          });
        })
        .catch((err: unknown) => {
          for (const b of batch) b.reject(err);
        })
        .finally(() => {
          this.#inflight--;
          if (this.#queue.length > 0) this.#schedule(true);
        });
    }
  }
}

/** MAX_BATCH_ITEMS is the most items a batch RPC of the contracts takes (their max_items). */
export const MAX_BATCH_ITEMS = 1000;

/**
 * inChunks calls `call` on consecutive chunks of at most MAX_BATCH_ITEMS items, one after
 * another, and returns everything the calls returned, in order.
 */
export async function inChunks<T, R>(items: T[], call: (chunk: T[]) => Promise<R[]>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += MAX_BATCH_ITEMS) {
    out.push(...(await call(items.slice(i, i + MAX_BATCH_ITEMS))));
  }
  return out;
}
