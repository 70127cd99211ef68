import "@ess/testing/provided";
import { hashPassword } from "@ess/secrets";
import { eventually, type RunningProcess, startApp } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// auth, metrics, health, logs, backpressure, through real gateway and worker processes
const PASSWORD = "sched-pass-Xy7";
const TOKENS = { job: "e2e-job-token-93f1", admin: "e2e-admin-token-5c2a" };
const basic = `Basic ${Buffer.from(`sched:${PASSWORD}`).toString("base64")}`;
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

let gateway: RunningProcess;
let worker: RunningProcess;
let env: Record<string, string>;

beforeAll(async () => {
  env = {
    REDIS_URL: inject("redisUrl"),
    KEY_PREFIX: uniquePrefix(),
    PARTITIONS: "2",
    ALLOW_ANONYMOUS: "false",
    AUTH_USERS: `sched:scheduler:${await hashPassword(PASSWORD)}`,
    AUTH_TOKENS: `fleet:job:${TOKENS.job},ops:admin:${TOKENS.admin}`,
  };
  [gateway, worker] = await Promise.all([startApp("gateway", env), startApp("worker", env)]);
});

afterAll(async () => {
  const codes = await Promise.all([gateway?.stop(), worker?.stop()]);
  expect(codes).toEqual([0, 0]);
});

async function register(id: string): Promise<string> {
  const res = await fetch(`${gateway.url}/gateway/v1/requests/${id}/executions`, {
    method: "POST",
    headers: { authorization: basic },
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { requestHandle: string }).requestHandle;
}

function callback(id: string, handle: string, status: string, headers: Record<string, string> = bearer(TOKENS.job)) {
  return fetch(`${gateway.url}/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ requestHandle: handle, status }),
  });
}

async function state(id: string): Promise<string> {
  const res = await fetch(`${gateway.url}/ess/rest/scheduler/v1/requests/${id}`, { headers: { authorization: basic } });
  return ((await res.json()) as { state: string }).state;
}

describe("starting", () => {
  it("refuses to start with no credentials unless ALLOW_ANONYMOUS=true", async () => {
    const bare = { REDIS_URL: inject("redisUrl"), KEY_PREFIX: uniquePrefix(), ALLOW_ANONYMOUS: "false" };
    await expect(startApp("gateway", bare)).rejects.toThrow(/exited early \(2\)[\s\S]*no credentials configured/);
    const anon = await startApp("gateway", { ...bare, ALLOW_ANONYMOUS: "true" });
    try {
      expect(anon.output()).toMatch(/"level":40.*ALLOW_ANONYMOUS=true/);
      const res = await fetch(`${anon.url}/ess/rest/scheduler/v1/requests/1`);
      expect(res.status).toBe(404);
    } finally {
      expect(await anon.stop()).toBe(0);
    }
  });
});

describe("a flow with credentials, metrics and logs", () => {
  it("authenticates, applies, counts and logs a callback", async () => {
    const id = "7100001";
    expect((await callback(id, "x", "UPDATE", {})).status).toBe(401);
    const handle = await register(id);
    expect((await callback(id, handle, "UPDATE", { authorization: basic })).status).toBe(403);
    const ok = await callback(id, handle, "SUCCESS", { ...bearer(TOKENS.job), "x-request-id": "e2e-trace-42" });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-request-id")).toBe("e2e-trace-42");
    await eventually(async () => (await state(id)) === "SUCCEEDED", 20000, "SUCCEEDED");

    // the worker's own metrics listener
    const w = await eventually(async () => {
      const text = await (await fetch(`${worker.metricsUrl}/metrics`)).text();
      return /ess_worker_callbacks_total\{result="applied"\} [1-9]/.test(text) && text;
    });
    expect(w).toMatch(/ess_callback_lag_seconds_count [1-9]/);
    expect(w).toContain("ess_worker_process_cpu_seconds_total");
    expect(w).toContain("ess_worker_job_stalls_total");
    expect((await fetch(`${worker.metricsUrl}/healthz`)).status).toBe(200);

    // the gateway's admin listener: admin only, queue gauges read from Redis
    expect((await fetch(`${gateway.adminUrl}/metrics`)).status).toBe(401);
    expect((await fetch(`${gateway.adminUrl}/metrics`, { headers: { authorization: basic } })).status).toBe(403);
    const g = await (await fetch(`${gateway.adminUrl}/metrics`, { headers: bearer(TOKENS.admin) })).text();
    expect(g).toContain('ess_callbacks_total{status="SUCCESS",code="200"} 1');
    // refused by role before the body is read: its status is not known
    expect(g).toContain('ess_callbacks_total{status="unknown",code="403"} 1');
    expect(g).toContain('ess_callbacks_total{status="unknown",code="401"} 1');
    expect(g).toMatch(/ess_admit_duration_seconds_count 1\b/);
    expect(g).toMatch(/ess_enqueue_duration_seconds_count 1\b/);
    expect(g).toContain('ess_queue_oldest_waiting_age_seconds{queue="p1"}');
    expect(g).toContain('ess_queue_jobs{queue="p0",state="wait"}');
    expect(g).toContain("ess_gateway_process_cpu_seconds_total");
    expect(g).not.toContain(id);

    // logs: one line per request with the request id; one per job with request id and seq; no secrets
    const line = gateway
      .output()
      .split("\n")
      .find((l) => l.includes('"requestId":"e2e-trace-42"'));
    expect(JSON.parse(line ?? "{}")).toMatchObject({
      msg: "request",
      method: "POST",
      path: `/ess/rest/scheduler/v1/requests/${id}/executionStatus`,
      status: 200,
      principal: "fleet",
    });
    expect(JSON.parse(line ?? "{}").durationMs).toEqual(expect.any(Number));
    const jobLine = await eventually(async () =>
      worker
        .output()
        .split("\n")
        .find((l) => l.includes('"job processed"') && l.includes(`"requestId":"${id}"`)),
    );
    expect(JSON.parse(jobLine)).toMatchObject({ requestId: id, seq: 1, result: "applied", status: "SUCCESS" });
    for (const out of [gateway.output(), worker.output()]) {
      for (const secret of [handle, PASSWORD, TOKENS.job, TOKENS.admin]) expect(out).not.toContain(secret);
    }
  });

  it("answers health on both listeners without credentials", async () => {
    for (const base of [gateway.url, gateway.adminUrl]) {
      expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: "ok" });
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ status: "ready" });
    }
  });

  it("serves the OpenAPI description and the docs page; each documented path is routed", async () => {
    const doc = (await (await fetch(`${gateway.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const method of Object.keys(methods)) {
        const res = await fetch(`${gateway.url}${path.replace("{requestId}", "1")}`, {
          method: method.toUpperCase(),
          headers: bearer(TOKENS.admin),
        });
        if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
          // an event stream does not end: its 200 shows the route is there; stop reading
          expect(res.status, `${method} ${path}`).toBe(200);
          await res.body?.cancel();
          continue;
        }
        const body = await res.text();
        expect(body, `${method} ${path}`).not.toContain("ESS-40402");
      }
    }
    const page = await fetch(`${gateway.url}/docs`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("swagger-ui-bundle.js");
  });
});

describe("backlog backpressure across processes", () => {
  it("answers 503 + Retry-After past BACKLOG_LIMIT and recovers once a worker drains the queue", async () => {
    const own = {
      REDIS_URL: inject("redisUrl"),
      KEY_PREFIX: uniquePrefix(),
      PARTITIONS: "1",
      ALLOW_ANONYMOUS: "true",
      BACKLOG_LIMIT: "3",
      BACKLOG_CHECK_MS: "100",
      RETRY_AFTER_SECONDS: "4",
    };
    const gw = await startApp("gateway", own);
    let wk: RunningProcess | undefined;
    try {
      const reg = await fetch(`${gw.url}/gateway/v1/requests/42/executions`, { method: "POST" });
      const { requestHandle } = (await reg.json()) as { requestHandle: string };
      const send = () =>
        fetch(`${gw.url}/ess/rest/scheduler/v1/requests/42/executionStatus`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ requestHandle, status: "UPDATE" }),
        });
      // no worker yet: the backlog grows until the gateway refuses
      const refused = await eventually(async () => {
        const res = await send();
        return res.status === 503 && res;
      }, 30000);
      expect(refused.headers.get("retry-after")).toBe("4");
      expect(await refused.json()).toMatchObject({ errorCode: "ESS-50302" });
      wk = await startApp("worker", own);
      await eventually(async () => (await send()).status === 200, 30000, "callbacks accepted again");
    } finally {
      await wk?.stop();
      await gw.stop();
    }
  });
});
