import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { GatewayService } from "../../gen/chat/v1/gateway_pb.ts";
import type { Logger } from "../shared/logger.ts";
import { AuthError, AuthUnavailableError, type TokenVerifier } from "./auth.ts";

/**
 * operatorAuth guards the operator API (GatewayService) on the gateway's admin listener: every
 * call presents `Authorization: Bearer <token>` whose audience is the operator audience
 * (AUTH_OPERATOR_AUDIENCE; a user's chat token is refused). Who did what is logged. Health and
 * reflection on the same listener need no credential.
 */
export function operatorAuth(verifier: TokenVerifier, log: Logger): Interceptor {
  return (next) => async (req) => {
    if (req.service.typeName !== GatewayService.typeName) return next(req);
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.header.get("authorization") ?? "")?.[1];
    if (!bearer) {
      throw new ConnectError(
        "operator credential required: send Authorization: Bearer <operator token>",
        Code.Unauthenticated,
      );
    }
    let operator: string;
    try {
      operator = (await verifier.verify(bearer)).userId;
    } catch (err) {
      if (err instanceof AuthError) {
        throw new ConnectError(`operator token refused: ${err.message}`, Code.Unauthenticated);
      }
      if (err instanceof AuthUnavailableError) {
        throw new ConnectError(err.message, Code.Unavailable);
      }
      throw err;
    }
    log.info({ operator, method: req.method.name }, "operator call");
    return next(req);
  };
}
