import { PushPlatform } from "../../../gen/chat/v1/types_pb.ts";
import type { Logger } from "../../shared/logger.ts";
import type { PushNote, PushOutcome, PushProvider, PushTarget } from "./push-provider.ts";
import { platformName } from "./push-provider.ts";

/**
 * LogPushProvider writes each notification to the log instead of sending it: the local
 * default, so the push path runs end to end without credentials.
 */
export class LogPushProvider implements PushProvider {
  readonly platforms = [PushPlatform.FCM, PushPlatform.APNS, PushPlatform.WEBHOOK] as const;
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  async send(target: PushTarget, note: PushNote): Promise<PushOutcome> {
    this.#log.info(
      { platform: platformName(target.platform), token: redact(target.token), note },
      "push notification",
    );
    return "sent";
  }
}

/** redact keeps enough of a token to tell devices apart in logs. */
export function redact(token: string): string {
  return token.length <= 8 ? "***" : `${token.slice(0, 4)}…${token.slice(-4)}`;
}
