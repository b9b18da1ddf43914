import type { History, Message } from "../../gen/chat/v1/types_pb.ts";

/** DEFAULT_HISTORY_LIMIT is the page size of a query without a limit (types.proto). */
const DEFAULT_HISTORY_LIMIT = 50;

/** LARGEST_MESSAGE_BYTES is about what the largest message takes: 16 KB of text and its ids. */
const LARGEST_MESSAGE_BYTES = 16_384 + 512;

/**
 * historyLimit is how many messages to ask for when a client asks for `asked` (0: the
 * default): no more than fit in `maxBytes` at the largest size, so that a page of large
 * messages is not read, and carried through every service, only to be trimmed here.
 */
export function historyLimit(asked: number, maxBytes: number): number {
  const fit = Math.max(1, Math.floor(maxBytes / LARGEST_MESSAGE_BYTES));
  return Math.min(asked || DEFAULT_HISTORY_LIMIT, fit);
}

/**
 * capHistory bounds the bytes of one history answer: a page of 200 messages of 16 KB is 3.2
 * MB, more than a slow link takes in a while, and it would sit in the connection's buffer. It
 * keeps the newest messages whose sizes add up to at most `maxBytes` (always at least one) and
 * leaves the older ones out, with `has_more` set: a page lists messages oldest first and the
 * next page is asked for before its first message, so the client pages on from where this one
 * stops and loses nothing.
 */
export function capHistory(history: History, maxBytes: number): History {
  const messages = history.messages;
  let bytes = 0;
  let first = messages.length;
  while (first > 0) {
    const size = messageBytes(messages[first - 1] as Message);
    if (first < messages.length && bytes + size > maxBytes) break;
    bytes += size;
    first--;
  }
  if (first === 0) return history;
  return { ...history, messages: messages.slice(first), hasMore: true };
}

/**
 * MESSAGE_OVERHEAD stands for a message's numbers and field tags in the encoded frame (its
 * strings are counted one by one).
 */
const MESSAGE_OVERHEAD = 48;

/** messageBytes is about what a message takes in a binary frame: its strings and a bit more. */
function messageBytes(m: Message): number {
  let bytes =
    MESSAGE_OVERHEAD +
    m.conversationId.length +
    m.originRegion.length +
    m.senderId.length +
    m.senderDeviceId.length +
    m.clientMsgId.length;
  const c = m.content;
  if (c.case === "text") bytes += Buffer.byteLength(c.value);
  if (c.case === "membership") {
    bytes += Buffer.byteLength(c.value.title);
    for (const id of c.value.userIds) bytes += id.length + 2;
  }
  return bytes;
}
