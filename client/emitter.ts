/**
 * Emitter is a minimal typed event emitter that runs in browsers and Node alike. A listener
 * that throws does not stop the others; its error goes to `onListenerError`.
 */
// biome-ignore lint/suspicious/noExplicitAny: listener argument lists are declared per event map
export class Emitter<Events extends Record<string, (...args: any[]) => void>> {
  readonly #listeners = new Map<keyof Events, Set<Events[keyof Events]>>();
  readonly #onListenerError: (err: unknown) => void;

  constructor(onListenerError: (err: unknown) => void = (err) => console.error(err)) {
    this.#onListenerError = onListenerError;
  }

  /** on adds a listener and returns a function that removes it. */
  on<E extends keyof Events>(event: E, listener: Events[E]): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  off<E extends keyof Events>(event: E, listener: Events[E]): void {
    this.#listeners.get(event)?.delete(listener);
  }

  /** once resolves with the arguments of the next `event` that passes `filter`. */
  once<E extends keyof Events>(
    event: E,
    filter: (...args: Parameters<Events[E]>) => boolean = () => true,
  ): Promise<Parameters<Events[E]>> {
    return new Promise((resolve) => {
      const listener = ((...args: Parameters<Events[E]>) => {
        if (!filter(...args)) return;
        this.off(event, listener);
        resolve(args);
      }) as Events[E];
      this.on(event, listener);
    });
  }

  protected emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        listener(...args);
      } catch (err) {
        this.#onListenerError(err);
      }
    }
  }
}
