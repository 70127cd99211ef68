import { randomUUID } from "node:crypto";
import type { Logger } from "@ess/config";
import { ensureScriptsLoaded } from "@ess/store";
import type { Hono, MiddlewareHandler } from "hono";
import type { Redis } from "ioredis";
import { type AccessRule, ruleFor } from "./auth/access-rules.js";
import type { Authenticator } from "./auth/authenticator.js";
import { authMiddleware } from "./auth/middleware.js";
import type { BacklogMonitor } from "./backlog.js";
import { backpressureMiddleware } from "./backpressure.js";
import type { AppEnv, GatewayDeps } from "./context.js";
import type { GatewayMetrics, QueueCatalog } from "./metrics.js";
import type { RateLimiter } from "./rate-limit.js";

/** What the operations layer needs (issue 5); built by main.ts, or by a test. */
export interface OperationsDeps {
  auth: Authenticator;
  metrics?: GatewayMetrics | undefined;
  catalog?: QueueCatalog | undefined;
  backlog?: BacklogMonitor | undefined;
  rateLimit?: RateLimiter | undefined;
  /** Access logs (one line per request) go here; absent: none. */
  accessLog?: Logger | undefined;
  readiness?: Readiness | undefined;
  retryAfterSeconds: number;
}

/**
 * /readyz: Redis connected and answering, the project's scripts in its cache, and not shutting
 * down. Costs a PING and a SCRIPT EXISTS per probe (never on the callback path).
 */
export class Readiness {
  stopping = false;

  constructor(
    private readonly redis: Redis,
    private readonly timeoutMs = 1000,
  ) {}

  async check(): Promise<{ ready: boolean; checks: Record<string, string> }> {
    if (this.stopping) return { ready: false, checks: { shutdown: "stopping" } };
    if (this.redis.status !== "ready") return { ready: false, checks: { redis: this.redis.status } };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      await Promise.race([this.redis.ping(), timeout]);
    } catch (err) {
      clearTimeout(timer);
      return { ready: false, checks: { redis: (err as Error).message } };
    }
    try {
      await Promise.race([ensureScriptsLoaded(this.redis), timeout]);
      return { ready: true, checks: { redis: "ok", scripts: "ok" } };
    } catch (err) {
      return { ready: false, checks: { redis: "ok", scripts: (err as Error).message } };
    } finally {
      clearTimeout(timer);
    }
  }
}

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

/** GET /healthz (alive) and GET /readyz (ready for traffic) on a listener. */
export function healthRoutes(app: Hono<AppEnv>, readiness: Readiness | undefined): void {
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    if (!readiness) return c.json({ status: "ready", checks: {} });
    const r = await readiness.check();
    return c.json({ status: r.ready ? "ready" : "not ready", checks: r.checks }, r.ready ? 200 : 503);
  });
}

/**
 * Installs the operations layer on a listener, before its routes: request id + access log +
 * metrics, authentication and roles, backpressure (callback listener only), health.
 */
export function installOperations(
  app: Hono<AppEnv>,
  deps: GatewayDeps,
  listener: "gateway" | "admin",
  rules: readonly AccessRule[],
): void {
  const ops = deps.ops;
  app.use(observeMiddleware(listener, rules, ops));
  if (ops) app.use(authMiddleware(ops.auth, rules));
  if (listener === "gateway" && ops) {
    app.use(
      backpressureMiddleware({
        redis: deps.store.redis,
        keys: deps.store.keys,
        backlog: ops.backlog,
        rateLimit: ops.rateLimit,
        retryAfterSeconds: ops.retryAfterSeconds,
        metrics: ops.metrics,
      }),
    );
  }
  healthRoutes(app, ops?.readiness ?? new Readiness(deps.store.redis));
}
