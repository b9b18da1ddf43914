import type { Message } from "../../../../gen/chat/v1/types_pb.ts";

/** Kept is an inbox entry as an inbox keeps it: the shared message copy, and when it was written. */
export interface Kept {
  message: Message;
  atMs: number;
}

/**
 * EntryLog holds one inbox's entries by seq in two arrays (message, time) from its oldest seq
 * on, instead of a map of entry objects: an inbox entry costs two array slots, not a key, an
 * object and a boxed timestamp for the collector to trace. Seqs may arrive in any order (a
 * replicated inbox has holes until they fill); iteration is by ascending seq.
 */
export class EntryLog {
  /** seq of the slot at #start */
  #base = 1n;
  #start = 0;
  #messages: Array<Message | undefined> = [];
  /** NaN where no entry is: the array stays one of plain doubles */
  #atMs: number[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  #slot(seq: bigint): number {
    return this.#start + Number(seq - this.#base);
  }

  has(seq: bigint): boolean {
    const i = this.#slot(seq);
    return i >= this.#start && i < this.#messages.length && this.#messages[i] !== undefined;
  }

  get(seq: bigint): Kept | undefined {
    if (!this.has(seq)) return undefined;
    const i = this.#slot(seq);
    return { message: this.#messages[i] as Message, atMs: this.#atMs[i] as number };
  }

  set(seq: bigint, kept: Kept): void {
    if (this.#size === 0) {
      this.#base = seq;
      this.#start = 0;
      this.#messages = [];
      this.#atMs = [];
    } else if (seq < this.#base) {
      // Below the oldest held (a replicated entry arriving late): make room in front.
      const gap = Number(this.#base - seq);
      const live = this.#messages.length - this.#start;
      this.#messages = [
        ...new Array<Message | undefined>(gap).fill(undefined),
        ...this.#messages.slice(this.#start),
      ];
      this.#atMs = [...new Array<number>(gap).fill(Number.NaN), ...this.#atMs.slice(this.#start)];
      this.#start = 0;
      this.#base = seq;
      if (this.#messages.length !== gap + live) throw new Error("EntryLog: lost track of slots");
    }
    const i = this.#slot(seq);
    while (this.#messages.length < i) {
      this.#messages.push(undefined);
      this.#atMs.push(Number.NaN);
    }
    if (this.#messages[i] === undefined) this.#size++;
    this.#messages[i] = kept.message;
    this.#atMs[i] = kept.atMs;
  }

  /** first is the oldest entry held, if any. */
  first(): [bigint, Kept] | undefined {
    for (let i = this.#start; i < this.#messages.length; i++) {
      const message = this.#messages[i];
      if (message !== undefined) {
        return [this.#base + BigInt(i - this.#start), { message, atMs: this.#atMs[i] as number }];
      }
    }
    return undefined;
  }

  /** dropFirst drops the oldest entry held (and the holes before it). */
  dropFirst(): void {
    const first = this.first();
    if (!first) return;
    const i = this.#slot(first[0]);
    this.#messages[i] = undefined;
    this.#size--;
    const next = i + 1;
    this.#base = first[0] + 1n;
    this.#start = next;
    // Compact now and then, so dropped slots do not pile up in front.
    if (this.#start > 1024 && this.#start * 2 > this.#messages.length) {
      this.#messages = this.#messages.slice(this.#start);
      this.#atMs = this.#atMs.slice(this.#start);
      this.#start = 0;
    }
  }

  /** last is the highest seq held (0n when empty). */
  last(): bigint {
    for (let i = this.#messages.length - 1; i >= this.#start; i--) {
      if (this.#messages[i] !== undefined) return this.#base + BigInt(i - this.#start);
    }
    return 0n;
  }

  *[Symbol.iterator](): IterableIterator<[bigint, Kept]> {
    for (let i = this.#start; i < this.#messages.length; i++) {
      const message = this.#messages[i];
      if (message !== undefined) {
        yield [this.#base + BigInt(i - this.#start), { message, atMs: this.#atMs[i] as number }];
      }
    }
  }
}
