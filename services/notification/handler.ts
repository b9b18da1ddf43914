import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  NotificationService,
  RegisterPushTokenRequest,
  ReplayRequest,
} from "../../gen/chat/v1/notification_pb.ts";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { invalidArgument } from "../shared/errors.ts";
import { callerOf } from "../shared/interceptors.ts";
import { DEFAULT_MAX_PUSH_DEVICES, newestTokens } from "./push/device-cap.ts";
import type { Replayer } from "./replayer.ts";

/** NotificationHandler implements NotificationService. */
export class NotificationHandler implements ServiceImpl<typeof NotificationService> {
  readonly #persistence: Client<typeof PersistenceService>;
  readonly #replayer: Replayer;
  readonly #maxDevices: number;

  /** `opts.maxDevicesPerUser` caps each user's push tokens (MAX_PUSH_DEVICES_PER_USER). */
  constructor(
    persistence: Client<typeof PersistenceService>,
    replayer: Replayer,
    opts: { maxDevicesPerUser?: number } = {},
  ) {
    this.#persistence = persistence;
    this.#replayer = replayer;
    this.#maxDevices = opts.maxDevicesPerUser ?? DEFAULT_MAX_PUSH_DEVICES;
  }

  async registerPushToken(req: RegisterPushTokenRequest, ctx: HandlerContext) {
    const caller = callerOf(ctx);
    if (caller.deviceId === "")
      throw invalidArgument("the internal token names no device: required to register a token");
    await this.#persistence.savePushToken({
      userId: caller.userId,
      token: { deviceId: caller.deviceId, platform: req.platform, token: req.token },
    });
    await this.#evictBeyondCap(caller.userId, caller.deviceId);
    return {};
  }

  /**
   * evictBeyondCap forgets the least recently registered tokens of a user beyond the cap, never
   * the one just registered. The protocol has no way to unregister a device (a reinstalled app
   * is a new device), so refusing past the cap would lock a user out of pushes for good; the
   * oldest registration is the device most likely gone. Two registrations at once may both
   * evict; each evicts only beyond the cap, so the user keeps the cap's worth.
   */
  async #evictBeyondCap(userId: string, keep: string): Promise<void> {
    const { tokens } = await this.#persistence.listPushTokens({ userId });
    if (tokens.length <= this.#maxDevices) return;
    const kept = new Set(newestTokens(tokens, this.#maxDevices, keep).map((t) => t.deviceId));
    for (const t of tokens) {
      if (kept.has(t.deviceId)) continue;
      await this.#persistence.deletePushToken({ userId, deviceId: t.deviceId });
    }
  }

  async unregisterPushToken(_req: unknown, ctx: HandlerContext) {
    const caller = callerOf(ctx);
    if (caller.deviceId === "") throw invalidArgument("the internal token names no device");
    await this.#persistence.deletePushToken({ userId: caller.userId, deviceId: caller.deviceId });
    return {};
  }

  async replay(req: ReplayRequest) {
    const { entries, head } = await this.#replayer.replay(
      { userId: req.userId, sessionId: req.sessionId, instanceId: req.instanceId },
      req.after,
    );
    return { entries, head };
  }
}
