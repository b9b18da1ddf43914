import {
  create,
  fromBinary,
  fromJsonString,
  type MessageInitShape,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import {
  ClientFrameSchema,
  type ServerFrame,
  ServerFrameSchema,
} from "../gen/chat/v1/client_pb.ts";

/** PROTO_SUBPROTOCOL and JSON_SUBPROTOCOL are the WebSocket subprotocols of chat.v1. */
export const PROTO_SUBPROTOCOL = "connectchat.v1.proto";
export const JSON_SUBPROTOCOL = "connectchat.v1.json";

/** Encoding picks the subprotocol: binary protobuf or protobuf JSON. */
export type Encoding = "proto" | "json";

/** ClientKind is the payload of a client frame, as `create` takes it. */
export type ClientKind = MessageInitShape<typeof ClientFrameSchema>["kind"];

/** subprotocol names the WebSocket subprotocol of an encoding. */
export function subprotocol(encoding: Encoding): string {
  return encoding === "json" ? JSON_SUBPROTOCOL : PROTO_SUBPROTOCOL;
}

/** encodeClientFrame builds a client frame and encodes it for the socket. */
export function encodeClientFrame(
  kind: ClientKind,
  requestId: number,
  encoding: Encoding,
): string | Uint8Array<ArrayBuffer> {
  const frame = create(ClientFrameSchema, { requestId, kind });
  // toBinary writes into a fresh ArrayBuffer; the DOM's WebSocket.send wants it typed as one.
  return encoding === "json"
    ? toJsonString(ClientFrameSchema, frame)
    : (toBinary(ClientFrameSchema, frame) as Uint8Array<ArrayBuffer>);
}

/**
 * decodeServerFrame reads a WebSocket message: text is protobuf JSON, binary is protobuf (the
 * socket's binaryType must be "arraybuffer"). Throws when the message does not parse.
 */
export function decodeServerFrame(data: unknown): ServerFrame {
  return typeof data === "string"
    ? fromJsonString(ServerFrameSchema, data, { ignoreUnknownFields: true })
    : fromBinary(ServerFrameSchema, new Uint8Array(data as ArrayBuffer));
}

/** newNonce returns a random 64-bit ping nonce. */
export function newNonce(): bigint {
  const [hi = 0, lo = 0] = crypto.getRandomValues(new Uint32Array(2));
  return (BigInt(hi) << 32n) | BigInt(lo);
}
