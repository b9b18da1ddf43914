import { randomBytes, randomFillSync } from "node:crypto";
import { connect, type Socket } from "node:net";

/**
 * LightSocket is the least WebSocket client (RFC 6455) the light load needs, on a plain TCP
 * socket read with `onread` (one reused buffer, no stream machinery). On this machine it takes
 * about 7 µs of CPU to receive a small message where `ws` takes 12, most of what is left being
 * the kernel's: at tens of thousands of deliveries per second, that is what lets one core of
 * load keep up with the fastest targets.
 *
 * It speaks ws:// only, no extensions; it reads unfragmented and fragmented data messages,
 * answers pings and closes, and masks what it sends. A message handed to `onMessage` is a view
 * of a buffer that the next read overwrites: read it at once, or copy it.
 */
export class LightSocket {
  /** onMessage gets each data message: its bytes and whether it is text. */
  onMessage: (data: Buffer, text: boolean) => void = () => {};
  /** onClose is called once, when the connection is gone (closed, refused or failed). */
  onClose: () => void = () => {};
  readonly #socket: Socket;
  readonly #failed: () => void;
  #open = false;
  #closed = false;
  /** pending holds the start of a frame (or of the handshake answer) split across reads. */
  #pending: Buffer | undefined;
  /** fragments of a message sent in several frames. */
  #fragments: Buffer[] | undefined;
  #fragmentsText = false;

  /** opened resolves once the server accepted the upgrade; it rejects if it did not. */
  readonly opened: Promise<void>;

  /**
   * constructor connects to a ws:// URL with the given subprotocol. Set the handlers at once:
   * the server's first messages may come with its answer to the upgrade.
   */
  constructor(url: string, protocol?: string) {
    const u = new URL(url);
    const handshake = [
      `GET ${u.pathname}${u.search} HTTP/1.1`,
      `Host: ${u.host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}`,
      "Sec-WebSocket-Version: 13",
      ...(protocol ? [`Sec-WebSocket-Protocol: ${protocol}`] : []),
      "",
      "",
    ].join("\r\n");
    let opened!: () => void;
    let failed!: (err: Error) => void;
    this.opened = new Promise<void>((resolve, reject) => {
      opened = resolve;
      failed = reject;
    });
    this.#failed = () => failed(new Error(`${url}: connection refused or closed`));
    this.#socket = connect({
      host: u.hostname,
      port: Number(u.port || 80),
      noDelay: true,
      onread: {
        buffer: Buffer.allocUnsafe(256 * 1024),
        callback: (n: number, buf: Uint8Array) => {
          this.#read(buf as Buffer, n, opened);
          return true;
        },
      },
    });
    this.#socket.on("connect", () => this.#socket.write(handshake));
    this.#socket.on("error", () => {}); // close follows
    this.#socket.on("close", () => this.#gone());
  }

  get isOpen(): boolean {
    return this.#open && !this.#closed;
  }

  /** send writes one message: binary for bytes, text for a string. */
  send(data: Uint8Array | string): void {
    if (!this.isOpen) return;
    const text = typeof data === "string";
    const length = text ? Buffer.byteLength(data) : data.length;
    const head = length < 126 ? 2 : length < 65_536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(head + 4 + length);
    frame[0] = 0x80 | (text ? 0x1 : 0x2); // FIN and the opcode
    if (length < 126) {
      frame[1] = 0x80 | length; // MASK and the length
    } else if (length < 65_536) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(length, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeUInt32BE(0, 2);
      frame.writeUInt32BE(length, 6);
    }
    this.#writeMasked(frame, head, data, length);
  }

  /** close starts the closing handshake (and ends the connection if it goes unanswered). */
  close(code = 1000): void {
    if (!this.isOpen) {
      this.#socket.destroy();
      return;
    }
    const frame = Buffer.allocUnsafe(2 + 4 + 2);
    frame[0] = 0x88;
    frame[1] = 0x80 | 2;
    const body = Buffer.allocUnsafe(2);
    body.writeUInt16BE(code, 0);
    this.#writeMasked(frame, 2, body, 2);
    this.#open = false;
    setTimeout(() => this.#socket.destroy(), 1_000).unref();
  }

  /** writeMasked masks `data` into `frame` after its header and mask key, and writes it. */
  #writeMasked(frame: Buffer, head: number, data: Uint8Array | string, length: number): void {
    const mask = head;
    nextMask(frame, mask);
    const start = head + 4;
    if (typeof data === "string") frame.write(data, start, length, "utf8");
    else frame.set(data, start);
    for (let i = 0; i < length; i++) {
      frame[start + i] = (frame[start + i] as number) ^ (frame[mask + (i & 3)] as number);
    }
    this.#socket.write(frame);
  }

  #read(chunk: Buffer, n: number, opened: () => void): void {
    let buf = chunk.subarray(0, n);
    if (this.#pending) {
      buf = Buffer.concat([this.#pending, buf]);
      this.#pending = undefined;
    }
    let pos = 0;
    if (!this.#open && !this.#closed) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) {
        this.#pending = Buffer.from(buf);
        return;
      }
      if (!buf.toString("latin1", 0, 12).startsWith("HTTP/1.1 101")) {
        this.#socket.destroy();
        return;
      }
      this.#open = true;
      pos = end + 4;
      opened();
    }
    while (pos < buf.length) {
      const used = this.#frame(buf, pos);
      if (used === 0) {
        this.#pending = Buffer.from(buf.subarray(pos)); // the rest of it comes with the next read
        return;
      }
      pos += used;
    }
  }

  /** frame handles the frame at `pos` and returns its size, or 0 if it is not all there yet. */
  #frame(buf: Buffer, pos: number): number {
    if (buf.length - pos < 2) return 0;
    const b0 = buf[pos] as number;
    const b1 = buf[pos + 1] as number;
    let length = b1 & 0x7f;
    let head = 2;
    if (length === 126) {
      if (buf.length - pos < 4) return 0;
      length = buf.readUInt16BE(pos + 2);
      head = 4;
    } else if (length === 127) {
      if (buf.length - pos < 10) return 0;
      length = buf.readUInt32BE(pos + 2) * 2 ** 32 + buf.readUInt32BE(pos + 6);
      head = 10;
    }
    if (b1 & 0x80) head += 4; // servers do not mask; tolerate it anyway below
    if (buf.length - pos < head + length) return 0;
    const payload = buf.subarray(pos + head, pos + head + length);
    if (b1 & 0x80) {
      for (let i = 0; i < length; i++) {
        payload[i] = (payload[i] as number) ^ (buf[pos + head - 4 + (i & 3)] as number);
      }
    }
    this.#opcode(b0, payload);
    return head + length;
  }

  #opcode(b0: number, payload: Buffer): void {
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    switch (opcode) {
      case 0x1:
      case 0x2:
        if (fin) this.onMessage(payload, opcode === 0x1);
        else {
          this.#fragments = [Buffer.from(payload)];
          this.#fragmentsText = opcode === 0x1;
        }
        return;
      case 0x0: // a continuation
        this.#fragments?.push(Buffer.from(payload));
        if (fin && this.#fragments) {
          const whole = Buffer.concat(this.#fragments);
          this.#fragments = undefined;
          this.onMessage(whole, this.#fragmentsText);
        }
        return;
      case 0x8: // close: answer it (once) and end
        if (this.#open) this.close(payload.length >= 2 ? payload.readUInt16BE(0) : 1000);
        this.#socket.end();
        return;
      case 0x9: {
        // ping: pong with the same payload
        const frame = Buffer.allocUnsafe(2 + 4 + payload.length);
        frame[0] = 0x8a;
        frame[1] = 0x80 | payload.length;
        this.#writeMasked(frame, 2, Buffer.from(payload), payload.length);
        return;
      }
      default: // pong or reserved: nothing to do
        return;
    }
  }

  #gone(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#open) this.#failed();
    this.#open = false;
    this.onClose();
  }
}

/**
 * Mask keys come from a pool of random bytes refilled when used up: one random draw per
 * frame would cost more than the frame.
 */
const maskPool = Buffer.allocUnsafe(4096);
let maskAt = maskPool.length;

function nextMask(into: Buffer, at: number): void {
  if (maskAt + 4 > maskPool.length) {
    randomFillSync(maskPool);
    maskAt = 0;
  }
  maskPool.copy(into, at, maskAt, maskAt + 4);
  maskAt += 4;
}
