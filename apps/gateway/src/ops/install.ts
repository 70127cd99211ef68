import type { Hono } from "hono";
import type { AccessRule } from "../auth/access-rules.js";
import { authMiddleware } from "../auth/middleware.js";
import { backpressureMiddleware } from "../backpressure.js";
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
