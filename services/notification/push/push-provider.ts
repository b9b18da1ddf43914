import { type PushPlatform, PushPlatformSchema } from "../../../gen/chat/v1/types_pb.ts";

/**
 * PushProvider sends one push notification to one device token. Notification calls it for
 * messages that no device of a recipient received within the push delay.
 *
 * Implementations: LogPushProvider (log-push.ts, writes the notification to the log),
 * WebhookPushProvider (webhook-push.ts, POSTs JSON), FcmPushProvider (fcm-push.ts, FCM HTTP v1)
 * and ApnsPushProvider (apns-push.ts, APNs over HTTP/2); PlatformPushRouter (router.ts) puts
 * those PUSH_PROVIDER names together, each serving its platforms (create.ts).
 *
 * send never throws, and retries what is worth retrying itself, within a bounded time: the
 * scheduler sends one batch at a time and does not retry.
 */
export interface PushProvider {
  /** platforms lists the token platforms this provider can send to. */
  readonly platforms: readonly PushPlatform[];
  send(target: PushTarget, note: PushNote): Promise<PushOutcome>;
  /** close ends the provider's connections, if it keeps any. */
  close?(): Promise<void>;
}

/** PushTarget is a device token. */
export interface PushTarget {
  platform: PushPlatform;
  token: string;
}

/** PushNote is the notification. */
export interface PushNote {
  title: string;
  body: string;
  conversationId: string;
  /** collapseKey lets the push service replace an older undelivered note of the same key. */
  collapseKey: string;
  data: Record<string, string>;
}

/**
 * PushOutcome says what happened: "sent"; "invalid-token" (the service said the token is dead:
 * it is forgotten); "failed" (anything else, once the provider's own retries are spent: the
 * token is kept).
 */
export type PushOutcome = "sent" | "invalid-token" | "failed";

/** platformName names a platform for logs and payloads, e.g. "FCM". */
export function platformName(p: PushPlatform): string {
  return PushPlatformSchema.value[p]?.localName ?? String(p);
}
