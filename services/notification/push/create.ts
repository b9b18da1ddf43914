import type { NotificationConfig, PushProviderName } from "../../shared/config.ts";
import type { Logger } from "../../shared/logger.ts";
import { ApnsPushProvider } from "./apns-push.ts";
import { FcmPushProvider } from "./fcm-push.ts";
import { LogPushProvider } from "./log-push.ts";
import type { PushProvider } from "./push-provider.ts";
import { PlatformPushRouter } from "./router.ts";
import { WebhookPushProvider } from "./webhook-push.ts";

/** PushTestOptions are for tests only: `ca` trusts a local fake's certificate. */
export interface PushTestOptions {
  ca?: string | Buffer;
}

/**
 * createPushProvider returns the providers PUSH_PROVIDER lists behind one PlatformPushRouter:
 * each token goes to the provider serving its platform. loadNotificationConfig has checked
 * that each listed provider has its settings.
 */
export function createPushProvider(
  config: NotificationConfig,
  log: Logger,
  test: PushTestOptions = {},
): PushProvider {
  const build = (name: PushProviderName): PushProvider => {
    const { push } = config;
    switch (name) {
      case "log":
        return new LogPushProvider(log);
      case "webhook":
        return new WebhookPushProvider(push.webhookUrl as string);
      case "fcm": {
        const fcm = push.fcm as NonNullable<typeof push.fcm>;
        return new FcmPushProvider({ ...fcm, ca: test.ca, log });
      }
      case "apns": {
        const apns = push.apns as NonNullable<typeof push.apns>;
        return new ApnsPushProvider({ ...apns, ca: test.ca, log });
      }
    }
  };
  return new PlatformPushRouter(config.push.providers.map(build));
}
