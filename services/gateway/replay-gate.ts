import { create, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { type ServerFrame, ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";

/** REPLAY_HOLD_MS bounds how long live frames wait for a replay that does not end. */
export const REPLAY_HOLD_MS = 10_000;
/** MAX_HELD bounds how many live frames wait for a replay. */
export const MAX_HELD = 2_000;

/**
 * LiveFrame is a live frame on its way to a connection: its bytes (binary ServerFrame) and, once
 * someone decoded it, the frame itself (shared by every connection the frame goes to).
 */
export interface LiveFrame {
  bytes: Uint8Array;
  decoded?: ServerFrame;
  /** json is the frame in the JSON encoding, once a JSON connection needed it. */
  json?: string;
}

/**
 * ReplayGate keeps one connection's replay and live delivery apart, so that a client sees what
 * the protocol promises: after `welcome`, the replay of its inbox after the vector it presented,
 * ending with `sync_state`, then live delivery with nothing twice.
 *
 * Live delivery and the replay race: routing may be behind (it delivers what the replay also
 * reads), or ahead (it delivers an entry the replay will send again). So while a replay runs,
 * live frames wait; when its `sync_state` comes, they follow it, without the inbox entries the
 * replay covered (those at or below the head it read up to, per origin region). Live entries
 * at or below that head that come later still (routing far behind) are dropped too. A replay
 * that does not end within REPLAY_HOLD_MS (notification down) releases what waited.
 */
export class ReplayGate {
  readonly #write: (frame: LiveFrame) => void;
  readonly #onTimeout: (held: number) => void;
  readonly #holdMs: number;
  /** pending counts replays asked for whose sync_state has not come. */
  #pending = 0;
  #held: LiveFrame[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** head is, per origin region, the inbox seq up to which replays sent everything. */
  readonly #head = new Map<string, bigint>();
  /** idlers wait for no replay to be pending (see idle). */
  #idlers: Array<() => void> = [];

  constructor(opts: {
    write: (frame: LiveFrame) => void;
    onTimeout?: (held: number) => void;
    holdMs?: number;
  }) {
    this.#write = opts.write;
    this.#onTimeout = opts.onTimeout ?? (() => {});
    this.#holdMs = opts.holdMs ?? REPLAY_HOLD_MS;
  }

  /** holding is true while live frames wait for a replay. */
  get holding(): boolean {
    return this.#pending > 0;
  }

  /** begin says a replay was asked for: live frames wait until its sync_state. */
  begin(): void {
    this.#pending++;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      const held = this.#held.length;
      this.#pending = 0;
      this.#release();
      this.#onTimeout(held);
    }, this.#holdMs);
  }

  /**
   * replayed is told of each frame of the replay stream (addressed to this connection alone)
   * once it was written; a sync_state raises the head and releases the live frames that waited.
   */
  replayed(frame: ServerFrame): void {
    if (frame.kind.case !== "syncState") return;
    for (const [region, seq] of Object.entries(frame.kind.value.inboxHead?.seqs ?? {})) {
      if (seq > (this.#head.get(region) ?? 0n)) this.#head.set(region, seq);
    }
    if (this.#pending > 0) this.#pending--;
    if (this.#pending === 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#release();
    }
  }

  /** live passes a live frame: it waits, goes out trimmed, or goes out as it is. */
  live(frame: LiveFrame): void {
    if (this.#pending > 0) {
      this.#held.push(frame);
      if (this.#held.length >= MAX_HELD) {
        this.#pending = 0;
        clearTimeout(this.#timer);
        this.#release();
      }
      return;
    }
    const out = this.#trim(frame);
    if (out) this.#write(out);
  }

  /**
   * idle resolves once no replay is pending: every one asked for has ended, been given up on,
   * or the gate was closed.
   */
  idle(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idlers.push(resolve));
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#held = [];
    this.#pending = 0;
    this.#wakeIdlers();
  }

  #release(): void {
    if (this.#pending > 0) return;
    const held = this.#held;
    this.#held = [];
    for (const f of held) {
      const out = this.#trim(f);
      if (out) this.#write(out);
    }
    this.#wakeIdlers();
  }

  #wakeIdlers(): void {
    for (const wake of this.#idlers.splice(0)) wake();
  }

  /** trim drops the inbox entries a replay already sent; undefined when none is left. */
  #trim(frame: LiveFrame): LiveFrame | undefined {
    if (this.#head.size === 0) return frame;
    frame.decoded ??= fromBinary(ServerFrameSchema, frame.bytes);
    const k = frame.decoded.kind;
    if (k.case !== "deliveries") return frame;
    const entries = k.value.entries.filter((e) => e.seq > (this.#head.get(e.region) ?? 0n));
    if (entries.length === k.value.entries.length) return frame;
    if (entries.length === 0) return undefined;
    const trimmed: MessageShape<typeof ServerFrameSchema> = create(ServerFrameSchema, {
      ...frame.decoded,
      kind: { case: "deliveries", value: { ...k.value, entries } },
    });
    return { bytes: toBinary(ServerFrameSchema, trimmed), decoded: trimmed };
  }
}
