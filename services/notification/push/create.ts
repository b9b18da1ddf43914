import type { NotificationConfig } from "../../shared/config.ts";
import type { Logger } from "../../shared/logger.ts";
import { LogPushProvider } from "./log-push.ts";
import type { PushProvider } from "./push-provider.ts";
import { WebhookPushProvider } from "./webhook-push.ts";

/** createPushProvider returns the push provider PUSH_PROVIDER names. */
export function createPushProvider(config: NotificationConfig, log: Logger): PushProvider {
  switch (config.push.provider) {
    case "webhook":
      return new WebhookPushProvider(config.push.webhookUrl as string);
    case "log":
      return new LogPushProvider(log);
  }
}
