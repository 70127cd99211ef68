import { API_ROUTES } from "@ess/contract";
import { EssError } from "@ess/domain";
import { OpenAPIHono } from "@hono/zod-openapi";
import { ACCESS_RULES } from "./auth/access-rules.js";
import type { AppEnv, GatewayDeps } from "./context.js";
import { docsRoutes } from "./docs.js";
import { handleError } from "./errors.js";
import { installOperations } from "./ops/install.js";
import { bindRoutes, validationHook } from "./routes/bind.js";
import { callbackHandlers } from "./routes/callback.js";
import { eventHandlers } from "./routes/events.js";
import { requestHandlers } from "./routes/requests.js";
import { schedulerHandlers } from "./routes/scheduler.js";
import { subscriptionHandlers } from "./routes/subscriptions.js";

export { createAdminApp } from "./admin.js";
export type { AppEnv, GatewayDeps, SchedulerSettings } from "./context.js";
export { CANCEL_HEADER } from "./routes/callback.js";

/**
 * Builds the gateway's Hono app. Pure: no ports, no config reading; main.ts wires it. The API's
 * routes are bound from their declarations (API_ROUTES), as are the access rules and the document.
 */
export function createApp(deps: GatewayDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  // deps on the context, request id, access log, metrics, auth and roles, backpressure, /healthz and /readyz
  installOperations(app, deps, "gateway", ACCESS_RULES);
  docsRoutes(app);
  bindRoutes(
    app,
    API_ROUTES,
    { ...callbackHandlers, ...requestHandlers, ...schedulerHandlers, ...eventHandlers, ...subscriptionHandlers },
    // the callback hot path skips @hono/zod-openapi's validator middleware (measured: about 4-5 µs of
    // CPU per call in-process); the binder checks its params from the same declaration
    { methodNotAllowed: true, plain: ["postExecutionStatus"] },
  );
  app.notFound((c) => handleError(new EssError("ROUTE_NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`), c));
  app.onError(handleError);
  return app;
}
