/**
 * Hybrid logical clocks: Unix milliseconds in the high 48 bits, a logical counter in the low
 * 16. An HLC never runs backwards in one process, stays close to wall time, and orders an event
 * after every HLC it has seen, across regions whose clocks disagree.
 */

const LOGICAL_BITS = 16n;
const LOGICAL_MASK = (1n << LOGICAL_BITS) - 1n;

/** hlcFromMillis returns the smallest HLC of a wall-clock millisecond. */
export function hlcFromMillis(ms: number): bigint {
  return BigInt(Math.floor(ms)) << LOGICAL_BITS;
}

/** hlcMillis returns the wall-clock part of an HLC (Unix milliseconds). */
export function hlcMillis(hlc: bigint): number {
  return Number(hlc >> LOGICAL_BITS);
}

/** HybridClock issues strictly increasing HLCs. */
export interface HybridClock {
  /** now returns an HLC greater than every one issued or observed before. */
  now(): bigint;
  /**
   * after returns an HLC greater than `floor` and than every one issued before; `floor` is
   * the largest HLC the event must sort after.
   */
  after(floor: bigint): bigint;
}

/**
 * createHybridClock returns a clock over `wallMs`. Floors further ahead of the wall clock than
 * `maxDriftMs` are refused, so one client cannot drag a conversation's clock into the future.
 */
export function createHybridClock(
  wallMs: () => number = Date.now,
  maxDriftMs = 60_000,
): HybridClock {
  let last = 0n;
  const after = (floor: bigint): bigint => {
    const wall = hlcFromMillis(wallMs());
    if (floor > wall + hlcFromMillis(maxDriftMs)) {
      throw new ClockDriftError(floor, wall);
    }
    let next = wall;
    if (next <= last) next = last + 1n;
    if (next <= floor) next = floor + 1n;
    if ((next & LOGICAL_MASK) === LOGICAL_MASK) {
      // 65535 events in one millisecond: borrow the next millisecond rather than overflow.
      next = ((next >> LOGICAL_BITS) + 1n) << LOGICAL_BITS;
    }
    last = next;
    return next;
  };
  return { now: () => after(0n), after };
}

/** ClockDriftError reports a floor HLC too far ahead of this clock's wall time. */
export class ClockDriftError extends Error {
  override name = "ClockDriftError";
  readonly floor: bigint;
  readonly wall: bigint;
  constructor(floor: bigint, wall: bigint) {
    super(`hlc ${floor} is ${hlcMillis(floor) - hlcMillis(wall)} ms ahead of this region's clock`);
    this.floor = floor;
    this.wall = wall;
  }
}
