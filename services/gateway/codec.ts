import {
  create,
  fromBinary,
  fromJson,
  type JsonValue,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import {
  type ClientFrame,
  ClientFrameSchema,
  type ServerFrame,
  ServerFrameSchema,
} from "../../gen/chat/v1/client_pb.ts";
import { createContractValidator } from "../shared/validation.ts";

/** PROTO_SUBPROTOCOL carries binary protobuf frames (the default). */
export const PROTO_SUBPROTOCOL = "connectchat.v1.proto";
/** JSON_SUBPROTOCOL carries frames in the canonical protobuf JSON mapping. */
export const JSON_SUBPROTOCOL = "connectchat.v1.json";

/** Encoding is how a connection's frames are written. */
export type Encoding = "proto" | "json";

/** FrameError is why a client frame was refused; `requestId` is known when the frame parsed. */
export interface FrameError {
  message: string;
  field: string;
  requestId: number;
}

const validator = createContractValidator();

/**
 * warmFrameValidation compiles the frame rules now: protovalidate compiles them on first use,
 * which costs ~90 ms, and the first frame of a new gateway (the latency probe's ping, often)
 * should not pay it.
 */
export function warmFrameValidation(): void {
  validator.validate(
    ClientFrameSchema,
    create(ClientFrameSchema, { kind: { case: "ping", value: { nonce: 1n } } }),
  );
}

/**
 * decodeClientFrame parses and validates one WebSocket message. It never throws: anything
 * wrong with the frame comes back as a FrameError that names the problem.
 */
export function decodeClientFrame(
  data: Buffer,
  isBinary: boolean,
  encoding: Encoding,
): { frame: ClientFrame } | { error: FrameError } {
  let frame: ClientFrame;
  if (encoding === "proto") {
    if (!isBinary) {
      return fail(
        `text frame on the ${PROTO_SUBPROTOCOL} subprotocol: send binary protobuf, or connect with ${JSON_SUBPROTOCOL}`,
      );
    }
    try {
      frame = fromBinary(ClientFrameSchema, data);
    } catch (err) {
      return fail(
        `frame is not a binary chat.v1.ClientFrame: ${reason(err)}`,
        binaryRequestId(data),
      );
    }
  } else {
    if (isBinary) {
      return fail(
        `binary frame on the ${JSON_SUBPROTOCOL} subprotocol: send JSON text, or connect with ${PROTO_SUBPROTOCOL}`,
      );
    }
    let json: JsonValue;
    try {
      json = JSON.parse(data.toString("utf8"));
    } catch (err) {
      return fail(`frame is not JSON: ${reason(err)}`);
    }
    try {
      frame = fromJson(ClientFrameSchema, json);
    } catch (err) {
      return fail(`frame is not a chat.v1.ClientFrame: ${reason(err)}`, jsonRequestId(json));
    }
  }
  const result = validator.validate(ClientFrameSchema, frame);
  if (result.kind === "valid") return { frame };
  if (result.kind === "error") return fail(`frame could not be validated: ${result.error.message}`);
  const [first] = result.violations;
  const field = first ? pathToString(first.field) : "";
  const message = result.violations
    .map((v) => `${pathToString(v.field) || "frame"}: ${v.message}`)
    .join("; ");
  return { error: { message, field, requestId: frame.requestId } };
}

/** encodeServerFrame writes a frame in a connection's encoding. */
export function encodeServerFrame(frame: ServerFrame, encoding: Encoding): Uint8Array | string {
  return encoding === "proto"
    ? toBinary(ServerFrameSchema, frame)
    : toJsonString(ServerFrameSchema, frame);
}

/** reencodeServerFrame turns a binary ServerFrame into a connection's encoding. */
export function reencodeServerFrame(bytes: Uint8Array, encoding: Encoding): Uint8Array | string {
  return encoding === "proto"
    ? bytes
    : toJsonString(ServerFrameSchema, fromBinary(ServerFrameSchema, bytes));
}

function fail(message: string, requestId = 0): { error: FrameError } {
  return { error: { message, field: "", requestId } };
}

/**
 * requestIdOf reads the request id of a frame too big or too broken to decode, when its
 * envelope is readable, so that the error answers the request (a newer client's frame, with an
 * enum name or a frame kind this server does not know, is exactly that). 0 when unreadable.
 */
export function requestIdOf(data: Buffer, isBinary: boolean): number {
  if (isBinary) return binaryRequestId(data);
  try {
    return jsonRequestId(JSON.parse(data.toString("utf8")));
  } catch {
    return 0;
  }
}

/** binaryRequestId finds field 1 (request_id, a uint32 varint) in a binary ClientFrame. */
function binaryRequestId(data: Uint8Array): number {
  try {
    const reader = new BinaryReader(data);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === WireType.Varint) return reader.uint32();
      reader.skip(wireType);
    }
  } catch {
    // Unreadable past some point: no id.
  }
  return 0;
}

/** jsonRequestId reads `requestId` (or `request_id`) of a JSON frame, if it is a valid one. */
function jsonRequestId(json: JsonValue): number {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return 0;
  const id = json.requestId ?? json.request_id;
  const n = typeof id === "string" ? Number(id) : id;
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff ? n : 0;
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
