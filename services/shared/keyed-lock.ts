/**
 * KeyedLock runs async work one at a time per key and concurrently across keys. Persistence
 * uses it so appends to one conversation from one process queue up instead of colliding on
 * the store's compare-and-set (which still guards against other processes).
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** run waits for earlier work on `key`, then runs `work`. */
  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key);
    const current = (prev ?? Promise.resolve()).then(work);
    const tail = current.catch(() => undefined);
    this.#tails.set(key, tail);
    try {
      return await current;
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
