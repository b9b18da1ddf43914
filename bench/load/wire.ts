import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

/**
 * The chat.v1 frames the light load generator sends and reads, at the protobuf wire level
 * (proto/chat/v1/client.proto, types.proto). The generator must cost far less per delivery
 * than the fastest target, and decoding whole ServerFrames (fromBinary: every field, every
 * message object, BigInts for every uint64) cost more than the raw-ws server's own work per
 * delivery. Here a frame is scanned for the few fields the load needs (the request id, which
 * kind of frame, and in a delivery the inbox position, conversation, origin seq, hlc and
 * client_msg_id) and nothing else is decoded. test/bench/wire.test.ts checks it against
 * @bufbuild/protobuf's own encoding.
 */

/** SERVER_KINDS names the ServerFrame `kind` fields by number. */
export const SERVER_KINDS: Record<number, string> = {
  2: "welcome",
  3: "pong",
  4: "error",
  5: "sendResult",
  6: "conversation",
  7: "conversationPage",
  8: "history",
  9: "deliveries",
  10: "receipt",
  11: "typing",
  12: "presence",
  13: "presenceSnapshot",
  14: "syncState",
  15: "goAway",
  16: "ok",
  17: "receipts",
};

/** Field numbers of the ServerFrame kinds the generator acts on. */
export const KIND_ERROR = 4;
export const KIND_SEND_RESULT = 5;
export const KIND_DELIVERIES = 9;

/**
 * Reader walks protobuf wire format. It allocates nothing: 64-bit varints are read into the
 * `lo` and `hi` halves (as protobuf-es does) and strings are left as byte ranges.
 */
export class Reader {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  /** lo and hi are the halves (unsigned 32-bit) of the last varint64(). */
  lo = 0;
  hi = 0;

  reset(buf: Uint8Array, pos: number): this {
    this.buf = buf;
    this.pos = pos;
    return this;
  }

  /** varint reads a varint of up to 53 bits as a number (seqs, lengths, tags). */
  varint(): number {
    const b = this.buf;
    let x = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const byte = b[this.pos++] as number;
      if (byte === undefined) throw new Error("truncated varint");
      x += (byte & 0x7f) * mul;
      if (byte < 0x80) return x;
      mul *= 128;
    }
    throw new Error("varint too long");
  }

  /** varint64 reads a varint into lo and hi, exactly. */
  varint64(): void {
    const b = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (; shift < 28; shift += 7) {
      const byte = b[this.pos++] as number;
      lo |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        this.lo = lo >>> 0;
        this.hi = 0;
        return;
      }
    }
    const middle = b[this.pos++] as number;
    lo |= (middle & 0x0f) << 28;
    hi = (middle & 0x7f) >> 4;
    if (middle >= 0x80) {
      for (shift = 3; shift <= 31; shift += 7) {
        const byte = b[this.pos++] as number;
        hi |= (byte & 0x7f) << shift;
        if (byte < 0x80) break;
      }
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  /** skip passes over a field's value of the given wire type. */
  skip(wireType: number): void {
    switch (wireType) {
      case WireType.Varint:
        while ((this.buf[this.pos++] as number) >= 0x80) {}
        return;
      case WireType.Bit64:
        this.pos += 8;
        return;
      case WireType.LengthDelimited: {
        const n = this.varint();
        this.pos += n;
        return;
      }
      case WireType.Bit32:
        this.pos += 4;
        return;
      default:
        throw new Error(`cannot skip wire type ${wireType}`);
    }
  }
}

/** FrameHead is where a ServerFrame's kind lies: its field number and its bytes. */
export interface FrameHead {
  requestId: number;
  /** kind is the field number of the frame's `kind` (SERVER_KINDS), 0 when it has none. */
  kind: number;
  start: number;
  end: number;
}

/** readHead scans a ServerFrame's top level into `head`. */
export function readHead(r: Reader, buf: Uint8Array, head: FrameHead): void {
  r.reset(buf, 0);
  head.requestId = 0;
  head.kind = 0;
  head.start = 0;
  head.end = 0;
  const end = buf.length;
  while (r.pos < end) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (field === 1 && wireType === WireType.Varint) {
      head.requestId = r.varint();
    } else if (wireType === WireType.LengthDelimited) {
      const n = r.varint();
      head.kind = field;
      head.start = r.pos;
      head.end = r.pos + n;
      r.pos += n;
    } else {
      r.skip(wireType);
    }
  }
}

/** Entry is one InboxEntry of a deliveries frame, as far as the load needs it. */
export interface Entry {
  /** region and inboxSeq are the entry's position in the user's inbox. */
  region: string;
  inboxSeq: number;
  conversationId: string;
  originRegion: string;
  seq: number;
  /** hlcLo and hlcHi are the message's hybrid clock, split as Reader.varint64 reads it. */
  hlcLo: number;
  hlcHi: number;
  clientMsgId: string;
  /** text is true for a text message (false: a membership change, a system message). */
  text: boolean;
}

/**
 * readEntries calls `visit` for every InboxEntry of the Deliveries in buf[start, end), reusing
 * one Entry object. Region and conversation ids repeat from one delivery to the next, so their
 * strings come from `strings`, decoded once.
 */
export function readEntries(
  r: Reader,
  buf: Uint8Array,
  start: number,
  end: number,
  strings: StringCache,
  e: Entry,
  visit: (e: Entry) => void,
): void {
  r.reset(buf, start);
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === ((1 << 3) | WireType.LengthDelimited)) {
      const n = r.varint();
      const entryEnd = r.pos + n;
      readEntry(r, entryEnd, strings, e);
      r.pos = entryEnd;
      visit(e);
    } else {
      r.skip(tag & 7);
    }
  }
}

function readEntry(r: Reader, end: number, strings: StringCache, e: Entry): void {
  e.region = "";
  e.inboxSeq = 0;
  e.conversationId = "";
  e.originRegion = "";
  e.seq = 0;
  e.hlcLo = 0;
  e.hlcHi = 0;
  e.clientMsgId = "";
  e.text = false;
  while (r.pos < end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | WireType.LengthDelimited: {
        const n = r.varint();
        e.region = strings.get(r.buf, r.pos, r.pos + n);
        r.pos += n;
        break;
      }
      case (2 << 3) | WireType.Varint:
        e.inboxSeq = r.varint();
        break;
      case (3 << 3) | WireType.LengthDelimited: {
        const n = r.varint();
        const messageEnd = r.pos + n;
        readMessage(r, messageEnd, strings, e);
        r.pos = messageEnd;
        break;
      }
      default:
        r.skip(tag & 7);
    }
  }
}

function readMessage(r: Reader, end: number, strings: StringCache, e: Entry): void {
  while (r.pos < end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | WireType.LengthDelimited: {
        const n = r.varint();
        e.conversationId = strings.get(r.buf, r.pos, r.pos + n);
        r.pos += n;
        break;
      }
      case (2 << 3) | WireType.LengthDelimited: {
        const n = r.varint();
        e.originRegion = strings.get(r.buf, r.pos, r.pos + n);
        r.pos += n;
        break;
      }
      case (3 << 3) | WireType.Varint:
        e.seq = r.varint();
        break;
      case (4 << 3) | WireType.Varint:
        r.varint64();
        e.hlcLo = r.lo;
        e.hlcHi = r.hi;
        break;
      case (7 << 3) | WireType.LengthDelimited: {
        const n = r.varint();
        e.clientMsgId = ascii(r.buf, r.pos, r.pos + n);
        r.pos += n;
        break;
      }
      case (8 << 3) | WireType.LengthDelimited:
        e.text = true;
        r.skip(WireType.LengthDelimited);
        break;
      default:
        r.skip(tag & 7);
    }
  }
}

/** readHlc finds the hlc (field 4) of the Message in buf[start, end) (a send_result). */
export function readHlc(r: Reader, buf: Uint8Array, start: number, end: number): boolean {
  r.reset(buf, start);
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === ((4 << 3) | WireType.Varint)) {
      r.varint64();
      return true;
    }
    r.skip(tag & 7);
  }
  return false;
}

/**
 * ascii decodes bytes known to be ASCII (ids and region names are, by their validation
 * patterns) as Latin-1, which needs no UTF-8 decoding.
 */
function ascii(buf: Uint8Array, start: number, end: number): string {
  if (buf instanceof Buffer) return buf.toString("latin1", start, end);
  let s = "";
  for (let i = start; i < end; i++) s += String.fromCharCode(buf[i] as number);
  return s;
}

/**
 * StringCache turns byte ranges into strings, remembering a few: the same handful of region
 * and conversation ids come in every delivery of a connection.
 */
export class StringCache {
  readonly #bytes: Uint8Array[] = [];
  readonly #strings: string[] = [];
  readonly #size: number;
  #next = 0;

  constructor(size = 4) {
    this.#size = size;
  }

  get(buf: Uint8Array, start: number, end: number): string {
    const n = end - start;
    for (let i = 0; i < this.#bytes.length; i++) {
      const b = this.#bytes[i] as Uint8Array;
      if (b.length !== n) continue;
      let same = true;
      for (let j = 0; j < n; j++) {
        if (b[j] !== buf[start + j]) {
          same = false;
          break;
        }
      }
      if (same) return this.#strings[i] as string;
    }
    const s = ascii(buf, start, end);
    const slot = this.#next++ % this.#size;
    this.#bytes[slot] = buf.slice(start, end);
    this.#strings[slot] = s;
    return s;
  }
}

/** hlcAfter says whether hlc (lo, hi) is later than (lo2, hi2). */
export function hlcAfter(lo: number, hi: number, lo2: number, hi2: number): boolean {
  return hi > hi2 || (hi === hi2 && lo > lo2);
}

const encoder = new TextEncoder();

/**
 * SendEncoder writes ClientFrame{request_id, send: MessageDraft{conversation_id,
 * client_msg_id, text, seen_hlc}} into a fresh buffer per send (the socket keeps it until
 * written), from the conversation and text fields encoded once.
 */
export class SendEncoder {
  readonly #fields = new Map<string, Uint8Array>();

  encode(
    requestId: number,
    conversationId: string,
    clientMsgId: string,
    text: string,
    hlcLo: number,
    hlcHi: number,
  ): Uint8Array {
    const conv = this.#field(1, conversationId);
    const body = this.#field(3, text);
    const idLen = clientMsgId.length; // ASCII (its validation pattern)
    const hlcLen = hlcLo === 0 && hlcHi === 0 ? 0 : 1 + varint64Size(hlcLo, hlcHi);
    const draftLen = conv.length + 1 + varintSize(idLen) + idLen + body.length + hlcLen;
    const total = 1 + varintSize(requestId) + 1 + varintSize(draftLen) + draftLen;
    const out = Buffer.allocUnsafe(total);
    let p = 0;
    out[p++] = (1 << 3) | WireType.Varint;
    p = writeVarint(out, p, requestId);
    out[p++] = (4 << 3) | WireType.LengthDelimited;
    p = writeVarint(out, p, draftLen);
    out.set(conv, p);
    p += conv.length;
    out[p++] = (2 << 3) | WireType.LengthDelimited;
    p = writeVarint(out, p, idLen);
    p += out.write(clientMsgId, p, idLen, "latin1");
    out.set(body, p);
    p += body.length;
    if (hlcLen > 0) {
      out[p++] = (4 << 3) | WireType.Varint;
      p = writeVarint64(out, p, hlcLo, hlcHi);
    }
    return out;
  }

  /** field encodes a string field once: its tag, length and bytes. */
  #field(field: number, value: string): Uint8Array {
    const key = `${field}:${value}`;
    let bytes = this.#fields.get(key);
    if (!bytes) {
      bytes = new BinaryWriter()
        .tag(field, WireType.LengthDelimited)
        .bytes(encoder.encode(value))
        .finish();
      this.#fields.set(key, bytes);
    }
    return bytes;
  }
}

/**
 * encodeAck writes ClientFrame{ack: Ack{inbox, conversations}}: the device's inbox position
 * and, per conversation, how far it has received each origin region's messages (what the
 * SDK's ack batches carry).
 */
export function encodeAck(
  inbox: Map<string, number>,
  conversations: Map<string, Map<string, number>>,
): Uint8Array {
  const w = new BinaryWriter().tag(11, WireType.LengthDelimited).fork();
  w.tag(1, WireType.LengthDelimited).fork();
  writeVector(w, inbox);
  w.join();
  for (const [conversationId, upTo] of conversations) {
    w.tag(2, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .string(conversationId);
    w.tag(2, WireType.LengthDelimited).fork();
    writeVector(w, upTo);
    w.join().join();
  }
  return w.join().finish();
}

/** encodeSync writes ClientFrame{sync: Sync{inbox}}: replay what follows this position. */
export function encodeSync(inbox: Map<string, number>): Uint8Array {
  const w = new BinaryWriter().tag(15, WireType.LengthDelimited).fork();
  w.tag(1, WireType.LengthDelimited).fork();
  writeVector(w, inbox);
  return w.join().join().finish();
}

/** encodePing writes ClientFrame{ping: Ping{nonce}}. */
export function encodePing(nonce: number): Uint8Array {
  const w = new BinaryWriter().tag(3, WireType.LengthDelimited).fork();
  return w.tag(1, WireType.Varint).uint64(nonce).join().finish();
}

/** writeVector writes a VersionVector's map<string, uint64> seqs entries. */
function writeVector(w: BinaryWriter, v: Map<string, number>): void {
  for (const [region, seq] of v) {
    w.tag(1, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .string(region)
      .tag(2, WireType.Varint)
      .uint64(seq)
      .join();
  }
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Uint8Array, p: number, n: number): number {
  while (n >= 128) {
    out[p++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[p++] = n;
  return p;
}

function varint64Size(lo: number, hi: number): number {
  if (hi === 0) return varintSize(lo);
  let size = 5; // the low 28 bits and 4 bits of the next take 4 bytes and part of a fifth
  for (let h = hi >>> 3; h > 0; h >>>= 7) size++;
  return size;
}

function writeVarint64(out: Uint8Array, p: number, lo: number, hi: number): number {
  if (hi === 0) return writeVarint(out, p, lo);
  for (let i = 0; i < 4; i++) {
    out[p++] = (lo & 0x7f) | 0x80;
    lo >>>= 7;
  }
  // Bits 28..34: four of lo, three of hi.
  let byte = (lo & 0x0f) | ((hi & 0x07) << 4);
  hi >>>= 3;
  if (hi === 0) {
    out[p++] = byte;
    return p;
  }
  out[p++] = byte | 0x80;
  while (hi >= 0x80) {
    out[p++] = (hi & 0x7f) | 0x80;
    hi >>>= 7;
  }
  byte = hi;
  out[p++] = byte;
  return p;
}
