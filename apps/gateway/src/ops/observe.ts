import { randomUUID } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { type AccessRule, ruleFor } from "../auth/access-rules.js";
import type { AppEnv, OperationsDeps } from "../context.js";

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * X-Request-Id (the caller's when printable and at most 128 characters, else a fresh UUID, always
 * returned), one access-log line per request, and the HTTP metrics. Outermost middleware.
 */
export function observeMiddleware(
  listener: "gateway" | "admin",
  rules: readonly AccessRule[],
  ops: OperationsDeps | undefined,
): MiddlewareHandler<AppEnv> {
  const log = ops?.accessLog;
  const metrics = ops?.metrics;
  return async (c, next) => {
    const start = performance.now();
    const given = c.req.header("x-request-id");
    const requestId = given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
    c.set("requestId", requestId);
    // set on the context, not on c.res after next(): touching c.res.headers would turn
    // @hono/node-server's lightweight response into a full web Response on every call
    c.header("X-Request-Id", requestId);
    await next();
    const status = c.res.status;
    const operation = c.get("operation") ?? ruleFor(rules, c.req.method, c.req.path).operation;
    const seconds = (performance.now() - start) / 1000;
    if (metrics) {
      metrics.httpRequests.inc({ listener, operation, code: status });
      metrics.httpDuration.observe({ operation }, seconds);
      if (operation === "executionStatus" && c.req.method === "POST") {
        metrics.callbacks.inc({ status: c.get("callbackStatus") ?? "unknown", code: status });
      }
    }
    // the path carries the request id, never the handle (that is in the body, which is not logged)
    log?.info(
      {
        requestId,
        listener,
        method: c.req.method,
        path: c.req.path,
        status,
        durationMs: Math.round(seconds * 100000) / 100,
        operation,
        principal: c.get("principal")?.name,
      },
      "request",
    );
  };
}
