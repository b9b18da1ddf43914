import { PersistenceService } from "../gen/chat/v1/persistence_pb.ts";
import type { Message, Position } from "../gen/chat/v1/types_pb.ts";
import { createServiceClients } from "../services/shared/clients.ts";
import type { MessageRef, StoredHistories } from "./history.ts";
import { refOf } from "./recorder.ts";

/**
 * readStored reads, from each region's persistence service, every conversation's history as a
 * reader sees it (copies collapsed) and every stored copy of each origin region's messages.
 */
export async function readStored(
  persistenceUrls: Record<string, string>,
  conversationIds: readonly string[],
): Promise<StoredHistories> {
  const clients = createServiceClients(30_000);
  const regions = Object.keys(persistenceUrls);
  try {
    const out: StoredHistories = {};
    for (const [region, url] of Object.entries(persistenceUrls)) {
      const p = clients.client(PersistenceService, url);
      const byConversation: StoredHistories[string] = {};
      for (const conversationId of conversationIds) {
        const history: MessageRef[] = [];
        let before: Position | undefined;
        for (;;) {
          const res = await p.readHistory({ query: { conversationId, before, limit: 200 } });
          const page = res.history?.messages ?? [];
          history.unshift(...page.map(refOf));
          const oldest = page[0];
          if (!res.history?.hasMore || !oldest) break;
          before = {
            hlc: oldest.hlc,
            originRegion: oldest.originRegion,
            seq: oldest.seq,
          } as Position;
        }
        const log: MessageRef[] = [];
        for (const origin of regions) {
          let after = 0n;
          for (;;) {
            const { messages } = await p.readMessages({
              conversationId,
              originRegion: origin,
              afterSeq: after,
              limit: 1000,
            });
            log.push(...messages.map(refOf));
            const last: Message | undefined = messages.at(-1);
            if (!last || messages.length < 1000) break;
            after = last.seq;
          }
        }
        byConversation[conversationId] = { history, log };
      }
      out[region] = byConversation;
    }
    return out;
  } finally {
    clients.close();
  }
}
