import type { ChatClient } from "../../client/index.ts";
import type { Message } from "../../gen/chat/v1/types_pb.ts";

/** early holds what clients emitted before a recorder was made for them (see recordFromStart). */
const early = new WeakMap<ChatClient, { messages: Message[]; stop: () => void }>();

/**
 * recordFromStart keeps every message `client` emits from now on, for the MessageRecorder made
 * for it later: a replay can arrive before `connect()`'s caller gets the client back.
 */
export function recordFromStart(client: ChatClient): void {
  const messages: Message[] = [];
  const stop = client.on("message", (m) => {
    messages.push(m);
  });
  early.set(client, { messages, stop });
}

/**
 * MessageRecorder records every message a client emits, to assert on what a user saw: each
 * message once, in order, nothing missing. For a client that recordFromStart was called on
 * (every client of `connect()`), that includes what came before the recorder was made.
 */
export class MessageRecorder {
  readonly messages: Message[] = [];
  readonly #waiters: Array<{ pred: () => boolean; resolve: () => void }> = [];

  constructor(client: ChatClient) {
    const before = early.get(client);
    if (before) {
      before.stop();
      early.delete(client);
      this.messages.push(...before.messages);
    }
    client.on("message", (m) => {
      this.messages.push(m);
      for (const w of [...this.#waiters]) {
        if (w.pred()) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  }

  /** texts returns the text of the recorded messages of a conversation, in arrival order. */
  texts(conversationId?: string): string[] {
    return this.messages
      .filter((m) => !conversationId || m.conversationId === conversationId)
      .flatMap((m) => (m.content.case === "text" ? [m.content.value] : []));
  }

  /** until resolves once `pred` holds (checked now and after every message), or rejects after `ms`. */
  until(pred: (messages: Message[]) => boolean, ms = 5_000, what = "messages"): Promise<void> {
    if (pred(this.messages)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = { pred: () => pred(this.messages), resolve };
      this.#waiters.push(waiter);
      setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i < 0) return;
        this.#waiters.splice(i, 1);
        reject(
          new Error(
            `timed out after ${ms} ms waiting for ${what}; have ${this.messages.length}: ${JSON.stringify(this.texts())}`,
          ),
        );
      }, ms);
    });
  }

  /** count waits until at least `n` text messages were recorded in a conversation. */
  count(n: number, conversationId?: string, ms = 5_000): Promise<void> {
    return this.until(
      () => this.texts(conversationId).length >= n,
      ms,
      `${n} messages${conversationId ? ` in ${conversationId}` : ""}`,
    );
  }
}
