import type { Hono } from "hono";
import type { AppEnv } from "../context.js";
import type { Readiness } from "./readiness.js";

/** GET /healthz (alive) and GET /readyz (ready for traffic) on a listener. */
export function healthRoutes(app: Hono<AppEnv>, readiness: Readiness | undefined): void {
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    if (!readiness) return c.json({ status: "ready", checks: {} });
    const r = await readiness.check();
    return c.json({ status: r.ready ? "ready" : "not ready", checks: r.checks }, r.ready ? 200 : 503);
  });
}
