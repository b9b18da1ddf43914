import { PushPlatform } from "../../../gen/chat/v1/types_pb.ts";
import type { PushNote, PushOutcome, PushProvider, PushTarget } from "./push-provider.ts";
import { platformName } from "./push-provider.ts";

/**
 * WebhookPushProvider POSTs each notification as JSON to one URL, for integrations and local
 * development: `{"platform","token","title","body","conversationId","collapseKey","data"}`.
 * A 404 or 410 answer means the token is dead; other failures are transient.
 */
export class WebhookPushProvider implements PushProvider {
  readonly platforms = [PushPlatform.FCM, PushPlatform.APNS, PushPlatform.WEBHOOK] as const;
  readonly #url: string;
  readonly #timeoutMs: number;

  constructor(url: string, opts: { timeoutMs?: number } = {}) {
    this.#url = url;
    this.#timeoutMs = opts.timeoutMs ?? 5_000;
  }

  async send(target: PushTarget, note: PushNote): Promise<PushOutcome> {
    try {
      const res = await fetch(this.#url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          platform: platformName(target.platform),
          token: target.token,
          ...note,
        }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      await res.body?.cancel();
      if (res.ok) return "sent";
      if (res.status === 404 || res.status === 410) return "invalid-token";
      return "failed";
    } catch {
      return "failed";
    }
  }
}
