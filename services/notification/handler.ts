import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  NotificationService,
  RegisterPushTokenRequest,
  ReplayRequest,
} from "../../gen/chat/v1/notification_pb.ts";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { invalidArgument } from "../shared/errors.ts";
import { callerOf } from "../shared/interceptors.ts";
import type { Replayer } from "./replayer.ts";

/** NotificationHandler implements NotificationService. */
export class NotificationHandler implements ServiceImpl<typeof NotificationService> {
  readonly #persistence: Client<typeof PersistenceService>;
  readonly #replayer: Replayer;

  constructor(persistence: Client<typeof PersistenceService>, replayer: Replayer) {
    this.#persistence = persistence;
    this.#replayer = replayer;
  }

  async registerPushToken(req: RegisterPushTokenRequest, ctx: HandlerContext) {
    const caller = callerOf(ctx);
    if (caller.deviceId === "")
      throw invalidArgument("chat-device-id: required to register a token");
    await this.#persistence.savePushToken({
      userId: caller.userId,
      token: { deviceId: caller.deviceId, platform: req.platform, token: req.token },
    });
    return {};
  }

  async unregisterPushToken(_req: unknown, ctx: HandlerContext) {
    const caller = callerOf(ctx);
    if (caller.deviceId === "") throw invalidArgument("chat-device-id: required");
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
