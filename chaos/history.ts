/**
 * What the chaos run records and what the checker reads: one event per line of a JSON-lines
 * file (bigints as decimal strings), so a failed run can be checked again and read by a person.
 * Times are Unix milliseconds of the recording process's clock.
 */

/** ClientId names one device of one user: `<user>/<device>`. */
export type ClientId = string;

/** SendKey identifies a send across its copies: `<conversation>/<sender>/<client_msg_id>`. */
export type SendKey = string;

/** sendKey builds the identity of a send. */
export function sendKey(conversationId: string, senderId: string, clientMsgId: string): SendKey {
  return `${conversationId}/${senderId}/${clientMsgId}`;
}

/** MessageRef is one stored copy of a message: its identity and display position. */
export interface MessageRef {
  conversationId: string;
  senderId: string;
  clientMsgId: string;
  originRegion: string;
  seq: string;
  hlc: string;
}

/** HistoryEvent is one line of a recorded history. */
export type HistoryEvent =
  /** A client started: who it is and which conversations it belongs to. */
  | { t: number; ev: "client"; client: ClientId; user: string; conversations: string[] }
  /** A conversation exists with these members (recorded once, by the run). */
  | { t: number; ev: "conversation"; conversationId: string; members: string[] }
  /** The app asked to send (the SDK retries until acknowledged, with the same id). */
  | { t: number; ev: "send"; client: ClientId; conversationId: string; clientMsgId: string }
  /** The SDK put a send on the wire to a region (the first time and every retry). */
  | {
      t: number;
      ev: "attempt";
      client: ClientId;
      conversationId: string;
      clientMsgId: string;
      region: string;
    }
  /** A send was acknowledged: durable, with its identity; `region` answered the request. */
  | { t: number; ev: "ack"; client: ClientId; region: string; message: MessageRef }
  /** A send failed for good (not retryable). */
  | {
      t: number;
      ev: "send-failed";
      client: ClientId;
      conversationId: string;
      clientMsgId: string;
      error: string;
    }
  /** A message was shown to the app, live or replayed. */
  | { t: number; ev: "shown"; client: ClientId; replay: boolean; message: MessageRef }
  /** The client's connection moved to another region (`from` unset on the first). */
  | { t: number; ev: "region"; client: ClientId; from?: string; to: string; reason: string }
  /** A fault began or ended (recorded by the run, not by a client). */
  | { t: number; ev: "fault"; fault: FaultKind; region?: string; phase: "start" | "end" }
  /** Everything healed and settled: the checker reads the stores after this. */
  | { t: number; ev: "healed" };

/** NewEvent is an event before it is stamped: its time is optional (default: now). */
export type NewEvent = HistoryEvent extends infer E
  ? E extends HistoryEvent
    ? Omit<E, "t"> & { t?: number }
    : never
  : never;

/** FaultKind names a fault the run injects. */
export type FaultKind =
  | "region-kill"
  | "region-freeze"
  | "partition"
  | "gateway-kill"
  | "messaging-kill"
  | "broker-down";

/**
 * StoredHistories is what each region's store holds at the end of a run, per conversation:
 * `history` is what a reader sees (display order, copies collapsed), `log` every stored copy of
 * every message of every origin region visible there (not collapsed).
 */
export type StoredHistories = Record<
  string,
  Record<string, { history: MessageRef[]; log: MessageRef[] }>
>;
