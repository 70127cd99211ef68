import { createRequire } from "node:module";
import type * as OtelApi from "@opentelemetry/api";

/** The @opentelemetry/api module, as loaded when tracing is on. */
export type TraceApi = typeof OtelApi;
export type Span = OtelApi.Span;
export type Attributes = OtelApi.Attributes;

/** W3C traceparent: version 00, trace id, parent span id, flags. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Paths whose incoming requests are not traced: probes and scrapes would drown the callbacks. */
const UNTRACED_PATHS = new Set(["/metrics", "/healthz", "/readyz", "/livez"]);

/**
 * Whether tracing is on: OTEL_SDK_DISABLED is not "true", and a trace exporter is asked for
 * (OTEL_TRACES_EXPORTER set to anything but "none", or an OTLP endpoint given). Everything else
 * (protocol, headers, sampler, service name, resource attributes) is read by the SDK itself from
 * the standard OTEL_* variables.
 */
export function tracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env.OTEL_SDK_DISABLED ?? "").trim().toLowerCase() === "true") return false;
  const exporter = (env.OTEL_TRACES_EXPORTER ?? "").trim().toLowerCase();
  if (exporter !== "") return exporter !== "none";
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/** Started tracing: the API, this process's tracer, and the helpers that carry a trace through a job. */
export interface Tracing {
  api: TraceApi;
  tracer: OtelApi.Tracer;
  /**
   * Runs fn inside a new span (child of `parent`, else of the active context), ends it, and marks it
   * failed when fn throws. `outcome` names the result on the span (attribute ess.outcome).
   */
  span<R>(
    name: string,
    opts: { kind?: OtelApi.SpanKind; attributes?: Attributes; parent?: OtelApi.Context; links?: OtelApi.Link[] },
    fn: (span: Span) => Promise<R>,
    outcome?: (result: R) => string | undefined,
  ): Promise<R>;
  /** The span's W3C traceparent, the form a job carries its trace in. */
  traceparent(span: Span): string;
  /** A context whose remote parent is the given traceparent; the root context when it is absent or malformed. */
  contextOf(traceparent: string | undefined): OtelApi.Context;
  /** Flushes the spans still buffered and stops the SDK. */
  shutdown(): Promise<void>;
}

/** An error's code for ess.outcome: our errors have a closed `code`; anything else is "error". */
function errorOutcome(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[A-Z_]{1,64}$/.test(code) ? code : "error";
}

/**
 * Starts OpenTelemetry tracing when tracingEnabled(env), else does nothing and loads nothing: the
 * SDK and the API are imported only here, only when on, so a process without OTEL_* variables pays
 * nothing. Instruments incoming and outgoing node:http requests (an incoming traceparent is honoured;
 * probes and scrapes are not traced) and fetch (webhook deliveries send traceparent).
 * `service` is the default service.name; OTEL_SERVICE_NAME wins.
 */
export async function startTracing(
  service: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Tracing | undefined> {
  if (!tracingEnabled(env)) return undefined;
  const [api, { NodeSDK }, { HttpInstrumentation }, { UndiciInstrumentation }] = await Promise.all([
    import("@opentelemetry/api"),
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/instrumentation-http"),
    import("@opentelemetry/instrumentation-undici"),
  ]);
  const sdk = new NodeSDK({
    ...(env.OTEL_SERVICE_NAME ? {} : { serviceName: service }),
    // traces only: metrics are Prometheus's (/metrics) and logs are JSON lines; the SDK would
    // otherwise export both over OTLP by default. OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER set
    // explicitly still turn them on.
    ...(env.OTEL_METRICS_EXPORTER ? {} : { metricReaders: [] }),
    ...(env.OTEL_LOGS_EXPORTER ? {} : { logRecordProcessors: [] }),
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => UNTRACED_PATHS.has((req.url ?? "/").split("?", 1)[0] ?? "/"),
        // headers are not recorded (Authorization); the URL of a callback holds only the request id
      }),
      new UndiciInstrumentation(),
    ],
  });
  sdk.start();
  // the instrumentation patches node:http when it is required; this process loads it as ESM, so
  // require it once here (the server prototype it patches is the one ESM imports share)
  const require = createRequire(import.meta.url);
  require("node:http");
  require("node:https");

  const tracer = api.trace.getTracer(service);
  const tracing: Tracing = {
    api,
    tracer,
    async span(name, opts, fn, outcome) {
      const parent = opts.parent ?? api.context.active();
      const spanOpts: OtelApi.SpanOptions = {};
      if (opts.kind !== undefined) spanOpts.kind = opts.kind;
      if (opts.attributes) spanOpts.attributes = opts.attributes;
      if (opts.links) spanOpts.links = opts.links;
      const span = tracer.startSpan(name, spanOpts, parent);
      try {
        const result = await api.context.with(api.trace.setSpan(parent, span), () => fn(span));
        const o = outcome?.(result);
        if (o !== undefined) span.setAttribute("ess.outcome", o);
        return result;
      } catch (err) {
        const o = errorOutcome(err);
        span.setAttribute("ess.outcome", o);
        // our errors (4xx answers, typed failures) are outcomes, not faults of the process
        if (o === "error") {
          span.recordException(err as Error);
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: (err as Error)?.message ?? String(err) });
        }
        throw err;
      } finally {
        span.end();
      }
    },
    traceparent(span) {
      const sc = span.spanContext();
      return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
    },
    contextOf(traceparent) {
      const m = traceparent ? TRACEPARENT.exec(traceparent) : null;
      if (!m) return api.ROOT_CONTEXT;
      const sc = {
        traceId: m[1] as string,
        spanId: m[2] as string,
        traceFlags: Number.parseInt(m[3] as string, 16),
        isRemote: true,
      };
      return api.trace.isSpanContextValid(sc) ? api.trace.setSpanContext(api.ROOT_CONTEXT, sc) : api.ROOT_CONTEXT;
    },
    shutdown: () => sdk.shutdown(),
  };
  return tracing;
}

/**
 * A span around each dead-letter replay by id (ess.dead_letter.replay: the entry's id and the
 * outcome, "replayed" or "not-found"), in the gateway's admin API and in the workers' bulk replays:
 * the hook DeadLetters runs around each replay.
 */
export function replaySpan(t: Tracing) {
  return <R extends string>(id: string, replay: () => Promise<R>): Promise<R> =>
    t.span("ess.dead_letter.replay", { attributes: { "ess.dead_letter.id": id } }, replay, (r) => r);
}
