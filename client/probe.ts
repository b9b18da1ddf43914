import {
  decodeServerFrame,
  type Encoding,
  encodeClientFrame,
  newNonce,
  subprotocol,
} from "./frames.ts";

/** PROBE_SAMPLES is how many pings a probe times per gateway. */
export const PROBE_SAMPLES = 2;

/** ProbeOptions say how to reach gateways and how long to wait for them. */
export interface ProbeOptions {
  WebSocket: typeof WebSocket;
  encoding: Encoding;
  timeoutMs: number;
}

/** Probe is a measurement in progress. */
export interface Probe {
  /** rtts resolves with each URL's round-trip time in ms, undefined where none came back. */
  readonly rtts: Promise<Array<number | undefined>>;
  /** cancel ends the measurement now; unanswered URLs count as unreachable. */
  cancel(): void;
}

/**
 * probe measures the round-trip time to every gateway at once: it opens a WebSocket to each,
 * sends a ping the moment it opens (gateways answer pings before the hello), and times the
 * ping to its pong, leaving out the handshake so a slow TLS setup does not hide a near region.
 * It pings PROBE_SAMPLES times, one after the other, and keeps the least: one sample can land
 * on a stall (a busy phone, a gateway's first frame) and rank a near region behind a far one.
 * A gateway that does not answer within `timeoutMs` (or fails) counts as unreachable, unless
 * some pong came back by then. Never rejects.
 */
export function probe(urls: readonly string[], opts: ProbeOptions): Probe {
  const each = urls.map((url) => probeOne(url, opts));
  return {
    rtts: Promise.all(each.map((p) => p.rtt)),
    cancel: () => {
      for (const p of each) p.cancel();
    },
  };
}

function probeOne(
  url: string,
  opts: ProbeOptions,
): { rtt: Promise<number | undefined>; cancel: () => void } {
  let settle!: (rtt: number | undefined) => void;
  const rtt = new Promise<number | undefined>((resolve) => {
    settle = resolve;
  });
  let ws: WebSocket | undefined;
  let done = false;
  const finish = (value: number | undefined) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    try {
      ws?.close(1000);
    } catch {
      // Already closed, or never opened: nothing to release.
    }
    settle(value);
  };
  let best: number | undefined;
  let samples = 0;
  const timer = setTimeout(() => finish(best), opts.timeoutMs);
  try {
    ws = new opts.WebSocket(url, [subprotocol(opts.encoding)]);
  } catch {
    finish(undefined);
    return { rtt, cancel: () => finish(undefined) };
  }
  const socket = ws;
  socket.binaryType = "arraybuffer";
  let nonce = 0n;
  let sentAt = 0;
  const ping = () => {
    nonce = newNonce();
    sentAt = Date.now();
    socket.send(encodeClientFrame({ case: "ping", value: { nonce } }, 0, opts.encoding));
  };
  socket.addEventListener("open", ping);
  socket.addEventListener("message", (ev) => {
    let k: ReturnType<typeof decodeServerFrame>["kind"];
    try {
      k = decodeServerFrame(ev.data).kind;
    } catch {
      // Unreadable: only the pong counts, and the timeout covers a gateway that never sends it.
      return;
    }
    if (k.case !== "pong" || k.value.nonce !== nonce) return;
    const sample = Date.now() - sentAt;
    best = best === undefined ? sample : Math.min(best, sample);
    if (++samples >= PROBE_SAMPLES) finish(best);
    else ping();
  });
  // A failed connection also closes; listening keeps Node implementations from treating the
  // error as unhandled.
  socket.addEventListener("error", () => {});
  socket.addEventListener("close", () => finish(best));
  return { rtt, cancel: () => finish(undefined) };
}
