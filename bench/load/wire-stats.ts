/**
 * WireStats counts what crosses the clients' sockets, both ways: WebSocket messages (frames)
 * and their payload bytes (WebSocket framing not included), those the server wrote by kind.
 * One instance is shared by all the clients of a run; the load reads it at a step's window
 * edges.
 */
export class WireStats {
  framesIn = 0;
  bytesIn = 0;
  framesOut = 0;
  bytesOut = 0;
  readonly framesInByKind = new Map<string, number>();

  received(bytes: number, kind: string): void {
    this.framesIn++;
    this.bytesIn += bytes;
    this.framesInByKind.set(kind, (this.framesInByKind.get(kind) ?? 0) + 1);
  }

  sent(bytes: number): void {
    this.framesOut++;
    this.bytesOut += bytes;
  }

  snapshot(): WireSnapshot {
    return {
      framesIn: this.framesIn,
      bytesIn: this.bytesIn,
      framesOut: this.framesOut,
      bytesOut: this.bytesOut,
      framesInByKind: Object.fromEntries(this.framesInByKind),
    };
  }
}

/** WireSnapshot is WireStats at one moment (or the difference of two). */
export interface WireSnapshot {
  /** framesIn and bytesIn: what the server wrote to the clients. */
  framesIn: number;
  bytesIn: number;
  /** framesOut and bytesOut: what the clients wrote to the server (sends, acks, pings). */
  framesOut: number;
  bytesOut: number;
  framesInByKind: Record<string, number>;
}

/** wireDelta is what happened between two snapshots. */
export function wireDelta(a: WireSnapshot, b: WireSnapshot): WireSnapshot {
  const byKind: Record<string, number> = {};
  for (const [k, n] of Object.entries(b.framesInByKind)) {
    const d = n - (a.framesInByKind[k] ?? 0);
    if (d !== 0) byKind[k] = d;
  }
  return {
    framesIn: b.framesIn - a.framesIn,
    bytesIn: b.bytesIn - a.bytesIn,
    framesOut: b.framesOut - a.framesOut,
    bytesOut: b.bytesOut - a.bytesOut,
    framesInByKind: byKind,
  };
}
