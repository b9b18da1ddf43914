import type { Message } from "@bufbuild/protobuf";

/**
 * copyMessage returns a deep copy of a protobuf-es message: what `clone` from
 * @bufbuild/protobuf returns, without its reflection. `clone` walks a message through its
 * descriptor and builds a reflection wrapper (two Maps and more) for every nested message;
 * in a busy embedded region, copying every in-process call's request and response that way was
 * 28% of all the memory allocated (bench/README.md). A protobuf-es message is plain data: an
 * object (with a prototype only for a message whose fields have defaults), arrays for repeated
 * fields, plain objects for maps and oneofs, Uint8Array for bytes, and primitives (bigint for
 * 64-bit integers), so copying own properties recursively, keeping each object's prototype,
 * gives the same message (test/unit/copy-message.test.ts compares them field by field).
 */
export function copyMessage<T extends Message>(message: T): T {
  return copyValue(message) as T;
}

function copyValue(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = copyValue(value[i]);
    return out;
  }
  if (value instanceof Uint8Array) return value.slice();
  const proto = Object.getPrototypeOf(value);
  const out: Record<string, unknown> = proto === Object.prototype ? {} : Object.create(proto);
  for (const key of Object.keys(value)) {
    out[key] = copyValue((value as Record<string, unknown>)[key]);
  }
  return out;
}
