/**
 * ClientStateStore keeps what a device must not forget between runs: its inbox position (so
 * a restart resumes instead of replaying everything) and the sends not yet acknowledged (so a
 * restart retries them with the same ids). Apps back it with their own storage.
 */
export interface ClientStateStore {
  load(): PersistedState | undefined | Promise<PersistedState | undefined>;
  save(state: PersistedState): void | Promise<void>;
}

/** PersistedState is what a ClientStateStore holds. */
export interface PersistedState {
  /** inbox maps region to the contiguous inbox seq reached, as a decimal string. */
  inbox: Record<string, string>;
  pending: PendingSend[];
  /** seenHlc is the highest hlc the device has seen, as a decimal string (absent before). */
  seenHlc?: string;
  /**
   * seen holds the identities of the most recent sends already shown, oldest first, so that a
   * send copied into two regions by a retry is shown once even across a restart. Opaque.
   */
  seen?: string[];
}

/** PendingSend is a send not yet acknowledged. */
export interface PendingSend {
  conversationId: string;
  clientMsgId: string;
  text: string;
}

/**
 * MemoryStateStore keeps state for the lifetime of the process (the default). The client hands
 * it a new object on every save and never changes one afterwards, so it is kept as given.
 */
export class MemoryStateStore implements ClientStateStore {
  #state: PersistedState | undefined;
  load() {
    return this.#state && structuredClone(this.#state);
  }
  save(state: PersistedState) {
    this.#state = state;
  }
}
