import { EssError } from "@ess/domain";
import { Hono } from "hono";
import type { AppEnv, GatewayDeps } from "./env.js";
import { handleError } from "./errors.js";
import { deadLetterRoutes } from "./routes/dead-letters.js";

/**
 * The admin listener (ADMIN_PORT): operations the job fleet must not reach — dead letters, metrics,
 * the queue dashboard — kept off the callback port so they can be firewalled separately.
 */
export function createAdminApp(deps: GatewayDeps) {
  const app = new Hono<AppEnv>();
  app.use(async (c, next) => {
    c.set("deps", deps);
    await next();
  });
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.route("/", deadLetterRoutes);
  app.notFound((c) => handleError(new EssError("ROUTE_NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`), c));
  app.onError(handleError);
  return app;
}
