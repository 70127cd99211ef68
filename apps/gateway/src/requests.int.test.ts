import { simpleExceptionDetailSchema } from "@ess/contract";
import { createRedis } from "@ess/store";
import { newRequestId } from "@ess/testing/context";
import { afterAll, describe, expect, it } from "vitest";
import { createApp } from "./app.js";
import { useGatewayTestContext } from "./test-context.js";

const ctx = await useGatewayTestContext();

function register(id: string, body?: unknown) {
  return ctx.app.request(`/gateway/v1/requests/${id}/executions`, {
    method: "POST",
    ...(body === undefined
      ? {}
      : {
          headers: { "content-type": "application/json" },
          body: typeof body === "string" ? body : JSON.stringify(body),
        }),
  });
}

async function problem(res: Response, status: number, errorCode: string) {
  expect(res.status).toBe(status);
  const body = simpleExceptionDetailSchema.parse(await res.json());
  expect(body.errorCode).toBe(errorCode);
  return body;
}

describe("POST /gateway/v1/requests/{id}/executions", () => {
  it("creates a RUNNING request with a fresh URL-safe handle of at least 128 bits", async () => {
    const id = newRequestId();
    const res = await register(id);
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ requestId: Number(id), state: "RUNNING", execution: 1 });
    expect(body.requestHandle).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    expect(res.headers.get("location")).toMatch(new RegExp(`/ess/rest/scheduler/v1/requests/${id}$`));
  });

  it("takes a handle, maxRetries and requestTimeout from the body", async () => {
    const id = newRequestId();
    const res = await register(id, { requestHandle: "my-handle-1", maxRetries: 2, requestTimeout: 5 });
    expect(await res.json()).toMatchObject({ requestHandle: "my-handle-1" });
    const details = (await (await ctx.app.request(`/ess/rest/scheduler/v1/requests/${id}`)).json()) as Record<
      string,
      unknown
    >;
    expect(details).toMatchObject({ maxRetries: 2, requestTimeout: 5 });
  });

  it("re-arms a non-terminal request: new handle, execution+1, the old handle refused", async () => {
    const id = newRequestId();
    const first = (await (await register(id)).json()) as { requestHandle: string };
    const second = (await (await register(id)).json()) as { requestHandle: string; execution: number };
    expect(second.execution).toBe(2);
    expect(second.requestHandle).not.toBe(first.requestHandle);
    const res = await ctx.app.request(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ requestHandle: first.requestHandle, status: "SUCCESS" }),
    });
    expect(res.status).toBe(403);
  });

  it("409 for a terminal request", async () => {
    const id = newRequestId();
    await register(id);
    await ctx.redis.hset(ctx.keys.request(ctx.keys.partition(id), id), "state", "SUCCEEDED");
    const body = await problem(await register(id), 409, "ESS-40901");
    expect(body.detail).toMatch(/SUCCEEDED/);
  });

  it("resumes a PAUSED request with its saved pausedState", async () => {
    const id = newRequestId();
    await register(id);
    await ctx.redis.hset(ctx.keys.request(ctx.keys.partition(id), id), "state", "PAUSED", "pausedState", "step=3");
    const res = await register(id, { resumed: true });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ execution: 2, pausedState: "step=3", state: "RUNNING" });
  });

  it("400 for resumed=true on a request that is not PAUSED", async () => {
    const id = newRequestId();
    await register(id);
    const body = await problem(await register(id, { resumed: true }), 400, "ESS-40005");
    expect(body.title).toBe("Unsupported state for operation");
  });

  it.each([
    [{ maxRetries: -1 }, "ESS-40003", /maxRetries/],
    [{ maxRetries: 1.5 }, "ESS-40003", /maxRetries/],
    [{ requestTimeout: "5" }, "ESS-40003", /requestTimeout/],
    [{ requestHandle: "has space" }, "ESS-40003", /requestHandle/],
    [{ resumed: "yes" }, "ESS-40003", /resumed/],
    [{ handle: "x" }, "ESS-40004", /'handle'/],
    ["{nope", "ESS-40002", /JSON/],
  ])("400 for %j", async (body, code, detail) => {
    const res = await problem(await register(newRequestId(), body), 400, code);
    expect(res.detail).toMatch(detail);
  });

  it("400 for a bad id", async () => {
    await problem(await register("0x1f"), 400, "ESS-40001");
  });
});

describe("GET /ess/rest/scheduler/v1/requests/{id}", () => {
  it("answers ESS field names, the history, and never the handle", async () => {
    const id = newRequestId();
    const { requestHandle } = (await (await register(id, { maxRetries: 1 })).json()) as { requestHandle: string };
    const res = await ctx.app.request(`/ess/rest/scheduler/v1/requests/${id}`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(requestHandle);
    const body = JSON.parse(text) as Record<string, unknown>;
    expect(body).toMatchObject({
      requestId: Number(id),
      state: "RUNNING",
      isAsynchronous: true,
      retriedCount: 0,
      isTimedOut: false,
      isCancellable: true,
      isForceCancelAllowed: false,
      errorType: null,
      processEndTime: null,
    });
    for (const k of [
      "stateDescription",
      "cause",
      "errorWarningMessage",
      "errorWarningTime",
      "processStartTime",
      "completedTime",
      "elapsedTime",
      "links",
      "pausedState",
      "lastCheckInTime",
      "history",
    ]) {
      expect(body, k).toHaveProperty(k);
    }
    expect(body.processStartTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect((body.links as { rel: string }[]).map((l) => l.rel)).toEqual(["self", "cancel", "executionStatus"]);
    expect(body.history).toEqual([expect.objectContaining({ outcome: "registered", to: "RUNNING", execution: 1 })]);
  });

  it("writes requestId as an exact JSON integer past 2^53", async () => {
    const id = "9223372036854775807";
    expect((await register(id)).status).toBe(201);
    const text = await (await ctx.app.request(`/ess/rest/scheduler/v1/requests/${id}`)).text();
    expect(text.startsWith(`{"requestId":9223372036854775807,`)).toBe(true);
    const reg = await (await register("9007199254740993")).text();
    expect(reg).toContain('"requestId":9007199254740993,');
  });

  it("404 for an unknown request, 400 for a bad id", async () => {
    await problem(await ctx.app.request("/ess/rest/scheduler/v1/requests/88888888"), 404, "ESS-40401");
    await problem(await ctx.app.request("/ess/rest/scheduler/v1/requests/abc"), 400, "ESS-40001");
  });
});

describe("Redis unreachable", () => {
  const down = createRedis("redis://127.0.0.1:1", "gateway", { commandTimeoutMs: 200 });
  down.on("error", () => {});
  afterAll(() => {
    down.disconnect();
  });

  it("answers 503 with Retry-After at once instead of hanging", async () => {
    const { RequestStore, CallbackQueues } = await import("@ess/store");
    const queues = new CallbackQueues(down, ctx.keys, { attempts: 1, backoffMs: 1 });
    const app = createApp({
      store: new RequestStore(down, ctx.keys),
      queues,
      deadLetters: ctx.deadLetters,
      replayRate: 1,
      maxBodyBytes: 1000,
      enqueueTimeoutMs: 200,
      logError: () => {},
    });
    const res = await app.request("/ess/rest/scheduler/v1/requests/5/executionStatus", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ requestHandle: "h", status: "SUCCESS" }),
    });
    await problem(res, 503, "ESS-50301");
    expect(res.headers.get("retry-after")).toBe("1");
  });
});
