import { EssError, parseRequestId } from "@ess/domain";
import type { Keys } from "@ess/store";
import type { MiddlewareHandler } from "hono";
import type { Redis } from "ioredis";
import type { BacklogMonitor } from "./backlog.js";
import type { AppEnv } from "./context.js";
import type { GatewayMetrics } from "./metrics.js";
import type { RateLimiter } from "./rate-limit.js";

/** What the backpressure middleware consults; all in memory. */
export interface BackpressureDeps {
  redis: Redis;
  keys: Keys;
  backlog?: BacklogMonitor | undefined;
  rateLimit?: RateLimiter | undefined;
  retryAfterSeconds: number;
  metrics?: GatewayMetrics | undefined;
}

const NO_REDIS = new Set(["healthz", "readyz", "openapi", "docs"]);
const CALLBACK = /\/requests\/([^/]+)\/executionStatus$/;

/**
 * Refuses work early, from memory only: 429 past the caller's rate, 503 while Redis is not
 * connected (instead of waiting for it), 503 for a callback whose partition's backlog is past the
 * limit. Runs after authentication (the rate limit is per credential); `who` is the principal's name.
 */
export function refuseEarly(
  d: BackpressureDeps,
  operation: string,
  who: string | undefined,
  method: string,
  path: string,
): void {
  if (NO_REDIS.has(operation)) return;
  const retryAfter = d.retryAfterSeconds;
  if (d.rateLimit) {
    const name = who ?? "anonymous";
    if (!d.rateLimit.take(name)) {
      d.metrics?.rejections.inc({ reason: "rate_limit" });
      throw new EssError("RATE_LIMITED", `more than ${d.rateLimit.perSecond} requests per second for '${name}'`, {
        retryAfter,
      });
    }
  }
  if (d.redis.status !== "ready") {
    d.metrics?.rejections.inc({ reason: "redis_unavailable" });
    throw new EssError("UNAVAILABLE", "the scheduling store is unreachable; retry later", { retryAfter });
  }
  if (d.backlog && operation === "executionStatus" && method === "POST") {
    const raw = CALLBACK.exec(path)?.[1];
    const id = raw === undefined ? null : parseRequestId(raw);
    if (id !== null && d.backlog.over(d.keys.partition(id))) {
      d.metrics?.rejections.inc({ reason: "backlog" });
      throw new EssError("OVERLOADED", "too many callbacks are waiting to be applied; retry later", { retryAfter });
    }
  }
}

/** refuseEarly as middleware. */
export function backpressureMiddleware(d: BackpressureDeps): MiddlewareHandler<AppEnv> {
  // not an async function: a refusal throws, and the request otherwise goes on without a promise of its own
  return (c, next) => {
    refuseEarly(d, c.get("operation") ?? "other", c.get("principal")?.name, c.req.method, c.req.path);
    return next();
  };
}
