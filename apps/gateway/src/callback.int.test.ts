import { simpleExceptionDetailSchema } from "@ess/contract";
import { newRequestId } from "@ess/testing/context";
import { beforeAll, describe, expect, it } from "vitest";
import { type Send, useGatewayTestContext, useTransports } from "./test-context.js";

const ctx = await useGatewayTestContext({ maxBodyBytes: 2048 });
const path = (id: string) => `/ess/rest/scheduler/v1/requests/${id}/executionStatus`;

async function register(id: string, body: Record<string, unknown> = {}) {
  const res = await ctx.app.request(`/gateway/v1/requests/${id}/executions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { requestHandle: string; execution: number };
}

// each callback test runs in-process and over HTTP (the callback route on node:http)
let send: Send = async () => {
  throw new Error("no transport");
};

function post(id: string, body: unknown, headers: Record<string, string> = {}) {
  return send(path(id), {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Asserts a SimpleExceptionDetail answer and returns it. */
async function expectProblem(res: Response, status: number, errorCode: string, detail?: RegExp) {
  expect(res.status).toBe(status);
  const body = simpleExceptionDetailSchema.parse(await res.json());
  expect(body.status).toBe(status);
  expect(body.errorCode).toBe(errorCode);
  if (detail) expect(body.detail).toMatch(detail);
  return body;
}

async function queued(id: string) {
  const p = ctx.keys.partition(id);
  const jobs = await ctx.queues.queue(p).getJobs(["waiting", "delayed", "active"]);
  return jobs.filter((j) => j.data.requestId === id).map((j) => j.data);
}

describe.each(useTransports(ctx))("POST executionStatus (%s)", (_name, transport) => {
  beforeAll(() => {
    send = transport;
  });

  it("answers 200 with an empty body and enqueues the callback with the next seq", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    const res = await post(id, { requestHandle, status: "UPDATE", statusMessage: "50%" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
    const res2 = await post(id, { requestHandle, status: "SUCCESS" });
    expect(res2.status).toBe(200);
    const jobs = await queued(id);
    expect(jobs.map((j) => [j.seq, j.status, j.execution])).toEqual(
      expect.arrayContaining([
        [1, "UPDATE", 1],
        [2, "SUCCESS", 1],
      ]),
    );
    expect(JSON.stringify(jobs)).not.toContain(requestHandle);
  });

  it("accepts the vendor media type with parameters", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    const res = await post(
      id,
      { requestHandle, status: "UPDATE" },
      {
        "content-type": "application/vnd.oracle.resource+json; charset=utf-8",
      },
    );
    expect(res.status).toBe(200);
  });

  it("takes '007' as request 7 (canonical ids)", async () => {
    const { requestHandle } = await register("7");
    expect((await post("007", { requestHandle, status: "UPDATE" })).status).toBe(200);
  });

  it("truncates statusMessage to 1000 code points instead of rejecting it", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    const res = await post(id, { requestHandle, status: "ERROR", statusMessage: "x".repeat(1500) });
    expect(res.status).toBe(200);
    const [job] = await queued(id);
    expect([...(job?.message ?? "")].length).toBe(1000);
  });

  it("404 for an unknown request", async () => {
    await expectProblem(
      await post("999999999", { requestHandle: "h", status: "SUCCESS" }),
      404,
      "ESS-40401",
      /999999999/,
    );
  });

  it("403 for a wrong handle, without echoing it", async () => {
    const id = newRequestId();
    await register(id);
    const body = await expectProblem(
      await post(id, { requestHandle: "not-the-handle-xyz", status: "SUCCESS" }),
      403,
      "ESS-40301",
    );
    expect(body.detail).not.toContain("not-the-handle-xyz");
  });

  it("403 for a handle of an earlier execution after re-registration", async () => {
    const id = newRequestId();
    const first = await register(id);
    await register(id);
    await expectProblem(await post(id, { requestHandle: first.requestHandle, status: "UPDATE" }), 403, "ESS-40301");
  });

  it("403 naming the state when the request takes no callbacks", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    await ctx.redis.hset(ctx.keys.request(ctx.keys.partition(id), id), "state", "HOLD");
    await expectProblem(await post(id, { requestHandle, status: "UPDATE" }), 403, "ESS-40302", /HOLD/);
  });

  it("200 without a new job for a repeat of the callback that closed the request; 403 for another status", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    expect((await post(id, { requestHandle, status: "SUCCESS" })).status).toBe(200);
    const job = (await queued(id))[0];
    if (!job) throw new Error("no job");
    await ctx.store.apply(id, "cb", job);
    expect(await ctx.store.state(id)).toBe("SUCCEEDED");
    const before = (await queued(id)).length;
    expect((await post(id, { requestHandle, status: "SUCCESS" })).status).toBe(200);
    expect((await queued(id)).length).toBe(before);
    await expectProblem(await post(id, { requestHandle, status: "ERROR" }), 403, "ESS-40302", /SUCCEEDED/);
  });

  it("sets X-ESS-Cancel-Requested on a 200 while the request is CANCELLING", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    expect((await post(id, { requestHandle, status: "UPDATE" })).headers.get("x-ess-cancel-requested")).toBeNull();
    await ctx.redis.hset(ctx.keys.request(ctx.keys.partition(id), id), "state", "CANCELLING");
    const res = await post(id, { requestHandle, status: "UPDATE" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-ess-cancel-requested")).toBe("true");
  });

  describe("400 Invalid input", () => {
    it.each([
      ["0", "ESS-40001"],
      ["-5", "ESS-40001"],
      ["12ab", "ESS-40001"],
      ["9223372036854775808", "ESS-40001"],
    ])("for request id %s", async (id, code) => {
      await expectProblem(await post(id, { requestHandle: "h", status: "SUCCESS" }), 400, code, /requestId/);
    });

    it("for malformed JSON", async () => {
      await expectProblem(await post("1", '{"status": '), 400, "ESS-40002", /not valid JSON/);
    });
    it("for an empty body", async () => {
      await expectProblem(await post("1", ""), 400, "ESS-40002", /empty/);
    });
    it("for a body that is not an object", async () => {
      await expectProblem(await post("1", "[1,2]"), 400, "ESS-40003", /JSON object/);
    });
    it("for a missing requestHandle", async () => {
      await expectProblem(await post("1", { status: "SUCCESS" }), 400, "ESS-40003", /requestHandle is required/);
    });
    it("for an empty requestHandle", async () => {
      await expectProblem(await post("1", { requestHandle: "", status: "SUCCESS" }), 400, "ESS-40003", /requestHandle/);
    });
    it("for an unknown status (exact case)", async () => {
      await expectProblem(
        await post("1", { requestHandle: "h", status: "success" }),
        400,
        "ESS-40003",
        /status must be one of/,
      );
    });
    it("for a wrong type", async () => {
      await expectProblem(
        await post("1", { requestHandle: "h", status: "ERROR", statusMessage: 5 }),
        400,
        "ESS-40003",
        /statusMessage must be a string/,
      );
    });
    it("for an unknown property, naming it", async () => {
      await expectProblem(
        await post("1", { requestHandle: "h", status: "ERROR", message: "typo" }),
        400,
        "ESS-40004",
        /unknown property 'message'/,
      );
    });
    it("for an invalid Idempotency-Key", async () => {
      await expectProblem(
        await post("1", { requestHandle: "h", status: "ERROR" }, { "idempotency-key": "has space" }),
        400,
        "ESS-40006",
        /Idempotency-Key/,
      );
    });
  });

  it("413 for a declared Content-Length over the limit, with Connection: close", async () => {
    const big = JSON.stringify({ requestHandle: "h", status: "ERROR", statusMessage: "x".repeat(4000) });
    const res = await post("1", big, { "content-length": String(Buffer.byteLength(big)) });
    await expectProblem(res, 413, "ESS-41301", /2048 bytes/);
    expect(res.headers.get("connection")).toBe("close");
  });

  it("413 for a chunked body that grows over the limit", async () => {
    const chunk = new TextEncoder().encode("x".repeat(1000));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const res = await send(path("1"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: stream,
      duplex: "half",
    } as RequestInit);
    await expectProblem(res, 413, "ESS-41301");
  });

  it.each([["text/plain"], ["application/xml"], ["multipart/form-data; boundary=x"]])(
    "415 for Content-Type %s",
    async (type) => {
      await expectProblem(await post("1", "{}", { "content-type": type }), 415, "ESS-41501", /Content-Type/);
    },
  );

  it("415 when Content-Type is missing", async () => {
    const res = await send(path("1"), { method: "POST", body: new TextEncoder().encode("{}") });
    await expectProblem(res, 415, "ESS-41501", /missing/);
  });

  it("405 with Allow for another method", async () => {
    const res = await send(path("1"), { method: "GET" });
    await expectProblem(res, 405, "ESS-40501");
    expect(res.headers.get("allow")).toBe("POST");
  });

  it("404 SimpleExceptionDetail for an unknown route", async () => {
    await expectProblem(await send("/nope", { method: "POST" }), 404, "ESS-40402");
  });

  it("500 without internals when the store fails unexpectedly (a corrupted request key)", async () => {
    const id = newRequestId();
    await ctx.redis.set(ctx.keys.request(ctx.keys.partition(id), id), "not a hash");
    const body = await expectProblem(await post(id, { requestHandle: "h", status: "SUCCESS" }), 500, "ESS-50001");
    expect(body.title).toBe("A scheduling sub-system error occurred");
    expect(body.detail).not.toMatch(/WRONGTYPE|stack|at /);
    expect(ctx.errors.length).toBeGreaterThan(0);
  });

  it("echoes the vendor media type on error bodies of vendor-typed calls", async () => {
    const res = await post("0", "{}", { "content-type": "application/vnd.oracle.resource+json" });
    expect(res.headers.get("content-type")).toBe("application/vnd.oracle.resource+json");
  });
});
