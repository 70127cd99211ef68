import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import { jsonString, type LineFields, type Logger, lineWriter } from "@ess/config";
import type { MiddlewareHandler } from "hono";
import { type AccessRule, ruleFor } from "../auth/access-rules.js";
import type { AppEnv, GatewayDeps, OperationsDeps } from "../context.js";

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** The X-Request-Id of a request: the caller's when printable and at most 128 characters, else a fresh UUID. */
export function requestIdOf(given: string | undefined): string {
  return given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
}

/** One answered request, as the access log and the HTTP metrics see it. */
export interface AnsweredRequest {
  requestId: string;
  method: string;
  path: string;
  status: number;
  operation: string;
  principal: string | undefined;
  /** the callback's ESS status once its body parsed */
  callbackStatus: string | undefined;
  /** performance.now() when the request came in */
  start: number;
}

/** Counts and times an answered request (HTTP metrics, the callbacks metric) and writes its access-log line. */
export function recordRequest(
  ops: OperationsDeps | undefined,
  listener: "gateway" | "admin",
  r: AnsweredRequest,
): void {
  const { status, operation } = r;
  const seconds = (performance.now() - r.start) / 1000;
  const metrics = ops?.metrics;
  if (metrics) {
    metrics.httpRequests.inc({ listener, operation, code: status });
    metrics.httpDuration.observe({ operation }, seconds);
    if (operation === "executionStatus" && r.method === "POST") {
      metrics.callbacks.inc({ status: r.callbackStatus ?? "unknown", code: status });
    }
  }
  const log = ops?.accessLog;
  if (!log) return;
  const durationMs = Math.round(seconds * 100000) / 100;
  // the path carries the request id, never the handle (that is in the body, which is not logged)
  const line = accessLine(log);
  if (line) {
    line(
      `,"requestId":${jsonString(r.requestId)},"listener":"${listener}","method":${jsonString(r.method)}` +
        `,"path":${jsonString(r.path)},"status":${status},"durationMs":${durationMs}` +
        `,"operation":${jsonString(operation)}` +
        (r.principal === undefined ? "" : `,"principal":${jsonString(r.principal)}`),
    );
    return;
  }
  log.info(
    {
      requestId: r.requestId,
      listener,
      method: r.method,
      path: r.path,
      status,
      durationMs,
      operation,
      principal: r.principal,
    },
    "request",
  );
}

const accessLines = new WeakMap<Logger, ((fields: LineFields) => void) | null>();
/**
 * The access log's "request" line writer (lineWriter: the line pino writes, byte for byte, from a JSON
 * fragment, without pino's per-field serialisation); null for a logger it cannot imitate.
 */
function accessLine(log: Logger): ((fields: LineFields) => void) | null {
  let line = accessLines.get(log);
  if (line === undefined) {
    line = lineWriter(log, "info", "request") ?? null;
    accessLines.set(log, line);
  }
  return line;
}

/**
 * The gateway's deps on the context, X-Request-Id (requestIdOf, always returned), and recordRequest
 * once answered. Outermost middleware.
 */
export function observeMiddleware(
  listener: "gateway" | "admin",
  rules: readonly AccessRule[],
  deps: GatewayDeps,
): MiddlewareHandler<AppEnv> {
  const ops = deps.ops;
  return async (c, next) => {
    const start = performance.now();
    c.set("deps", deps);
    const requestId = requestIdOf(c.req.header("x-request-id"));
    c.set("requestId", requestId);
    // served by node:http, the header goes on the node response, which @hono/node-server's writeHead
    // merges into whatever the app answers: c.header() would build a web Headers object for every
    // response (and the server then convert it back), and touching c.res.headers after next() would
    // turn its lightweight response into a full web Response. In-process (app.request()) there is no
    // node response, and the context carries it.
    const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (outgoing) outgoing.setHeader("x-request-id", requestId);
    else c.header("X-Request-Id", requestId);
    await next();
    recordRequest(ops, listener, {
      requestId,
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      operation: c.get("operation") ?? ruleFor(rules, c.req.method, c.req.path).operation,
      principal: c.get("principal")?.name,
      callbackStatus: c.get("callbackStatus"),
      start,
    });
  };
}
