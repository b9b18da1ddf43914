import { create, toBinary } from "@bufbuild/protobuf";
import { type ServerFrame, ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";
import {
  type GatewayDeliveryItem,
  GatewayDeliveryItemSchema,
  GatewayDeliverySchema,
} from "../../gen/chat/v1/events_pb.ts";
import type { DeliveryChannel } from "./ports/delivery-channel.ts";
import type { SessionRegistry } from "./ports/session-registry.ts";
import { inSpan, SpanKind, traceCarrier, tracingOn } from "./tracing.ts";

/** Push is a frame for every connected device of some users in this region. */
export interface Push {
  userIds: readonly string[];
  frame: ServerFrame;
  /** exceptDeviceId leaves out the users' connections of that device (the one that knows). */
  exceptDeviceId?: string;
}

/**
 * Fanout hands server frames to the gateway instances that hold the recipients' sockets in
 * this region: one registry lookup for all recipients of a batch, each frame encoded once, and
 * one channel message per instance.
 */
export class Fanout {
  readonly #registry: Pick<SessionRegistry, "lookup">;
  readonly #channel: Pick<DeliveryChannel, "send">;

  constructor(registry: Pick<SessionRegistry, "lookup">, channel: Pick<DeliveryChannel, "send">) {
    this.#registry = registry;
    this.#channel = channel;
  }

  /**
   * push delivers each frame to every connected device of its users; offline users are
   * skipped. Traced, it is a span whose context the deliveries carry to the gateways.
   */
  async push(pushes: Push[]): Promise<void> {
    const users = new Set<string>();
    for (const p of pushes) for (const u of p.userIds) users.add(u);
    if (users.size === 0) return;
    if (!tracingOn()) return this.#push(pushes, users);
    await inSpan(
      "fanout",
      { kind: SpanKind.PRODUCER, attributes: { "chat.fanout.users": users.size } },
      () => this.#push(pushes, users),
    );
  }

  async #push(pushes: Push[], users: Set<string>): Promise<void> {
    const sessions = await this.#registry.lookup([...users]);
    if (sessions.size === 0) return;
    const perInstance = new Map<string, GatewayDeliveryItem[]>();
    for (const p of pushes) {
      let bytes: Uint8Array | undefined;
      const exceptDeviceId = p.exceptDeviceId ?? "";
      for (const userId of p.userIds) {
        const instances = new Set(
          (sessions.get(userId) ?? [])
            .filter((s) => exceptDeviceId === "" || s.deviceId !== exceptDeviceId)
            .map((s) => s.instanceId),
        );
        for (const instanceId of instances) {
          bytes ??= toBinary(ServerFrameSchema, p.frame);
          const items = perInstance.get(instanceId) ?? [];
          items.push(
            create(GatewayDeliveryItemSchema, { userId, serverFrame: bytes, exceptDeviceId }),
          );
          perInstance.set(instanceId, items);
        }
      }
    }
    const traceContext = traceCarrier();
    await Promise.all(
      [...perInstance].map(([instanceId, items]) =>
        this.#channel.send(
          instanceId,
          toBinary(GatewayDeliverySchema, create(GatewayDeliverySchema, { items, traceContext })),
        ),
      ),
    );
  }

  /** returnCanary hands a gateway instance's delivery canary back to it (canary.ts). */
  async returnCanary(instanceId: string, nonce: bigint): Promise<void> {
    await this.#channel.send(
      instanceId,
      toBinary(GatewayDeliverySchema, create(GatewayDeliverySchema, { canaryNonce: nonce })),
    );
  }

  /** toSession delivers frames to one connection, in order. */
  async toSession(
    target: { instanceId: string; userId: string; sessionId: string },
    frames: ServerFrame[],
  ): Promise<void> {
    const items = frames.map((f) =>
      create(GatewayDeliveryItemSchema, {
        userId: target.userId,
        sessionId: target.sessionId,
        serverFrame: toBinary(ServerFrameSchema, f),
      }),
    );
    await this.#channel.send(
      target.instanceId,
      toBinary(
        GatewayDeliverySchema,
        create(GatewayDeliverySchema, { items, traceContext: traceCarrier() }),
      ),
    );
  }
}
