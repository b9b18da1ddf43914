import v8 from "node:v8";

/**
 * ProcessCounters are one Node process's garbage collection and allocation since it started
 * probing, cumulative: the benchmark takes the difference over a step's window.
 */
export interface ProcessCounters {
  /** gcCount and gcPauseMs are the collections V8 ran and the main-thread time they took. */
  gcCount: number;
  gcPauseMs: number;
  /** fullGcCount counts the mark-compact collections among them (the long pauses). */
  fullGcCount: number;
  /** allocatedBytes is what the JS heap allocated: its growth plus what collections freed. */
  allocatedBytes: number;
  /** heapUsedBytes is the JS heap in use now (garbage included). */
  heapUsedBytes: number;
}

/**
 * Probe watches this process's collections with V8's GCProfiler, which records, for every
 * collection, its type, its pause and the heap before and after. Allocation is not counted by
 * V8 anywhere, but follows from those: what the heap grew by between two samples plus what the
 * collections in between freed. The profiler keeps its records until stopped, so every sample
 * stops it and starts it again, and the probe keeps running totals only.
 */
export class Probe {
  #profiler = new v8.GCProfiler();
  #lastUsed = v8.getHeapStatistics().used_heap_size;
  readonly #totals: ProcessCounters = {
    gcCount: 0,
    gcPauseMs: 0,
    fullGcCount: 0,
    allocatedBytes: 0,
    heapUsedBytes: 0,
  };

  constructor() {
    this.#profiler.start();
  }

  /** sample returns the totals so far. */
  sample(): ProcessCounters {
    const profile = this.#profiler.stop();
    // Nothing runs between stop and start (one synchronous turn): no collection is missed.
    this.#profiler = new v8.GCProfiler();
    this.#profiler.start();
    const used = v8.getHeapStatistics().used_heap_size;
    let freed = 0;
    for (const gc of profile?.statistics ?? []) {
      this.#totals.gcCount++;
      this.#totals.gcPauseMs += gc.cost / 1000;
      if (gc.gcType === "MarkSweepCompact") this.#totals.fullGcCount++;
      freed += gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize;
    }
    this.#totals.allocatedBytes += used - this.#lastUsed + freed;
    this.#lastUsed = used;
    this.#totals.heapUsedBytes = used;
    return { ...this.#totals };
  }
}
