import { API_ROUTES, declareRoute, GATEWAY_ROUTES, type RouteDeclaration } from "@ess/contract";
import { waitReady } from "@ess/store";
import { OpenAPIHono } from "@hono/zod-openapi";
import { beforeAll, describe, expect, it } from "vitest";
import { createAdminApp } from "./admin.js";
import { createApp } from "./app.js";
import { Authenticator } from "./auth/authenticator.js";
import type { AppEnv } from "./context.js";
import { GatewayMetrics, QueueCatalog } from "./metrics.js";
import { ADMIN_ROUTES } from "./routes/admin-routes.js";
import { bindRoutes, validationHook } from "./routes/bind.js";
import { useGatewayTestContext } from "./test-context.js";

const ctx = await useGatewayTestContext({ partitions: 2 });
beforeAll(() => waitReady(ctx.redis));

/** The path of a declaration with its parameters filled in. */
const concrete = (r: RouteDeclaration) => r.path.replaceAll(/\{\w+\}/g, "1");

async function apps() {
  const ops = {
    auth: await Authenticator.fromConfig({ AUTH_USERS: "", AUTH_TOKENS: "", ALLOW_ANONYMOUS: true }),
    metrics: new GatewayMetrics({ defaultMetrics: false }),
    catalog: QueueCatalog.ofPartitions(ctx.queues),
    retryAfterSeconds: 1,
  };
  const deps = { ...ctx.deps, ops };
  return { gateway: createApp(deps), admin: createAdminApp(deps) };
}

describe("routes bound from their declarations", () => {
  it("every declared route of each listener is served (none falls through to 'no route')", async () => {
    const { gateway, admin } = await apps();
    for (const [app, routes] of [
      [gateway, GATEWAY_ROUTES],
      [admin, ADMIN_ROUTES],
    ] as const) {
      for (const r of routes) {
        const res = await app.request(concrete(r), { method: r.method.toUpperCase() });
        if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
          await res.body?.cancel();
          continue;
        }
        // answered by the route (any status), not by the fallback or the operations layer's 503
        expect(res.status, `${r.method} ${r.path}`).not.toBe(503);
        expect(await res.text(), `${r.method} ${r.path}`).not.toContain("no route for");
      }
    }
  });

  it("the callback listener's routes fit Hono's RegExp router (no fallback to the slower trie router)", async () => {
    const { gateway } = await apps();
    // the first match builds the router; SmartRouter keeps the first of its routers that takes every route
    expect((await gateway.request("/docs/init.js")).status).toBe(200);
    expect(gateway.router.name).toBe("SmartRouter + RegExpRouter");
  });

  it("answers the other methods of a declared path with 405 and the declared methods in Allow", async () => {
    const { gateway } = await apps();
    const res = await gateway.request("/ess/rest/scheduler/v1/requests/1/subscribe", { method: "PUT" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST, DELETE");
    for (const r of Object.values(API_ROUTES) as RouteDeclaration[]) {
      const other = r.method === "get" ? "PATCH" : "GET";
      const answer = await gateway.request(concrete(r), { method: other });
      expect(answer.status, r.operationId).toBe(405);
    }
  });

  it("answers a bad request id in a path or query exactly as before: 400 ESS-40001 naming the value", async () => {
    const { gateway } = await apps();
    const bad = [...(Object.values(API_ROUTES) as RouteDeclaration[])]
      .filter((r) => r.request?.params)
      .map((r) => ({ method: r.method.toUpperCase(), path: r.path.replace("{requestId}", "12x") }));
    bad.push({ method: "GET", path: "/gateway/v1/events?requestId=12x" });
    for (const { method, path } of bad) {
      const res = await gateway.request(path, { method, headers: { "content-type": "application/json" }, body: null });
      expect(res.status, `${method} ${path}`).toBe(400);
      expect(await res.json(), `${method} ${path}`).toEqual({
        type: "https://www.rfc-editor.org/rfc/rfc9110#section-15.5.1",
        title: "Invalid input",
        status: 400,
        detail: "requestId must be a positive integer of at most 9223372036854775807 (got '12x')",
        errorCode: "ESS-40001",
      });
    }
  });

  it("refuses to register a route without a declared role", () => {
    const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
    const ok = declareRoute({
      method: "get",
      path: "/x",
      operationId: "x",
      operation: "x",
      roles: ["admin"],
      summary: "x",
      responses: { 200: { description: "ok" } },
    });
    const { roles: _, ...roleless } = ok;
    expect(() =>
      bindRoutes(app, { x: roleless as unknown as RouteDeclaration }, { x: (c) => c.body(null, 204) }),
    ).toThrow(/GET \/x declares no roles/);
    expect(app.routes.some((r) => r.path === "/x")).toBe(false);
    bindRoutes(app, { x: ok }, { x: (c) => c.body(null, 204) });
    expect(app.routes.some((r) => r.path === "/x")).toBe(true);
  });
});
