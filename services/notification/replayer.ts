import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import type { VersionVector } from "../../gen/chat/v1/types_pb.ts";
import type { Fanout } from "../shared/fanout.ts";
import { mergeMax, type Vector, vectorFromProto, vectorToProto } from "../shared/version-vector.ts";

/** ReplayTarget is the connection a replay is for. */
export interface ReplayTarget {
  userId: string;
  sessionId: string;
  instanceId: string;
}

/**
 * Replayer implements the seed's user_connected flow: it reads a user's inbox after the
 * version vector a device presented and sends it to that one connection, a page per frame,
 * then a sync_state frame with the inbox head it read up to. Live delivery runs meanwhile; the
 * gateway holds a connection's live frames until its sync_state and drops the entries the
 * replay covered (services/gateway/replay-gate.ts), so nothing is missed or sent twice.
 */
export class Replayer {
  readonly #persistence: Client<typeof PersistenceService>;
  readonly #fanout: Fanout;
  readonly #pageSize: number;

  constructor(persistence: Client<typeof PersistenceService>, fanout: Fanout, pageSize: number) {
    this.#persistence = persistence;
    this.#fanout = fanout;
    this.#pageSize = pageSize;
  }

  /**
   * replay sends every entry after `after`; it returns how many, and the head reached. The
   * sync_state answers `requestId` (the client's sync request; 0 after a hello).
   */
  async replay(target: ReplayTarget, after: VersionVector | undefined, requestId = 0) {
    const cursor = vectorFromProto(after);
    let expired: Vector = new Map();
    let sent = 0;
    for (;;) {
      const page = await this.#persistence.readInbox({
        userId: target.userId,
        after: vectorToProto(cursor),
        limit: this.#pageSize,
      });
      // Entries that expired before this device got them are skipped; the client is told.
      expired = mergeMax(expired, vectorFromProto(page.expired));
      for (const [region, seq] of expired)
        if (seq > (cursor.get(region) ?? 0n)) cursor.set(region, seq);
      if (page.entries.length > 0) {
        await this.#fanout.toSession(target, [
          create(ServerFrameSchema, {
            kind: { case: "deliveries", value: { entries: page.entries, replay: true } },
          }),
        ]);
        sent += page.entries.length;
        for (const e of page.entries) {
          if (e.seq > (cursor.get(e.region) ?? 0n)) cursor.set(e.region, e.seq);
        }
      }
      if (!page.hasMore || page.entries.length === 0) {
        const head = page.head ?? vectorToProto(cursor);
        await this.#fanout.toSession(target, [
          create(ServerFrameSchema, {
            requestId,
            kind: {
              case: "syncState",
              value: { inboxHead: head, expired: vectorToProto(expired) },
            },
          }),
        ]);
        return { entries: sent, head };
      }
    }
  }
}
