import { create } from "@bufbuild/protobuf";
import { type VersionVector, VersionVectorSchema } from "../../gen/chat/v1/types_pb.ts";

/**
 * Version vectors as plain maps: region → highest seq of a contiguous prefix. Seqs are uint64
 * on the wire and bigint here.
 */
export type Vector = Map<string, bigint>;

/** vectorFromProto converts the wire form; a missing vector is empty. */
export function vectorFromProto(v: VersionVector | undefined): Vector {
  return new Map(v ? Object.entries(v.seqs) : []);
}

/** vectorToProto converts to the wire form, leaving out zero entries. */
export function vectorToProto(v: Vector): VersionVector {
  const seqs: Record<string, bigint> = {};
  for (const [region, seq] of v) if (seq > 0n) seqs[region] = seq;
  return create(VersionVectorSchema, { seqs });
}

/** mergeMax returns the entry-wise maximum of two vectors. */
export function mergeMax(a: Vector, b: Vector): Vector {
  const out = new Map(a);
  for (const [region, seq] of b) if (seq > (out.get(region) ?? 0n)) out.set(region, seq);
  return out;
}

/** mergeVectors returns the entry-wise maximum of any number of vectors. */
export function mergeVectors(vectors: Iterable<Vector>): Vector {
  let out: Vector = new Map();
  for (const v of vectors) out = mergeMax(out, v);
  return out;
}

/** dominates is true when `a` has reached `b` in every region. */
export function dominates(a: Vector, b: Vector): boolean {
  for (const [region, seq] of b) if ((a.get(region) ?? 0n) < seq) return false;
  return true;
}
