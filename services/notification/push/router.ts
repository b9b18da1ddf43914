import type { PushPlatform } from "../../../gen/chat/v1/types_pb.ts";
import type { PushNote, PushOutcome, PushProvider, PushTarget } from "./push-provider.ts";

/**
 * PlatformPushRouter sends each token through the provider that serves its platform, so that
 * PUSH_PROVIDER=fcm,apns sends an FCM token to FCM and an APNs token to APNs. When several
 * serve a platform the most specific one takes it (fcm before log for FCM tokens, whatever
 * the order), and among equally specific ones the first listed. Its platforms are all those
 * served; the scheduler skips tokens of any other.
 */
export class PlatformPushRouter implements PushProvider {
  readonly platforms: readonly PushPlatform[];
  readonly #byPlatform = new Map<PushPlatform, PushProvider>();
  readonly #providers: readonly PushProvider[];

  constructor(providers: readonly PushProvider[]) {
    this.#providers = providers;
    for (const p of providers) {
      for (const platform of p.platforms) {
        const taken = this.#byPlatform.get(platform);
        if (!taken || p.platforms.length < taken.platforms.length) {
          this.#byPlatform.set(platform, p);
        }
      }
    }
    this.platforms = [...this.#byPlatform.keys()];
  }

  /** providerFor is the provider a platform's tokens go to. */
  providerFor(platform: PushPlatform): PushProvider | undefined {
    return this.#byPlatform.get(platform);
  }

  async send(target: PushTarget, note: PushNote): Promise<PushOutcome> {
    const p = this.#byPlatform.get(target.platform);
    // Not "invalid-token": a platform this deployment does not serve says nothing of the token.
    return p ? p.send(target, note) : "failed";
  }

  async close(): Promise<void> {
    await Promise.all(this.#providers.map((p) => p.close?.()));
  }
}
