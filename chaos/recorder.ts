import { createWriteStream, readFileSync, type WriteStream } from "node:fs";
import type { ChatClient } from "../client/index.ts";
import type { Message } from "../gen/chat/v1/types_pb.ts";
import type { ClientId, HistoryEvent, MessageRef, NewEvent } from "./history.ts";

/** refOf is a message's identity and display position, as recorded. */
export function refOf(m: Message): MessageRef {
  return {
    conversationId: m.conversationId,
    senderId: m.senderId,
    clientMsgId: m.clientMsgId,
    originRegion: m.originRegion,
    seq: m.seq.toString(),
    hlc: m.hlc.toString(),
  };
}

/**
 * HistoryLog keeps every recorded event in memory, in the order recorded, and (with a file)
 * appends each as one JSON line, so a failed run can be checked again and read.
 */
export class HistoryLog {
  readonly #events: HistoryEvent[] = [];
  readonly #file: WriteStream | undefined;

  constructor(file?: string) {
    this.#file = file ? createWriteStream(file, { flags: "w" }) : undefined;
  }

  /** record appends an event, stamped now unless it carries its own time. */
  record(event: NewEvent): void {
    const e = { ...event, t: event.t ?? Date.now() } as HistoryEvent;
    this.#events.push(e);
    this.#file?.write(`${JSON.stringify(e)}\n`);
  }

  /** events returns everything recorded so far. */
  events(): HistoryEvent[] {
    return this.#events;
  }

  async close(): Promise<void> {
    const file = this.#file;
    if (file) await new Promise<void>((resolve) => file.end(resolve));
  }
}

/** readHistory reads a history written by HistoryLog. */
export function readHistory(file: string): HistoryEvent[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line, i) => {
      try {
        return JSON.parse(line) as HistoryEvent;
      } catch (err) {
        throw new Error(`${file}:${i + 1}: not a history event: ${(err as Error).message}`);
      }
    });
}

/**
 * recordClient records what a client's app sees: every message shown (live or replayed),
 * every region switch, and every send put on the wire.
 */
export function recordClient(log: HistoryLog, client: ChatClient, id: ClientId): void {
  client.on("message", (m, info) => {
    log.record({ ev: "shown", client: id, replay: info.replay, message: refOf(m) });
  });
  client.on("region", (r) => {
    log.record({ ev: "region", client: id, from: r.from, to: r.to, reason: r.reason });
  });
  client.on("attempt", (a) => {
    log.record({ ev: "attempt", client: id, ...a });
  });
}

/** recordedSend sends a text through a client, recording the request and its outcome. */
export async function recordedSend(
  log: HistoryLog,
  client: ChatClient,
  id: ClientId,
  conversationId: string,
  clientMsgId: string,
  text: string,
): Promise<boolean> {
  log.record({ ev: "send", client: id, conversationId, clientMsgId });
  try {
    const m = await client.send(conversationId, text, { clientMsgId });
    log.record({ ev: "ack", client: id, region: client.region, message: refOf(m) });
    return true;
  } catch (err) {
    log.record({
      ev: "send-failed",
      client: id,
      conversationId,
      clientMsgId,
      error: (err as Error).message,
    });
    return false;
  }
}
