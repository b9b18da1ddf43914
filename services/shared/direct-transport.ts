import {
  create,
  type DescMessage,
  type DescMethodStreaming,
  type DescMethodUnary,
  type DescService,
  isMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createContextValues,
  createHandlerContext,
  createServiceImplSpec,
  type Interceptor,
  type MethodImplSpec,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { copyMessage } from "./copy-message.ts";

/** DirectTransportOptions are a direct transport's interceptors and default deadline. */
export interface DirectTransportOptions {
  /** serverInterceptors run as the served app runs them, outermost first. */
  serverInterceptors: Interceptor[];
  /** clientInterceptors run as a client's over the network do, outermost first. */
  clientInterceptors: Interceptor[];
  defaultTimeoutMs?: number;
}

type UnaryImpl = Extract<MethodImplSpec, { kind: "unary" }>;
type UnaryFn = (req: UnaryRequest) => Promise<UnaryResponse>;

// A finished call aborts its handler's signal, as connect's handlers do, with one shared
// reason: an abort without one makes a DOMException, stack and all, for every call.
const CALL_DONE = new ConnectError("call finished", Code.Canceled);

/**
 * createDirectTransport calls the unary methods that `routes` registers, in this process, as
 * the served app answers them over the network: the client interceptors (tracing, the signed
 * internal token), then the server interceptors (tracing, error edge, authentication,
 * validation); the handler gets a context of its own (deadline, headers, fresh context values:
 * nothing crosses but what the wire would carry), and an error reaches the caller as the wire
 * delivers it (code, message, metadata, details; never the cause). What it leaves out is the
 * wire: no serialization, HTTP or stream machinery. Messages are copied at both ends instead, so
 * neither side can change what the other holds. The embedded region's services call each other
 * through it: createRouterTransport, which runs the whole protocol in memory, costs several
 * times more per call (bench/README.md). No internal contract streams; streaming is refused.
 */
export function createDirectTransport(
  routes: (router: ConnectRouter) => void,
  opts: DirectTransportOptions,
): Transport {
  const impls = new Map<DescMethodUnary, UnaryImpl>();
  const capture: ConnectRouter = {
    handlers: [],
    service(service: DescService, implementation: unknown) {
      const spec = createServiceImplSpec(service, implementation as never);
      for (const m of Object.values(spec.methods)) if (m.kind === "unary") impls.set(m.method, m);
      return capture;
    },
    rpc() {
      throw new Error("createDirectTransport: register whole services (router.service)");
    },
  };
  routes(capture);

  /** serve runs one call through the server interceptors to its handler. */
  const serve = async (req: UnaryRequest, timeoutMs: number | undefined) => {
    const spec = impls.get(req.method as DescMethodUnary);
    if (!spec) {
      throw new ConnectError(
        `${req.service.typeName}/${req.method.name} is not served here`,
        Code.Unimplemented,
      );
    }
    const context = createHandlerContext({
      service: req.service,
      method: spec.method,
      protocolName: "direct",
      requestMethod: "POST",
      url: req.url,
      timeoutMs,
      requestSignal: req.signal,
      requestHeader: req.header,
    });
    const handle = chain(opts.serverInterceptors, async (sreq) => ({
      stream: false,
      service: sreq.service,
      method: spec.method,
      header: context.responseHeader,
      trailer: context.responseTrailer,
      contextValues: sreq.contextValues,
      message: normalize(
        spec.method.output,
        await spec.impl(sreq.message, {
          ...context,
          service: sreq.service,
          requestHeader: sreq.header,
          signal: sreq.signal,
          values: sreq.contextValues,
        }),
      ),
    }));
    try {
      const res = await handle({
        stream: false,
        service: req.service,
        method: spec.method,
        requestMethod: "POST",
        url: req.url,
        signal: context.signal,
        header: context.requestHeader,
        contextValues: context.values,
        message: copyMessage(req.message as MessageShape<DescMessage>),
      });
      return { ...res, message: copyMessage(res.message) };
    } catch (err) {
      const ce = ConnectError.from(err);
      const wire = new ConnectError(ce.rawMessage, ce.code, ce.metadata);
      wire.details.push(...ce.details);
      throw wire;
    } finally {
      context.abort(CALL_DONE);
    }
  };

  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0],
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const ms = timeoutMs ?? opts.defaultTimeoutMs;
      const call = chain(opts.clientInterceptors, (req) => serve(req, ms))({
        stream: false,
        service: method.parent,
        method,
        requestMethod: "POST",
        url: `/${method.parent.typeName}/${method.name}`,
        signal: signal ?? new AbortController().signal,
        header: new Headers(header),
        contextValues: contextValues ?? createContextValues(),
        message: normalize(method.input, input),
      } as UnaryRequest) as Promise<UnaryResponse<I, O>>;
      return ms === undefined && signal === undefined ? call : bounded(call, ms, signal);
    },
    stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
    ): Promise<StreamResponse<I, O>> {
      return Promise.reject(
        new ConnectError(
          `${method.parent.typeName}/${method.name}: the direct transport makes no streaming calls`,
          Code.Unimplemented,
        ),
      );
    },
  };
}

/** chain wraps `last` in interceptors, the first outermost (as connect applies them). */
function chain(interceptors: Interceptor[], last: UnaryFn): UnaryFn {
  let next = last as Parameters<Interceptor>[0];
  for (let i = interceptors.length - 1; i >= 0; i--) next = (interceptors[i] as Interceptor)(next);
  return next as UnaryFn;
}

function normalize<S extends DescMessage>(schema: S, m: MessageInitShape<S>): MessageShape<S> {
  return isMessage(m, schema) ? m : create(schema, m);
}

/**
 * bounded ends a call at its deadline (DeadlineExceeded) or when the caller's signal aborts
 * (Canceled), as a network client does, whether or not the handler has finished.
 */
function bounded<T>(
  call: Promise<T>,
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new ConnectError("operation was aborted", Code.Canceled));
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => reject(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
            timeoutMs,
          );
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    call.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    });
  });
}
