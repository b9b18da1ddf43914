import {
  decodeServerFrame,
  type Encoding,
  encodeClientFrame,
  newNonce,
  subprotocol,
} from "./frames.ts";

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
 * A gateway that does not answer within `timeoutMs` (or fails) counts as unreachable. Never
 * rejects.
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
  const timer = setTimeout(() => finish(undefined), opts.timeoutMs);
  try {
    ws = new opts.WebSocket(url, [subprotocol(opts.encoding)]);
  } catch {
    finish(undefined);
    return { rtt, cancel: () => finish(undefined) };
  }
  const socket = ws;
  socket.binaryType = "arraybuffer";
  const nonce = newNonce();
  let sentAt = 0;
  socket.addEventListener("open", () => {
    sentAt = Date.now();
    socket.send(encodeClientFrame({ case: "ping", value: { nonce } }, 0, opts.encoding));
  });
  socket.addEventListener("message", (ev) => {
    try {
      const k = decodeServerFrame(ev.data).kind;
      if (k.case === "pong" && k.value.nonce === nonce) finish(Date.now() - sentAt);
    } catch {
      // Unreadable: only the pong counts, and the timeout covers a gateway that never sends it.
    }
  });
  // A failed connection also closes; listening keeps Node implementations from treating the
  // error as unhandled.
  socket.addEventListener("error", () => {});
  socket.addEventListener("close", () => finish(undefined));
  return { rtt, cancel: () => finish(undefined) };
}
