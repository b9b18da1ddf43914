import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from "node:http2";

/** H2Response is a whole answer: push services answer with small JSON bodies. */
export interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** H2Request is one request; timeoutMs bounds it from start to the answer's last byte. */
export interface H2Request {
  method: string;
  path: string;
  headers?: OutgoingHttpHeaders;
  body?: string;
  timeoutMs: number;
}

export interface H2ClientOptions {
  /** ca replaces the trusted roots (tests trust the certificate they made). */
  ca?: string | Buffer;
  /** idleMs closes the connection after this long without traffic (unset: kept open). */
  idleMs?: number;
}

/** MAX_ANSWER_BYTES bounds what is buffered of one answer; push services answer far less. */
const MAX_ANSWER_BYTES = 1 << 20;

/**
 * H2Client sends requests to one origin over one long-lived HTTP/2 connection, and opens a new
 * one on the next request once it closes, fails or the server says GOAWAY. APNs asks for
 * exactly this (a connection per notification looks like a denial-of-service attack to it),
 * and it saves FCM a TLS handshake per push. The connection does not keep the process alive.
 * `http://` origins speak HTTP/2 without TLS (h2c), for local fakes.
 */
export class H2Client {
  readonly #origin: string;
  readonly #opts: H2ClientOptions;
  #session: ClientHttp2Session | undefined;
  #closed = false;
  /** connections counts the connections opened, for tests and logs. */
  connections = 0;

  constructor(origin: string, opts: H2ClientOptions = {}) {
    this.#origin = new URL(origin).origin;
    this.#opts = opts;
  }

  request(req: H2Request): Promise<H2Response> {
    return new Promise((resolve, reject) => {
      let session: ClientHttp2Session;
      let stream: ClientHttp2Stream;
      try {
        session = this.#connection();
        stream = session.request({
          ":method": req.method,
          ":path": req.path,
          ...req.headers,
        });
      } catch (err) {
        reject(err);
        return;
      }
      let status = 0;
      let headers: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let size = 0;
      const fail = (err: Error) => {
        clearTimeout(timer);
        if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
        reject(err);
      };
      const timer = setTimeout(() => {
        // A connection that stopped answering (or never connected) is not used again: the
        // next request opens a new one, while requests under way on it finish or time out.
        this.#retire(session);
        fail(new Error(`no answer within ${req.timeoutMs} ms`));
      }, req.timeoutMs);
      stream.on("response", (h) => {
        headers = h;
        status = Number(h[":status"]);
      });
      stream.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) fail(new Error("answer too large"));
        else chunks.push(chunk);
      });
      stream.on("end", () => {
        // A stream cut with its connection ends without ever having had an answer.
        if (status === 0) return fail(new Error("connection closed before an answer"));
        clearTimeout(timer);
        resolve({ status, headers, body: Buffer.concat(chunks).toString("utf8") });
      });
      stream.on("error", fail);
      // Reset without an error code, or closed with the connection: no answer.
      stream.on("close", () => fail(new Error(`stream closed (code ${stream.rstCode})`)));
      stream.end(req.body);
    });
  }

  /** close ends the connection; requests under way finish first. */
  async close(): Promise<void> {
    this.#closed = true;
    const s = this.#session;
    this.#session = undefined;
    if (s && !s.closed && !s.destroyed) await new Promise<void>((resolve) => s.close(resolve));
  }

  #retire(s: ClientHttp2Session): void {
    if (this.#session === s) this.#session = undefined;
    if (s.connecting) s.destroy();
    else if (!s.closed) s.close();
  }

  #connection(): ClientHttp2Session {
    if (this.#closed) throw new Error("H2Client is closed");
    const current = this.#session;
    if (current && !current.closed && !current.destroyed) return current;
    const s = connect(this.#origin, this.#opts.ca ? { ca: this.#opts.ca } : {});
    this.connections++;
    const forget = () => {
      if (this.#session === s) this.#session = undefined;
    };
    // Its streams fail with it (and are retried by the caller); the next request reconnects.
    s.on("error", forget);
    s.on("goaway", forget);
    s.on("close", forget);
    if (this.#opts.idleMs) s.setTimeout(this.#opts.idleMs, () => s.close());
    s.unref();
    this.#session = s;
    return s;
  }
}

/** parseJson reads an answer's body, undefined when it is not JSON (a proxy's HTML page). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
