import { ADMIN_OPERATIONS_ROUTES } from "@ess/contract";
import { EssError } from "@ess/domain";
import { OpenAPIHono } from "@hono/zod-openapi";
import { ADMIN_ACCESS_RULES } from "./auth/access-rules.js";
import { mountConsole } from "./console/index.js";
import type { AppEnv, GatewayDeps } from "./context.js";
import { mountDashboard } from "./dashboard.js";
import { handleError } from "./errors.js";
import { installOperations } from "./ops/install.js";
import { bindRoutes, validationHook } from "./routes/bind.js";
import { DEAD_LETTER_ROUTES, deadLetterHandlers } from "./routes/dead-letters.js";
import { OPERATOR_ROUTES, operatorHandlers } from "./routes/operator.js";

/**
 * The admin listener (ADMIN_PORT): operations the job fleet must not reach — dead letters, metrics,
 * the queue dashboard — kept off the callback port so they can be firewalled separately.
 */
export function createAdminApp(deps: GatewayDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  // deps on the context, request id, access log, metrics, admin role for all but health, /healthz and /readyz
  installOperations(app, deps, "admin", ADMIN_ACCESS_RULES);
  const { metrics, catalog } = deps.ops ?? {};
  if (metrics) {
    app.get(ADMIN_OPERATIONS_ROUTES.metrics.path, async (c) => {
      if (catalog) {
        await metrics
          .refreshQueues(catalog, Date.now(), () => deps.deadLetters.count())
          .catch(() => metrics.scrapeErrors.inc());
      }
      return c.body(await metrics.registry.metrics(), 200, { "content-type": metrics.contentType });
    });
  }
  if (catalog) mountDashboard(app, catalog);
  mountConsole(app, deps);
  // dead-letter requests may list many ids: up to 8 × MAX_BODY_BYTES
  bindRoutes(app, DEAD_LETTER_ROUTES, deadLetterHandlers, { bodyLimit: (d) => d.maxBodyBytes * 8 });
  bindRoutes(app, OPERATOR_ROUTES, operatorHandlers);
  app.notFound((c) => handleError(new EssError("ROUTE_NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`), c));
  app.onError(handleError);
  return app;
}
