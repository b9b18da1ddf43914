import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { type InternalSigner, signingInterceptor } from "./internal-auth.ts";
import { clientTracing } from "./tracing.ts";

/** ServiceClients creates typed gRPC clients for other services and closes their connections. */
export interface ServiceClients {
  /** client returns a client of `service` at `baseUrl` whose calls time out after the default. */
  client<S extends DescService>(service: S, baseUrl: string): Client<S>;
  close(): void;
}

/**
 * createServiceClients speaks the Connect protocol over HTTP/2 with binary protobuf (every
 * service also answers gRPC on the same port, for probes): a unary call carries no envelope or
 * trailers, and costs both ends 37% less CPU than in the gRPC protocol (bench/rpc-cost.ts).
 * It shares one HTTP/2 session per base URL between all clients, with a
 * deadline on every call (`defaultTimeoutMs`, overridable per call with `timeoutMs`). Every
 * call carries an internal token `signer` mints (see internal-auth.ts), and, traced, its
 * trace context (tracing.ts); without a signer (a service nobody lets call others) no client
 * can be made.
 */
export function createServiceClients(
  defaultTimeoutMs: number,
  signer?: InternalSigner,
): ServiceClients {
  const sessions = new Map<string, Http2SessionManager>();
  const transports = new Map<string, ReturnType<typeof createConnectTransport>>();
  const transport = (baseUrl: string) => {
    let t = transports.get(baseUrl);
    if (!t) {
      const session = new Http2SessionManager(baseUrl, {
        pingIntervalMs: 10_000,
        pingTimeoutMs: 5_000,
        idleConnectionTimeoutMs: 60_000,
      });
      sessions.set(baseUrl, session);
      t = createConnectTransport({
        baseUrl,
        httpVersion: "2",
        useBinaryFormat: true,
        sessionManager: session,
        defaultTimeoutMs,
        // Inside a region's network compression costs CPU and saves nothing; an empty list
        // also stops servers from compressing their answers.
        acceptCompression: [],
        interceptors: signer ? [clientTracing(), signingInterceptor(signer)] : [clientTracing()],
      });
      transports.set(baseUrl, t);
    }
    return t;
  };
  return {
    client: (service, baseUrl) => {
      if (!signer) {
        throw new Error(`cannot call ${service.typeName}: this service has no INTERNAL_AUTH_KEY`);
      }
      return createClient(service, transport(baseUrl));
    },
    close() {
      for (const s of sessions.values()) s.abort();
      sessions.clear();
      transports.clear();
    },
  };
}
