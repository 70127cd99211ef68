import { createRedis, RequestStore, waitReady } from "@ess/store";
import { newRequestId } from "@ess/testing/context";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acceptMetrics } from "./accept-metrics.js";
import { createAdminApp } from "./admin.js";
import { createApp } from "./app.js";
import { Authenticator } from "./auth/authenticator.js";
import { BacklogMonitor } from "./backlog.js";
import type { GatewayDeps, OperationsDeps } from "./context.js";
import { GatewayMetrics, QueueCatalog } from "./metrics.js";
import { Readiness } from "./ops/readiness.js";
import { RateLimiter } from "./rate-limit.js";
import { serveOnLoopback, useGatewayTestContext } from "./test-context.js";

const ctx = await useGatewayTestContext({ partitions: 2 });
const TOKENS = { job: "job-token-1", scheduler: "sched-token-1", admin: "admin-token-1" };
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

interface Built {
  app: ReturnType<typeof createApp>;
  admin: ReturnType<typeof createAdminApp>;
  lines: Record<string, unknown>[];
  metrics: GatewayMetrics;
  ops: OperationsDeps;
}

async function build(extra: Partial<OperationsDeps> = {}, store = ctx.store): Promise<Built> {
  const auth = await Authenticator.fromConfig({
    AUTH_USERS: "",
    AUTH_TOKENS: `fleet:job:${TOKENS.job},sched:scheduler:${TOKENS.scheduler},ops:admin:${TOKENS.admin}`,
    ALLOW_ANONYMOUS: false,
  });
  const lines: Record<string, unknown>[] = [];
  const accessLog = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  const ops: OperationsDeps = {
    auth,
    metrics,
    catalog: QueueCatalog.ofPartitions(ctx.queues),
    accessLog,
    readiness: new Readiness(store.redis),
    retryAfterSeconds: 7,
    ...extra,
  };
  const deps: GatewayDeps = { ...ctx.deps, store, ops, observe: acceptMetrics(metrics) };
  return { app: createApp(deps), admin: createAdminApp(deps), lines, metrics, ops };
}

async function register(app: Built["app"], id: string, token = TOKENS.scheduler) {
  return app.request(`/gateway/v1/requests/${id}/executions`, { method: "POST", headers: bearer(token) });
}

async function callback(app: Built["app"], id: string, handle: string, status = "UPDATE", token = TOKENS.job) {
  return app.request(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(token) },
    body: JSON.stringify({ requestHandle: handle, status }),
  });
}

/** A fresh request id in partition p. */
function idIn(p: number): string {
  for (;;) {
    const id = newRequestId();
    if (ctx.keys.partition(id) === p) return id;
  }
}

beforeAll(async () => {
  await waitReady(ctx.redis);
});

describe("authentication and roles", () => {
  it("answers 401 with WWW-Authenticate and a SimpleExceptionDetail without valid credentials", async () => {
    const { app } = await build();
    for (const headers of [{}, bearer("wrong"), { authorization: "Basic Zm9vOmJhcg==" }]) {
      const res = await app.request("/ess/rest/scheduler/v1/requests/1", { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/Basic realm=.*Bearer realm=/);
      const body = await res.json();
      expect(body).toMatchObject({ status: 401, errorCode: "ESS-40101", title: "Authentication required" });
    }
  });

  it("lets each role do its operations and answers 403 for the others", async () => {
    const { app } = await build();
    const id = newRequestId();
    const denied = await register(app, id, TOKENS.job);
    expect(denied.status).toBe(403);
    expect(await denied.json()).toMatchObject({ status: 403, errorCode: "ESS-40303" });
    const reg = await register(app, id, TOKENS.scheduler);
    expect(reg.status).toBe(201);
    const { requestHandle } = (await reg.json()) as { requestHandle: string };
    expect((await callback(app, id, requestHandle, "UPDATE", TOKENS.scheduler)).status).toBe(403);
    expect((await callback(app, id, requestHandle, "UPDATE", TOKENS.job)).status).toBe(200);
    expect((await callback(app, id, requestHandle, "UPDATE", TOKENS.admin)).status).toBe(200);
    const read = (t: string) => app.request(`/ess/rest/scheduler/v1/requests/${id}`, { headers: bearer(t) });
    expect((await read(TOKENS.job)).status).toBe(403);
    expect((await read(TOKENS.scheduler)).status).toBe(200);
  });

  it("keeps probes and docs public and the admin listener admin-only", async () => {
    const { app, admin } = await build();
    for (const p of ["/healthz", "/readyz", "/openapi.json", "/docs"]) expect((await app.request(p)).status).toBe(200);
    for (const p of ["/healthz", "/readyz"]) expect((await admin.request(p)).status).toBe(200);
    expect((await admin.request("/metrics")).status).toBe(401);
    expect((await admin.request("/metrics", { headers: bearer(TOKENS.scheduler) })).status).toBe(403);
    expect((await admin.request("/admin/queues", { headers: bearer(TOKENS.job) })).status).toBe(403);
    expect((await admin.request("/metrics", { headers: bearer(TOKENS.admin) })).status).toBe(200);
  });
});

describe("request ids and access logs", () => {
  it("returns the caller's X-Request-Id or a generated one, and logs one line per request without secrets", async () => {
    const { app, lines } = await build();
    const id = newRequestId();
    const reg = await app.request(`/gateway/v1/requests/${id}/executions`, {
      method: "POST",
      headers: { ...bearer(TOKENS.scheduler), "x-request-id": "trace-abc-1" },
    });
    expect(reg.headers.get("x-request-id")).toBe("trace-abc-1");
    const { requestHandle } = (await reg.json()) as { requestHandle: string };
    const cb = await callback(app, id, requestHandle);
    expect(cb.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const unauth = await app.request("/ess/rest/scheduler/v1/requests/1", { headers: { "x-request-id": "bad id!" } });
    expect(unauth.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);

    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({
      msg: "request",
      requestId: "trace-abc-1",
      method: "POST",
      path: `/gateway/v1/requests/${id}/executions`,
      status: 201,
      operation: "register",
      principal: "sched",
    });
    expect(typeof lines[0]?.durationMs).toBe("number");
    expect(lines[1]).toMatchObject({
      requestId: cb.headers.get("x-request-id"),
      status: 200,
      operation: "executionStatus",
    });
    expect(lines[2]).toMatchObject({ status: 401 });
    const text = JSON.stringify(lines);
    expect(text).not.toContain(requestHandle);
    expect(text).not.toContain(TOKENS.job);
    expect(text).not.toContain(TOKENS.scheduler);
  });
});

describe("request ids over a real socket", () => {
  it("sends X-Request-Id with every kind of answer, next to the answer's own headers", async () => {
    const { app } = await build();
    const { server, port } = await serveOnLoopback(app, () => {});
    try {
      const url = (path: string) => `http://127.0.0.1:${port}${path}`;
      const id = newRequestId();
      const reg = await fetch(url(`/gateway/v1/requests/${id}/executions`), {
        method: "POST",
        headers: { ...bearer(TOKENS.scheduler), "x-request-id": "trace-sock-1" },
      });
      expect(reg.status).toBe(201);
      expect(reg.headers.get("x-request-id")).toBe("trace-sock-1");
      expect(reg.headers.get("location")).toContain(id);
      const { requestHandle } = (await reg.json()) as { requestHandle: string };
      const cb = await fetch(url(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`), {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer(TOKENS.job) },
        body: JSON.stringify({ requestHandle, status: "UPDATE" }),
      });
      expect(cb.status).toBe(200);
      expect(cb.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
      // a refusal: its problem body and challenge, and the id once
      const unauth = await fetch(url("/ess/rest/scheduler/v1/requests/1"), {
        headers: { "x-request-id": "trace-sock-2" },
      });
      expect(unauth.status).toBe(401);
      expect(unauth.headers.get("x-request-id")).toBe("trace-sock-2");
      expect(unauth.headers.get("www-authenticate")).toContain("Bearer");
      expect(unauth.headers.get("content-type")).toBe("application/json");
      expect(((await unauth.json()) as { status: number }).status).toBe(401);
      const wrong = await fetch(url("/ess/rest/scheduler/v1/requests/1/subscribe"), {
        method: "PUT",
        headers: bearer(TOKENS.admin),
      });
      expect(wrong.status).toBe(405);
      expect(wrong.headers.get("allow")).toBe("POST, DELETE");
      expect(wrong.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
      const health = await fetch(url("/healthz"));
      expect(await health.json()).toEqual({ status: "ok" });
      expect(health.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("metrics", () => {
  it("counts callbacks by status and code, times admit and enqueue, and reads queue gauges at scrape", async () => {
    const built = await build();
    const { app, admin } = built;
    const id = idIn(1);
    const { requestHandle } = (await (await register(app, id)).json()) as { requestHandle: string };
    expect((await callback(app, id, requestHandle, "UPDATE")).status).toBe(200);
    expect((await callback(app, id, requestHandle, "SUCCESS")).status).toBe(200);
    expect((await callback(app, id, "not-the-handle", "SUCCESS")).status).toBe(403);
    await app.request(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(TOKENS.job) },
      body: "{",
    });
    await new Promise((r) => setTimeout(r, 20)); // the oldest waiting job gets an age
    const res = await admin.request("/metrics", { headers: bearer(TOKENS.admin) });
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toContain('ess_callbacks_total{status="UPDATE",code="200"} 1');
    expect(text).toContain('ess_callbacks_total{status="SUCCESS",code="200"} 1');
    expect(text).toContain('ess_callbacks_total{status="SUCCESS",code="403"} 1');
    expect(text).toContain('ess_callbacks_total{status="unknown",code="400"} 1');
    expect(text).toMatch(/ess_admit_duration_seconds_count 3\b/);
    expect(text).toMatch(/ess_enqueue_duration_seconds_count 2\b/);
    // one after the other, each callback is an admit batch of its own
    expect(text).toMatch(/ess_admit_batch_callbacks_count 3\b/);
    expect(text).toMatch(/ess_admit_batch_callbacks_sum 3\b/);
    expect(text).toContain('ess_http_requests_total{listener="gateway",operation="register",code="201"} 1');
    // no worker runs in this file: the callbacks (these two and earlier tests') wait in partition 1's queue
    const waiting = Number(/ess_queue_jobs\{queue="p1",state="wait"\} (\d+)/.exec(text)?.[1]);
    expect(waiting).toBe(await ctx.queues.queue(1).getWaitingCount());
    expect(waiting).toBeGreaterThanOrEqual(2);
    const age = /ess_queue_oldest_waiting_age_seconds\{queue="p1"\} ([0-9.e-]+)/.exec(text);
    expect(Number(age?.[1])).toBeGreaterThan(0);
    expect(text).toContain('ess_queue_oldest_waiting_age_seconds{queue="p0"}');
    expect(text).toMatch(/ess_dead_letter_jobs \d+/);
    // bounded labels: no request id anywhere
    expect(text).not.toContain(id);
  });
});

describe("readiness", () => {
  it("is ready with Redis and scripts, and not ready once shutting down", async () => {
    const { app, admin, ops } = await build();
    const ok = await app.request("/readyz");
    expect(await ok.json()).toEqual({ status: "ready", checks: { redis: "ok", scripts: "ok" } });
    (ops.readiness as Readiness).stopping = true;
    for (const a of [app, admin]) {
      const res = await a.request("/readyz");
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: "not ready" });
    }
    expect((await app.request("/healthz")).status).toBe(200);
  });

  it("loads the scripts into a Redis that has lost them", async () => {
    const { app } = await build();
    await ctx.redis.script("FLUSH");
    expect((await app.request("/readyz")).status).toBe(200);
    const exists = (await ctx.redis.script("EXISTS", "0000000000000000000000000000000000000000")) as number[];
    expect(exists).toEqual([0]);
  });
});

describe("backpressure", () => {
  it("answers 503 + Retry-After for callbacks of a partition whose backlog passed the limit", async () => {
    const backlog = new BacklogMonitor(ctx.redis, ctx.keys, 2, 60000);
    const { app, metrics } = await build({ backlog });
    const a = idIn(0);
    const b = idIn(1);
    const ha = ((await (await register(app, a)).json()) as { requestHandle: string }).requestHandle;
    const hb = ((await (await register(app, b)).json()) as { requestHandle: string }).requestHandle;
    await backlog.refresh();
    const before = backlog.backlog(0);
    for (let i = 0; i <= 2 - before; i++) expect((await callback(app, a, ha)).status).toBe(200);
    // the cached count is only refreshed by the monitor, never per request
    expect((await callback(app, a, ha)).status).toBe(200);
    await backlog.refresh();
    expect(backlog.backlog(0)).toBeGreaterThan(2);
    const res = await callback(app, a, ha);
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("7");
    expect(await res.json()).toMatchObject({ status: 503, errorCode: "ESS-50302" });
    // registration and reads are not callbacks: still served; the other partition too
    expect(
      (await app.request(`/ess/rest/scheduler/v1/requests/${a}`, { headers: bearer(TOKENS.scheduler) })).status,
    ).toBe(200);
    if (!backlog.over(1)) expect((await callback(app, b, hb)).status).toBe(200);
    expect(await metrics.registry.getSingleMetricAsString("ess_backpressure_rejections_total")).toContain(
      'reason="backlog"} 1',
    );
  });

  it("answers 429 + Retry-After past a credential's rate", async () => {
    const { app } = await build({ rateLimit: new RateLimiter(1, 2) });
    const get = (t: string) => app.request("/ess/rest/scheduler/v1/requests/1", { headers: bearer(t) });
    expect((await get(TOKENS.scheduler)).status).toBe(404);
    expect((await get(TOKENS.scheduler)).status).toBe(404);
    const limited = await get(TOKENS.scheduler);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("7");
    expect(await limited.json()).toMatchObject({ status: 429, errorCode: "ESS-42901" });
    // another credential has its own bucket
    expect((await get(TOKENS.admin)).status).toBe(404);
  });

  const dead = createRedis("redis://127.0.0.1:1", "gateway", { commandTimeoutMs: 200 });
  dead.on("error", () => {});
  afterAll(() => dead.disconnect());

  it("answers 503 + Retry-After at once while Redis is not connected", async () => {
    const store = new RequestStore(dead, ctx.keys);
    const { app } = await build({}, store);
    const res = await app.request("/ess/rest/scheduler/v1/requests/5/executionStatus", {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(TOKENS.job) },
      body: JSON.stringify({ requestHandle: "h", status: "UPDATE" }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("7");
    expect(await res.json()).toMatchObject({ errorCode: "ESS-50301" });
    expect((await app.request("/readyz")).status).toBe(503);
    expect((await app.request("/healthz")).status).toBe(200);
  });
});

describe("dashboard", () => {
  it("serves bull-board at /admin/queues with every partition queue", async () => {
    const { admin } = await build();
    const page = await admin.request("/admin/queues", { headers: bearer(TOKENS.admin) });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<html");
    const api = await admin.request("/admin/queues/api/queues", { headers: bearer(TOKENS.admin) });
    const body = (await api.json()) as { queues: { name: string; displayName: string }[] };
    expect(body.queues.map((q) => q.displayName).sort()).toEqual([
      "dead letters 0",
      "dead letters 1",
      "operations",
      "partition 0",
      "partition 1",
      "webhooks 0",
      "webhooks 1",
    ]);
  });
});
