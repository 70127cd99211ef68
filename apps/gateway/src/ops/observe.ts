import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { MiddlewareHandler } from "hono";
import { type AccessRule, ruleFor } from "../auth/access-rules.js";
import type { AppEnv, GatewayDeps } from "../context.js";

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The gateway's deps on the context, X-Request-Id (the caller's when printable and at most 128
 * characters, else a fresh UUID, always returned), one access-log line per request, and the HTTP
 * metrics. Outermost middleware.
 */
export function observeMiddleware(
  listener: "gateway" | "admin",
  rules: readonly AccessRule[],
  deps: GatewayDeps,
): MiddlewareHandler<AppEnv> {
  const ops = deps.ops;
  const log = ops?.accessLog;
  const metrics = ops?.metrics;
  return async (c, next) => {
    const start = performance.now();
    c.set("deps", deps);
    const given = c.req.header("x-request-id");
    const requestId = given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
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
