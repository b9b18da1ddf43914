import { type PushPlatform, PushPlatformSchema } from "../../../gen/chat/v1/types_pb.ts";

/**
 * PushProvider sends one push notification to one device token. Notification calls it for
 * messages that no device of a recipient received within the push delay.
 *
 * Implementations: LogPushProvider (writes the notification to the log), WebhookPushProvider
 * (POSTs JSON), FcmPushProvider (FCM HTTP v1), ApnsPushProvider (APNs over HTTP/2).
 */
export interface PushProvider {
  /** platforms lists the token platforms this provider can send to. */
  readonly platforms: readonly PushPlatform[];
  send(target: PushTarget, note: PushNote): Promise<PushOutcome>;
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
 * PushOutcome says what happened: "sent"; "invalid-token" (the token is dead and should be
 * forgotten); "failed" (transient, may be retried).
 */
export type PushOutcome = "sent" | "invalid-token" | "failed";

/** platformName names a platform for logs and payloads, e.g. "FCM". */
export function platformName(p: PushPlatform): string {
  return PushPlatformSchema.value[p]?.localName ?? String(p);
}
