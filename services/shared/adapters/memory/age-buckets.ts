/**
 * AgeBuckets remembers which keys (conversations, inboxes) got items when, in coarse time
 * buckets, so that a store can drop what aged out of its window by visiting only the keys that
 * had items in the buckets now past it: no timer, and no scan of everything the store holds.
 * A key written in many buckets is visited once per bucket, each visit dropping what is due.
 */
export class AgeBuckets {
  readonly #widthMs: number;
  /** bucket number → keys that got items in it, in the order the buckets were opened */
  readonly #buckets = new Map<number, Set<string>>();

  /** slices is how many buckets span the retention: the precision of dropping. */
  constructor(retentionMs: number, slices = 64) {
    this.#widthMs = Math.max(1, Math.ceil(retentionMs / slices));
  }

  /** add records that `key` got an item at `atMs`. */
  add(key: string, atMs: number): void {
    const bucket = Math.floor(atMs / this.#widthMs);
    let keys = this.#buckets.get(bucket);
    if (!keys) {
      keys = new Set();
      this.#buckets.set(bucket, keys);
    }
    keys.add(key);
  }

  /**
   * expire calls `visit` for every key of the buckets that lie wholly before `cutoffMs`, and
   * forgets those buckets. Buckets open in time order (the clock moves forward), so it stops at
   * the first one still young: nothing due costs one look.
   */
  expire(cutoffMs: number, visit: (key: string) => void): void {
    for (const [bucket, keys] of this.#buckets) {
      if ((bucket + 1) * this.#widthMs > cutoffMs) return;
      this.#buckets.delete(bucket);
      for (const key of keys) visit(key);
    }
  }
}
