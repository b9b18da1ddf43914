import { writerRegionOf } from "../../item-keys.ts";

/**
 * ItemChange is one item a store wrote, named by its key in the chat data layout
 * (`item-keys.ts`), with the value the store keeps for it (a private copy).
 */
export interface ItemChange {
  pk: string;
  sk: string;
  value: unknown;
}

/**
 * Replica is what an in-memory store offers the local table replicator, the stand-in for
 * DynamoDB Global Table replication (which reads the table's stream instead): every item the
 * store writes, in write order, and a way to make another region's items visible here.
 */
export interface Replica {
  readonly region: string;
  /** onChange calls `listener` with every item this store writes, in order; returns an unsubscribe. */
  onChange(listener: (change: ItemChange) => void): () => void;
  /**
   * applyReplicated makes another region's item visible here, replacing the copy replication
   * brought before. It throws for an item whose key names this region: this region is its only
   * writer, so a copy arriving from elsewhere means two regions wrote it.
   */
  applyReplicated(change: ItemChange): void;
  /** items lists every item the store holds, its own and replicated ones, for convergence checks. */
  items(): ItemChange[];
}

/** ChangeListeners fans a store's changes out to its replicators. */
export class ChangeListeners {
  readonly #listeners = new Set<(change: ItemChange) => void>();

  add(listener: (change: ItemChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** emit tells every listener; `value` is built only when someone listens. */
  emit(pk: string, sk: string, value: () => unknown): void {
    if (this.#listeners.size === 0) return;
    const change = { pk, sk, value: value() };
    for (const l of this.#listeners) l(change);
  }
}

/** foreignRegion checks that a replicated item was written by another region and returns it. */
export function foreignRegion(localRegion: string, change: ItemChange): string {
  const writer = writerRegionOf(change.pk, change.sk);
  if (writer === localRegion) {
    throw new Error(
      `single-writer rule broken: item ${change.pk} / ${change.sk} belongs to ${localRegion}, yet a copy arrived from another region`,
    );
  }
  return writer;
}
