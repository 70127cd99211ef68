import type { Hono } from "hono";
import type { AccessRule } from "../auth/access-rules.js";
import { authMiddleware } from "../auth/middleware.js";
import { type BackpressureDeps, backpressureMiddleware } from "../backpressure.js";
import type { AppEnv, GatewayDeps } from "../context.js";
import { healthRoutes } from "./health.js";
import { observeMiddleware } from "./observe.js";
import { Readiness } from "./readiness.js";

/**
 * Installs the operations layer on a listener, before its routes: the deps on the context, request
 * id + access log + metrics, authentication and roles, backpressure (callback listener only), health.
 */
export function installOperations(
  app: Hono<AppEnv>,
  deps: GatewayDeps,
  listener: "gateway" | "admin",
  rules: readonly AccessRule[],
): void {
  const ops = deps.ops;
  app.use(observeMiddleware(listener, rules, deps));
  if (ops) app.use(authMiddleware(ops.auth, rules));
  const backpressure = listener === "gateway" ? backpressureOf(deps) : undefined;
  if (backpressure) app.use(backpressureMiddleware(backpressure));
  healthRoutes(app, ops?.readiness ?? new Readiness(deps.store.redis));
}

/** What the callback listener's backpressure consults (none without an operations layer). */
export function backpressureOf(deps: GatewayDeps): BackpressureDeps | undefined {
  const ops = deps.ops;
  if (!ops) return undefined;
  return {
    redis: deps.store.redis,
    keys: deps.store.keys,
    backlog: ops.backlog,
    rateLimit: ops.rateLimit,
    retryAfterSeconds: ops.retryAfterSeconds,
    metrics: ops.metrics,
  };
}
