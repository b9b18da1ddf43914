import type { ServiceImpl } from "@connectrpc/connect";
import type {
  DisconnectRequest,
  GatewayService,
  ListSessionsRequest,
} from "../../gen/chat/v1/gateway_pb.ts";
import { CLOSE, type Connection } from "./connection.ts";

/** GatewayHandler implements GatewayService over this instance's connections. */
export class GatewayHandler implements ServiceImpl<typeof GatewayService> {
  readonly #connectionsOf: (userId: string) => Iterable<Connection>;

  constructor(connectionsOf: (userId: string) => Iterable<Connection>) {
    this.#connectionsOf = connectionsOf;
  }

  listSessions(req: ListSessionsRequest) {
    return {
      sessions: [...this.#connectionsOf(req.userId)].map((c) => ({
        ...c.session,
        connectedAtMs: BigInt(c.connectedAtMs),
        encoding: c.encoding,
      })),
    };
  }

  disconnect(req: DisconnectRequest) {
    let closed = 0;
    for (const c of [...this.#connectionsOf(req.userId)]) {
      if (req.deviceId !== "" && c.deviceId !== req.deviceId) continue;
      c.goAway(CLOSE.disconnected, req.reason || "disconnected by an operator", 0);
      closed++;
    }
    return { closed };
  }
}
