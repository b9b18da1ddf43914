import { createHash, randomBytes } from "node:crypto";

/**
 * Identifier rules shared by every service. Ids are ASCII letters, digits, '_' and '-' (the
 * pattern the contracts validate), so they are safe in keys, topics and logs.
 */

/** ID_PATTERN matches user, device, conversation and client message ids. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** REGION_PATTERN matches region names such as us-east-1. */
export const REGION_PATTERN = /^[a-z0-9-]{1,32}$/;

function digest(...parts: string[]): string {
  return createHash("sha256").update(parts.join("\u0000")).digest("base64url").slice(0, 26);
}

/**
 * directConversationId derives the id of the direct conversation between two users, the same
 * in every region and whoever creates it.
 */
export function directConversationId(a: string, b: string): string {
  const [x, y] = a < b ? [a, b] : [b, a];
  return `d_${digest("direct", x, y)}`;
}

/**
 * groupConversationId derives a group's id from its creator and the creation's client_msg_id,
 * so a retried creation lands on the same group.
 */
export function groupConversationId(creator: string, clientMsgId: string): string {
  return `g_${digest("group", creator, clientMsgId)}`;
}

/** randomId returns a random URL-safe id with a prefix, e.g. for sessions and instances. */
export function randomId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString("base64url")}`;
}
