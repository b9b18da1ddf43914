import {
  clone,
  create,
  type DescMessage,
  equals,
  isFieldSet,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  anyPack,
  FieldDescriptorProto_Label,
  FieldDescriptorProtoSchema,
  FileOptionsSchema,
  StructSchema,
} from "@bufbuild/protobuf/wkt";
import test from "ava";
import { ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";
import { GatewayDeliverySchema } from "../../gen/chat/v1/events_pb.ts";
import { MembershipAction, MessageSchema, ReceiptKind } from "../../gen/chat/v1/types_pb.ts";
import { copyMessage } from "../../services/shared/copy-message.ts";

const message = (seq: bigint, text?: string) =>
  create(MessageSchema, {
    conversationId: "c1",
    originRegion: "eu-west-1",
    seq,
    hlc: (1_765_000_000_000n << 16n) | 7n,
    senderId: "alice",
    senderDeviceId: "phone",
    clientMsgId: `m${seq}`,
    content:
      text === undefined
        ? {
            case: "membership",
            value: { action: MembershipAction.ADDED, userIds: ["bob", "carol"] },
          }
        : { case: "text", value: text },
  });

/** SAMPLES cover every kind of field: scalars, 64-bit integers, enums, oneofs of scalars and of
 * messages, repeated messages, maps of scalars and of messages, bytes, and a message type whose
 * fields have defaults (kept on its prototype). */
const SAMPLES: Array<[DescMessage, MessageShape<DescMessage>]> = [
  [MessageSchema, message(1n, "hello")],
  [MessageSchema, message(2n)],
  [
    ServerFrameSchema,
    create(ServerFrameSchema, {
      requestId: 9,
      kind: {
        case: "deliveries",
        value: {
          replay: true,
          entries: [
            { region: "eu-west-1", seq: 4n, message: message(4n, "a") },
            { region: "us-east-1", seq: 5n, message: message(5n) },
          ],
        },
      },
    }),
  ],
  [
    ServerFrameSchema,
    create(ServerFrameSchema, {
      kind: {
        case: "receipt",
        value: {
          conversationId: "c1",
          userId: "bob",
          kind: ReceiptKind.READ,
          upTo: { seqs: { "eu-west-1": 12n, "us-east-1": 3n } },
        },
      },
    }),
  ],
  [
    GatewayDeliverySchema,
    create(GatewayDeliverySchema, {
      canaryNonce: 77n,
      traceContext: { traceparent: "00-abc-def-01" },
      items: [{ userId: "bob", serverFrame: new Uint8Array([1, 2, 3]), exceptDeviceId: "tablet" }],
    }),
  ],
  [
    StructSchema,
    create(StructSchema, {
      fields: {
        n: { kind: { case: "numberValue", value: 1.5 } },
        l: {
          kind: {
            case: "listValue",
            value: { values: [{ kind: { case: "stringValue", value: "x" } }] },
          },
        },
      },
    }),
  ],
  [
    FieldDescriptorProtoSchema,
    create(FieldDescriptorProtoSchema, {
      name: "f",
      number: 3,
      label: FieldDescriptorProto_Label.REPEATED,
      options: { packed: true },
    }),
  ],
  [FileOptionsSchema, create(FileOptionsSchema, { javaPackage: "p", ccEnableArenas: false })],
];

test("a copy is the same message as protobuf-es's clone makes, field by field and on the wire", (t) => {
  for (const [schema, original] of SAMPLES) {
    const copy = copyMessage(original);
    t.true(equals(schema, copy, clone(schema, original)), schema.typeName);
    t.deepEqual(toBinary(schema, copy), toBinary(schema, original), schema.typeName);
    t.is(Object.getPrototypeOf(copy), Object.getPrototypeOf(original), schema.typeName);
    for (const field of schema.fields) {
      t.is(
        isFieldSet(copy, field),
        isFieldSet(original, field),
        `${schema.typeName}.${field.name}`,
      );
    }
  }
  // Defaults a message type declares still read through the copy (proto2 prototype chain).
  const options = copyMessage(create(FileOptionsSchema, {}));
  t.is(options.optimizeFor, create(FileOptionsSchema, {}).optimizeFor);
  t.true(options.ccEnableArenas);
});

test("a copy shares nothing that can change with its original", (t) => {
  for (const [schema, original] of SAMPLES) {
    const before = toBinary(schema, original);
    const copy = copyMessage(original);
    scribble(copy);
    t.deepEqual(toBinary(schema, original), before, schema.typeName);
    t.false(equals(schema, copy, original), `${schema.typeName}: the scribble changed nothing`);
  }
});

test("a copy of an Any keeps its packed bytes, in a buffer of its own", (t) => {
  const any = anyPack(MessageSchema, message(3n, "packed"));
  const copy = copyMessage(any);
  t.deepEqual(copy.value, any.value);
  t.not(copy.value, any.value);
});

/** scribble changes every string, number, array and byte it can reach in `value`. */
function scribble(value: unknown): void {
  if (Array.isArray(value)) {
    for (const v of value) scribble(v);
    value.push(typeof value[0] === "string" ? "extra" : value[0]);
    return;
  }
  if (value instanceof Uint8Array) {
    value.fill(0xff);
    return;
  }
  if (typeof value !== "object" || value === null) return;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const v = record[key];
    if (key === "$typeName" || key === "case") continue;
    if (typeof v === "string") record[key] = `${v}!`;
    else if (typeof v === "bigint") record[key] = v + 1n;
    else if (typeof v === "number") record[key] = v + 1;
    else if (typeof v === "boolean") record[key] = !v;
    else scribble(v);
  }
  if (!("$typeName" in record) && !("case" in record)) record.scribbled = "yes";
}
