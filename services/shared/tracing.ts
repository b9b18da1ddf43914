import { randomBytes } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  type Attributes,
  type Context,
  context,
  createContextKey,
  defaultTextMapGetter,
  defaultTextMapSetter,
  isSpanContextValid,
  type Link,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import type { SpanExporter } from "@opentelemetry/sdk-trace";

/**
 * Distributed tracing (OpenTelemetry), instrumented by hand at our own seams rather than by
 * auto-instrumentation patching http2 and kafkajs: a span per client frame at the gateway, a
 * client and a server span per RPC (W3C `traceparent` in the request headers), a producer span
 * per bus publish and a consumer span per record handled (`traceparent` in the record's
 * headers), and a span per delivery written to a WebSocket (the context crosses the delivery
 * channel in GatewayDelivery.trace_context). So one trace follows a message from the sender's
 * frame through messaging, persistence, the bus and routing to every recipient's socket.
 *
 * Off by default, on with OTEL_TRACES_EXPORTER=otlp: spans then go over OTLP/HTTP (protobuf)
 * to OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318, where the ADOT collector
 * sidecar listens), the exporter reading the standard OTEL_EXPORTER_OTLP_* variables. Off, no
 * SDK is even loaded: every helper here starts with one check of a module variable, then does
 * what it wraps and nothing else (no span objects, no context switches, no headers).
 *
 * Batching. Several places merge items from many traces into one operation (the Batcher's
 * batch RPCs, a bus batch handed to one handler). Such an operation runs in the context of its
 * first item when all items share one span (a lone send, the usual case when idle, keeps a
 * strict parent chain end to end); otherwise it runs in a `batch …` span that is the child of
 * the first item's context and links to every item's span. Each message's trace thus reaches
 * the merged operation (through the link), and everything the operation does is in one trace
 * that points back at all of them, the OpenTelemetry way of tracing batches without cutting
 * one trace per item out of shared work. Work the code does per item, such as the consumer
 * span of each bus record and the router's per-message reads, continues that item's own trace.
 */

/** TraceCarrier is the W3C trace context as headers: traceparent, and tracestate when set. */
export type TraceCarrier = Record<string, string>;

interface State {
  tracer(service: string): Tracer;
  readonly fallback: string;
  readonly propagator: TextMapPropagator;
  shutdown(): Promise<void>;
}

let state: State | undefined;

/** SERVICE holds, in a context, the service whose work it is (its spans carry its name). */
const SERVICE = createContextKey("connect-chat service");

/** TracingOptions say which process tracing starts for. */
export interface TracingOptions {
  /**
   * service is this process's own service (`region` for a whole region in one process): the
   * service.name of its spans (OTEL_SERVICE_NAME overrides it) and of work done outside any
   * service. Services sharing the process trace under their own names.
   */
  service: string;
  region?: string;
  instanceId?: string;
  /** env is where OTEL_TRACES_EXPORTER is read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * exporter, when given, turns tracing on whatever the environment says and receives each
   * span as it ends (tests, with an InMemorySpanExporter).
   */
  exporter?: SpanExporter;
}

/**
 * startTracing turns tracing on for this process when OTEL_TRACES_EXPORTER=otlp (or an
 * exporter is given), and says whether it is on. It loads the SDK only then. A second call
 * changes nothing.
 */
export async function startTracing(opts: TracingOptions): Promise<boolean> {
  if (state) return true;
  const env = opts.env ?? process.env;
  if (!opts.exporter && env.OTEL_TRACES_EXPORTER !== "otlp") return false;
  const [sdk, core, resources, hooks, semconv] = await Promise.all([
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/core"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/semantic-conventions"),
  ]);
  let processor: InstanceType<typeof sdk.SimpleSpanProcessor | typeof sdk.BatchSpanProcessor>;
  if (opts.exporter) {
    processor = new sdk.SimpleSpanProcessor({ exporter: opts.exporter });
  } else {
    const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
    processor = new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter() });
  }
  const detected = await resources.detectResources({ detectors: [resources.envDetector] });
  if (state) return true; // started meanwhile
  const base = resources
    .defaultResource()
    .merge(detected)
    .merge(
      resources.resourceFromAttributes({
        "service.namespace": "connect-chat",
        ...(opts.region ? { "chat.region": opts.region } : {}),
      }),
    );
  const own = env.OTEL_SERVICE_NAME || opts.service;
  const tracers = new Map<string, Tracer>();
  const manager = new hooks.AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  state = {
    fallback: opts.service,
    propagator: new core.W3CTraceContextPropagator(),
    // One provider per service (they share the processor): in a region running every service
    // in one process, each still shows as itself.
    tracer(service) {
      let tracer = tracers.get(service);
      if (!tracer) {
        const mine = service === opts.service;
        const provider = new sdk.TracerProvider({
          resource: base.merge(
            resources.resourceFromAttributes({
              [semconv.ATTR_SERVICE_NAME]: mine ? own : service,
              ...(mine && opts.instanceId ? { "service.instance.id": opts.instanceId } : {}),
            }),
          ),
          idGenerator: XRAY_IDS,
          spanProcessors: [processor],
        });
        tracer = provider.getTracer("connect-chat");
        tracers.set(service, tracer);
      }
      return tracer;
    },
    async shutdown() {
      await processor.forceFlush();
      await processor.shutdown();
      context.disable();
    },
  };
  return true;
}

/** stopTracing exports the spans still buffered and turns tracing off. */
export async function stopTracing(): Promise<void> {
  const s = state;
  state = undefined;
  await s?.shutdown();
}

/** tracingOn says whether spans are being recorded. */
export function tracingOn(): boolean {
  return state !== undefined;
}

/**
 * XRAY_IDS makes trace ids that X-Ray accepts: the first 8 hex digits are the start time in
 * Unix seconds, the rest random (still valid W3C ids). The ADOT collector Copilot deploys
 * (v0.17) drops spans whose trace id does not start with a recent time.
 */
const XRAY_IDS = {
  generateTraceId: () =>
    Math.floor(Date.now() / 1000)
      .toString(16)
      .padStart(8, "0") + randomBytes(12).toString("hex"),
  generateSpanId: () => randomBytes(8).toString("hex"),
};

/** withService runs `fn` as `service`'s work: spans started inside it are that service's. */
export function withService<T>(service: string, fn: () => T): T {
  if (!state) return fn();
  return context.with(context.active().setValue(SERVICE, service), fn);
}

/** inContext runs `fn` in `ctx` (a context captured earlier), or as is when there is none. */
export function inContext<T>(ctx: Context | undefined, fn: () => T): T {
  return state && ctx ? context.with(ctx, fn) : fn();
}

/** activeContext is the context to capture now, for work that goes on elsewhere (or undefined). */
export function activeContext(): Context | undefined {
  return state ? context.active() : undefined;
}

/** SpanOptions describe a span to start. */
export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  links?: Link[];
  /** parent is the context to start in (default: the active one; ROOT_CONTEXT for a new trace). */
  parent?: Context;
  /** service names whose work this is (default: the service of the parent context). */
  service?: string;
}

/** OpenSpan is a started span that outlives the call that started it. */
export interface OpenSpan {
  readonly span: Span;
  /** context is the span's context: what runs in it is the span's child. */
  readonly context: Context;
  /** run runs `fn` in the span's context. */
  run<T>(fn: () => T): T;
  /** fail marks the span failed with `err`. */
  fail(err: unknown): void;
  /**
   * failRpc records the gRPC code of a request that failed with `err`, and marks the span
   * failed when the code is the server's fault (semantic conventions): the other codes are
   * answers about the request (invalid, not found, denied), not failures.
   */
  failRpc(err: unknown): void;
  end(): void;
}

/** openSpan starts a span, or returns undefined when tracing is off. */
export function openSpan(name: string, opts: SpanOptions = {}): OpenSpan | undefined {
  if (!state) return undefined;
  let parent = opts.parent ?? context.active();
  if (opts.service) parent = parent.setValue(SERVICE, opts.service);
  const service = (parent.getValue(SERVICE) as string | undefined) ?? state.fallback;
  const span = state
    .tracer(service)
    .startSpan(
      name,
      { kind: opts.kind ?? SpanKind.INTERNAL, attributes: opts.attributes, links: opts.links },
      parent,
    );
  const ctx = trace.setSpan(parent, span);
  return {
    span,
    context: ctx,
    run: (fn) => context.with(ctx, fn),
    fail: (err) => fail(span, err),
    failRpc: (err) => {
      const code = ConnectError.from(err).code;
      span.setAttribute("rpc.grpc.status_code", code);
      if (SERVER_FAULTS.has(code)) fail(span, err);
    },
    end: () => span.end(),
  };
}

/**
 * inSpan runs `fn` in a new span, which ends when `fn` settles and is marked failed if it
 * throws. Off, it only calls `fn`.
 */
export async function inSpan<T>(name: string, opts: SpanOptions, fn: () => Promise<T>): Promise<T> {
  const s = openSpan(name, opts);
  if (!s) return fn();
  try {
    return await s.run(fn);
  } catch (err) {
    s.fail(err);
    throw err;
  } finally {
    s.end();
  }
}

/**
 * inMerged runs `fn`, one operation done for items captured in `contexts` (see "Batching"
 * above): in the items' context when they share one span, else in a span `batch <name>`
 * parented by the first item and linking to every item's span.
 */
export function inMerged<T>(
  name: string,
  contexts: ReadonlyArray<Context | undefined>,
  fn: () => Promise<T>,
): Promise<T> {
  if (!state) return fn();
  let first: Context | undefined;
  const spans = new Map<string, SpanContext>();
  for (const c of contexts) {
    const sc = c && trace.getSpanContext(c);
    if (!sc || !isSpanContextValid(sc)) continue;
    first ??= c;
    spans.set(sc.spanId, sc);
  }
  if (spans.size <= 1) return inContext(first ?? contexts[0], fn);
  return inSpan(
    `batch ${name}`,
    {
      parent: first,
      links: [...spans.values()].map((sc) => ({ context: sc })),
      attributes: { "chat.batch.items": contexts.length },
    },
    fn,
  );
}

/**
 * traceCarrier returns the W3C trace context of `ctx` (default: the active one) as headers to
 * send along, or undefined when tracing is off or there is no span to continue.
 */
export function traceCarrier(ctx?: Context): TraceCarrier | undefined {
  if (!state) return undefined;
  const c = ctx ?? context.active();
  if (!trace.getSpan(c)) return undefined;
  const carrier: TraceCarrier = {};
  state.propagator.inject(c, carrier, defaultTextMapSetter);
  return carrier;
}

/**
 * contextFrom returns the context a carrier continues (on top of the active context), or the
 * active context when the carrier has none; undefined when tracing is off.
 */
export function contextFrom(carrier: Readonly<TraceCarrier> | undefined): Context | undefined {
  if (!state) return undefined;
  const active = context.active();
  if (!carrier?.traceparent) return active;
  return state.propagator.extract(active, carrier, defaultTextMapGetter);
}

/**
 * traceFields are the ids of the active span for a log line (pino mixin): trace_id and
 * span_id as OpenTelemetry shows them, xray_trace_id as X-Ray does (what CloudWatch's search
 * from a trace to its logs matches). Nothing when tracing is off or no span is active. Always
 * a new object: pino merges the line's own fields into it.
 */
export function traceFields(): Record<string, string> {
  if (!state) return {};
  const sc = trace.getSpanContext(context.active());
  if (!sc || !isSpanContextValid(sc)) return {};
  return {
    trace_id: sc.traceId,
    span_id: sc.spanId,
    xray_trace_id: `1-${sc.traceId.slice(0, 8)}-${sc.traceId.slice(8)}`,
  };
}

/** fail marks a span failed: the error's message as status, the error as an event. */
function fail(span: Span, err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  span.recordException(e);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
}

const headersSetter: TextMapSetter<Headers> = { set: (h, k, v) => h.set(k, v) };
const headersGetter: TextMapGetter<Headers> = {
  get: (h, k) => h.get(k) ?? undefined,
  keys: (h) => [...h.keys()],
};

/** rpcAttributes are the semantic-convention attributes of an RPC. */
function rpcAttributes(service: string, method: string): Attributes {
  return { "rpc.system": "grpc", "rpc.service": service, "rpc.method": method };
}

/** QUIET_SERVICES are not traced: load balancers and probes call them all the time. */
const QUIET_SERVICES = /^grpc\.(health|reflection)\./;

/**
 * SERVER_FAULTS are the gRPC codes that mark a server span failed (semantic conventions): the
 * others are answers about the request, not failures of the server.
 */
const SERVER_FAULTS = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

/**
 * clientTracing is the client interceptor that makes a client span per call and puts its
 * context in the request headers (traceparent). Off, it passes the call on untouched.
 */
export function clientTracing(): Interceptor {
  // connect applies interceptors per call: off, the call goes straight to `next`.
  return (next) => (state ? tracedCall(next) : next);
}

/** tracedCall is clientTracing's interceptor when tracing is on. */
const tracedCall: Interceptor = (next) => {
  return async (req) => {
    if (!state || QUIET_SERVICES.test(req.service.typeName)) return next(req);
    const s = openSpan(`${req.service.typeName}/${req.method.name}`, {
      kind: SpanKind.CLIENT,
      attributes: rpcAttributes(req.service.typeName, req.method.name),
    });
    if (!s) return next(req);
    state.propagator.inject(s.context, req.header, headersSetter);
    try {
      const res = await s.run(() => next(req));
      s.span.setAttribute("rpc.grpc.status_code", 0);
      return res;
    } catch (err) {
      s.span.setAttribute("rpc.grpc.status_code", ConnectError.from(err).code);
      s.fail(err);
      throw err;
    } finally {
      s.end();
    }
  };
};

/**
 * serverTracing is the outermost server interceptor of `service`: a server span per call,
 * continuing the caller's trace when the request carries one, with the handler running as
 * that service's work. Off, it passes the call on untouched.
 */
export function serverTracing(service: string): Interceptor {
  // connect applies interceptors per call: off, the call goes straight to `next`.
  const traced = tracedHandler(service);
  return (next) => (state ? traced(next) : next);
}

/** tracedHandler is serverTracing's interceptor when tracing is on. */
function tracedHandler(service: string): Interceptor {
  return (next) => async (req) => {
    if (!state || QUIET_SERVICES.test(req.service.typeName)) return next(req);
    const parent = req.header.has("traceparent")
      ? state.propagator.extract(context.active(), req.header, headersGetter)
      : context.active();
    const s = openSpan(`${req.service.typeName}/${req.method.name}`, {
      kind: SpanKind.SERVER,
      parent,
      service,
      attributes: rpcAttributes(req.service.typeName, req.method.name),
    });
    if (!s) return next(req);
    try {
      const res = await s.run(() => next(req));
      s.span.setAttribute("rpc.grpc.status_code", 0);
      return res;
    } catch (err) {
      s.failRpc(err);
      throw err;
    } finally {
      s.end();
    }
  };
}

/** MESSAGING_SYSTEM is what the bus is, for the messaging attributes of its spans. */
const MESSAGING_SYSTEM = "kafka";

/** publishAttributes are the attributes of a producer span. */
export function publishAttributes(topic: string, count: number): Attributes {
  return {
    "messaging.system": MESSAGING_SYSTEM,
    "messaging.operation.type": "send",
    "messaging.operation.name": "publish",
    "messaging.destination.name": topic,
    "messaging.batch.message_count": count,
  };
}

/** processAttributes are the attributes of a consumer span of one record. */
export function processAttributes(r: {
  topic: string;
  partition: number;
  offset: string;
  key: string;
}): Attributes {
  return {
    "messaging.system": MESSAGING_SYSTEM,
    "messaging.operation.type": "process",
    "messaging.operation.name": "process",
    "messaging.destination.name": r.topic,
    "messaging.destination.partition.id": String(r.partition),
    "messaging.kafka.offset": Number(r.offset),
    "messaging.kafka.message.key": r.key,
  };
}

export { ROOT_CONTEXT, SpanKind };
