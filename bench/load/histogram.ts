import * as hdr from "hdr-histogram-js";

/** Percentiles summarises a latency histogram, in milliseconds. */
export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** LatencyHistogram records latencies in microseconds, from 1 µs to 10 minutes, 3 digits. */
export class LatencyHistogram {
  readonly #h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });

  /** record adds one latency given in (fractional) milliseconds. */
  record(ms: number): void {
    this.#h.recordValue(Math.min(600_000_000, Math.max(1, Math.round(ms * 1000))));
  }

  summary(): Percentiles {
    const h = this.#h;
    const at = (p: number) => (h.totalCount === 0 ? 0 : h.getValueAtPercentile(p) / 1000);
    return {
      count: h.totalCount,
      p50: at(50),
      p90: at(90),
      p99: at(99),
      p999: at(99.9),
      max: h.totalCount === 0 ? 0 : h.maxValue / 1000,
    };
  }
}
