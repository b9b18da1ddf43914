import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { PersistenceService } from "../gen/chat/v1/persistence_pb.ts";
import type { Message, Position } from "../gen/chat/v1/types_pb.ts";
import type { MessageRef, StoredHistories } from "./history.ts";
import { refOf } from "./recorder.ts";

/**
 * readStored reads, from each region's persistence service with an operator's (read-only)
 * token, every conversation's history as a reader sees it (copies collapsed) and every stored
 * copy of each origin region's messages.
 */
export async function readStored(
  persistence: Record<string, { url: string; token: string }>,
  conversationIds: readonly string[],
): Promise<StoredHistories> {
  const regions = Object.keys(persistence);
  const out: StoredHistories = {};
  for (const [region, { url, token }] of Object.entries(persistence)) {
    const session = new Http2SessionManager(url);
    const p = createClient(
      PersistenceService,
      createGrpcTransport({
        baseUrl: url,
        sessionManager: session,
        defaultTimeoutMs: 30_000,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
        ],
      }),
    );
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
    session.abort();
  }
  return out;
}
