/**
 * Turns lets at most `limit` tasks run at once and queues the rest in order: how a connection
 * bounds its expensive requests. take resolves true with a turn, or false once the queue was
 * closed (the connection went away); every true must be followed by one give.
 */
export class Turns {
  readonly #limit: number;
  #running = 0;
  #closed = false;
  readonly #waiters: Array<(run: boolean) => void> = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  take(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    if (this.#running < this.#limit) {
      this.#running++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** give hands a finished task's turn to the next one waiting, in order. */
  give(): void {
    const next = this.#waiters.shift();
    if (next) next(true);
    else this.#running--;
  }

  /** close refuses every waiting and later take. */
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter(false);
  }
}
