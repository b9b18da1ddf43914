import type { Replication, ReplicationLag } from "./replication.ts";

interface Pending<T> {
  key: string;
  value: T;
  writtenAtMs: number;
  dueAtMs: number;
  /** seq orders the versions of one key as the source wrote them. */
  seq: number;
}

/**
 * DelayQueue holds replicated items until they are due, then applies them. Each item is due
 * `delayMs` plus a random `0..jitterMs` after the source wrote it, so items of different keys
 * arrive out of order, as Global Tables deliver them. Versions of one key never overtake each
 * other: a newer version replaces the pending one (last writer wins per item, which the
 * single-writer rule makes exact), and a key is never applied twice at once.
 */
export class DelayQueue<T> {
  readonly #pending = new Map<string, Pending<T>>();
  readonly #inflight = new Set<string>();
  readonly #apply: (items: Array<{ key: string; value: T }>) => Promise<Array<Error | undefined>>;
  readonly #delayMs: number;
  readonly #jitterMs: number;
  readonly #onError: (err: Error) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #paused = false;
  #closed = false;
  #applied = 0;
  #seq = 0;
  #error: Error | undefined;
  /** lastReported is the last apply failure reported: one that repeats is reported once. */
  #lastReported = "";
  readonly #waiters = new Set<{
    through: number;
    resolve: () => void;
    reject: (e: Error) => void;
  }>();

  constructor(opts: {
    delayMs: number;
    jitterMs: number;
    /** apply applies a round of items (distinct keys) and says, per item, what failed. */
    apply: (items: Array<{ key: string; value: T }>) => Promise<Array<Error | undefined>>;
    onError: (err: Error) => void;
  }) {
    this.#apply = opts.apply;
    this.#delayMs = opts.delayMs;
    this.#jitterMs = opts.jitterMs;
    this.#onError = opts.onError;
  }

  /** push queues a version of an item the source wrote at `writtenAtMs`. */
  push(key: string, value: T, writtenAtMs = Date.now()): void {
    if (this.#closed || this.#error) return;
    const earlier = this.#pending.get(key);
    const dueAtMs =
      earlier?.dueAtMs ?? writtenAtMs + this.#delayMs + Math.random() * this.#jitterMs;
    this.#pending.set(key, {
      key,
      value,
      writtenAtMs: earlier?.writtenAtMs ?? writtenAtMs,
      dueAtMs,
      seq: ++this.#seq,
    });
    this.#schedule();
  }

  /** fail stops the queue for good: nothing more is applied and waiters are told why. */
  fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    this.#pending.clear();
    clearTimeout(this.#timer);
    for (const w of this.#waiters) w.reject(err);
    this.#waiters.clear();
    this.#onError(err);
  }

  get failed(): Error | undefined {
    return this.#error;
  }

  pause(): void {
    this.#paused = true;
    clearTimeout(this.#timer);
  }

  resume(): void {
    this.#paused = false;
    this.#schedule();
  }

  get paused(): boolean {
    return this.#paused;
  }

  lag(): ReplicationLag {
    let oldest = Number.POSITIVE_INFINITY;
    for (const p of this.#pending.values()) oldest = Math.min(oldest, p.writtenAtMs);
    return {
      pending: this.#pending.size + this.#inflight.size,
      oldestMs: Number.isFinite(oldest) ? Math.max(0, Date.now() - oldest) : 0,
      applied: this.#applied,
      error: this.#error?.message,
    };
  }

  /** drained resolves once every version pushed so far has been applied (or superseded). */
  drained(timeoutMs = 30_000): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    const through = this.#seq;
    if (this.#doneThrough(through)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        through,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`not drained after ${timeoutMs} ms: ${JSON.stringify(this.lag())}`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  #report(err: Error): void {
    if (err.message === this.#lastReported) return;
    this.#lastReported = err.message;
    const retry = new Error(`could not apply an item, will retry: ${err.message}`);
    retry.name = "ReplicationRetry";
    this.#onError(retry);
  }

  #doneThrough(seq: number): boolean {
    for (const p of this.#pending.values()) if (p.seq <= seq) return false;
    return this.#inflight.size === 0;
  }

  #schedule(): void {
    if (this.#paused || this.#closed || this.#error || this.#running) return;
    clearTimeout(this.#timer);
    let next = Number.POSITIVE_INFINITY;
    for (const p of this.#pending.values()) {
      if (!this.#inflight.has(p.key)) next = Math.min(next, p.dueAtMs);
    }
    if (!Number.isFinite(next)) return;
    this.#timer = setTimeout(() => this.#run(), Math.max(0, next - Date.now()));
  }

  #run(): void {
    if (this.#paused || this.#closed || this.#error) return;
    const now = Date.now();
    // At most PER_ROUND at once: a backlog after a partition must not flood the target.
    const due = [...this.#pending.values()]
      .filter((p) => p.dueAtMs <= now && !this.#inflight.has(p.key))
      .sort((a, b) => a.dueAtMs - b.dueAtMs)
      .slice(0, PER_ROUND);
    if (due.length === 0) {
      this.#schedule();
      return;
    }
    for (const p of due) {
      this.#pending.delete(p.key);
      this.#inflight.add(p.key);
    }
    this.#running = this.#apply(due.map((p) => ({ key: p.key, value: p.value })))
      .catch((err: Error) => due.map(() => err))
      .then((outcomes) => {
        // Each item on its own: one the target refuses (it is down, restarting, or the item
        // is bad) must not hold back the others. What failed is put back, unless a newer
        // version came meanwhile, and tried again shortly.
        due.forEach((p, i) => {
          this.#inflight.delete(p.key);
          const err = outcomes[i];
          if (!err) {
            this.#applied++;
            return;
          }
          if (err.name === "SingleWriterError") {
            this.fail(err);
            return;
          }
          this.#report(err);
          if (!this.#pending.has(p.key)) this.#pending.set(p.key, { ...p, dueAtMs: now + 250 });
        });
      })
      .finally(() => {
        this.#running = undefined;
        for (const w of [...this.#waiters]) {
          if (this.#doneThrough(w.through)) {
            this.#waiters.delete(w);
            w.resolve();
          }
        }
        this.#schedule();
      });
  }
}

/** PER_ROUND is how many items are applied at once. */
const PER_ROUND = 64;

/** SingleWriterError: an item was written by a region its key does not name. Never retried. */
export class SingleWriterError extends Error {
  override name = "SingleWriterError";
}

/**
 * queueReplication is a Replication whose pausing and lag are its queue's; `drained` and
 * `close` default to the queue's own, and a replicator that reads its source on its own
 * (a stream) supplies both.
 */
export function queueReplication<T>(
  name: string,
  queue: DelayQueue<T>,
  own: Partial<Pick<Replication, "drained" | "close">> = {},
): Replication {
  return {
    name,
    pause: () => queue.pause(),
    resume: () => queue.resume(),
    get paused() {
      return queue.paused;
    },
    lag: () => queue.lag(),
    drained: own.drained ?? ((timeoutMs) => queue.drained(timeoutMs)),
    close: own.close ?? (() => queue.close()),
  };
}
