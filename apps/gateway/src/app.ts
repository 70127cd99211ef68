import { EssError } from "@ess/domain";
import { Hono } from "hono";
import type { AppEnv, GatewayDeps } from "./env.js";
import { handleError } from "./errors.js";
import { callbackRoutes } from "./routes/callback.js";
import { eventRoutes } from "./routes/events.js";
import { requestRoutes } from "./routes/requests.js";
import { schedulerRoutes } from "./routes/scheduler.js";

export { createAdminApp } from "./admin.js";
export type { AppEnv, GatewayDeps, SchedulerSettings } from "./env.js";
export { CANCEL_HEADER } from "./routes/callback.js";

/** Builds the gateway's Hono app. Pure: no ports, no config reading; main.ts wires it. */
export function createApp(deps: GatewayDeps) {
  const app = new Hono<AppEnv>();
  app.use(async (c, next) => {
    c.set("deps", deps);
    await next();
  });
  app.route("/", callbackRoutes);
  app.route("/", requestRoutes);
  app.route("/", schedulerRoutes);
  app.route("/", eventRoutes);
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.notFound((c) => handleError(new EssError("ROUTE_NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`), c));
  app.onError(handleError);
  return app;
}
