import { describe, expect, it } from "vitest";
import { newRequestId, useTestContext } from "../../../test/support/context.js";

const ctx = useTestContext({ limits: { idempotencyTtlSeconds: 120 } });

async function register(id: string): Promise<string> {
  await ctx.store.register(id, "the-handle", {});
  return "the-handle";
}

function post(id: string, body: Record<string, unknown>, key?: string) {
  return ctx.app.request(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
    body: JSON.stringify(body),
  });
}

async function jobs(id: string) {
  const all = await ctx.queues.queue(ctx.keys.partition(id)).getJobs(["waiting", "delayed", "active", "completed"]);
  return all.filter((j) => j.data.requestId === id);
}

describe("Idempotency-Key", () => {
  it("a repeat with the same key and content gets the first answer and is enqueued once", async () => {
    const id = newRequestId();
    const requestHandle = await register(id);
    const body = { requestHandle, status: "SUCCESS", statusMessage: "done" };
    expect((await post(id, body, "k-1")).status).toBe(200);
    expect((await post(id, body, "k-1")).status).toBe(200);
    expect((await post(id, body, "k-1")).status).toBe(200);
    expect((await jobs(id)).map((j) => j.data.seq)).toEqual([1]);
    const ttl = await ctx.redis.ttl(ctx.keys.idempotency(ctx.keys.partition(id), id, "k-1"));
    expect(ttl).toBeGreaterThan(100);
    expect(ttl).toBeLessThanOrEqual(120);
  });

  it("the repeat is still 200 after the request moved on (the first answer, applied once)", async () => {
    const id = newRequestId();
    const requestHandle = await register(id);
    const body = { requestHandle, status: "CANCEL" };
    expect((await post(id, body, "k-2")).status).toBe(200);
    const [job] = await jobs(id);
    await ctx.store.apply(id, "cb", job?.data);
    await ctx.store.register(id, "new-handle", {}).catch(() => {}); // CANCELLED is terminal: 409
    expect((await post(id, body, "k-2")).status).toBe(200);
    expect((await jobs(id)).length).toBe(1);
  });

  it("the same key with different content gets 422", async () => {
    const id = newRequestId();
    const requestHandle = await register(id);
    expect((await post(id, { requestHandle, status: "UPDATE", statusMessage: "a" }, "k-3")).status).toBe(200);
    for (const other of [
      { requestHandle, status: "UPDATE", statusMessage: "b" },
      { requestHandle, status: "SUCCESS", statusMessage: "a" },
      { requestHandle, status: "UPDATE" },
    ]) {
      const res = await post(id, other, "k-3");
      expect(res.status).toBe(422);
      expect(await res.json()).toMatchObject({ errorCode: "ESS-42201", status: 422 });
    }
  });

  it("content is compared after truncation: messages equal in their first 1000 code points are the same call", async () => {
    const id = newRequestId();
    const requestHandle = await register(id);
    const a = `${"x".repeat(1000)}tail-a`;
    const b = `${"x".repeat(1000)}tail-b`;
    expect((await post(id, { requestHandle, status: "ERROR", statusMessage: a }, "k-4")).status).toBe(200);
    expect((await post(id, { requestHandle, status: "ERROR", statusMessage: b }, "k-4")).status).toBe(200);
    expect((await jobs(id)).length).toBe(1);
  });

  it("a repeat while the first is still in flight gets 409 with Retry-After", async () => {
    const id = newRequestId();
    const requestHandle = await register(id);
    const { digest } = await import("@ess/store");
    const fingerprint = digest(`UPDATE\n${requestHandle}\n\u0000`);
    // the first call admitted but not yet enqueued (as if its gateway were still working on it)
    await ctx.store.admit(id, requestHandle, "UPDATE", { key: "k-5", fingerprint });
    const res = await post(id, { requestHandle, status: "UPDATE" }, "k-5");
    expect(res.status).toBe(409);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(await res.json()).toMatchObject({ errorCode: "ESS-40902" });
  });

  it("only 200s are remembered: a call that got a 4xx is evaluated afresh", async () => {
    const id = newRequestId();
    const requestHandle = await register(id);
    expect((await post(id, { requestHandle: "wrong", status: "UPDATE" }, "k-6")).status).toBe(403);
    expect((await post(id, { requestHandle, status: "UPDATE" }, "k-6")).status).toBe(200);
  });

  it("keys are scoped to the request id", async () => {
    const a = newRequestId();
    const b = newRequestId();
    const ha = await register(a);
    const hb = await register(b);
    expect((await post(a, { requestHandle: ha, status: "UPDATE" }, "shared")).status).toBe(200);
    expect((await post(b, { requestHandle: hb, status: "SUCCESS" }, "shared")).status).toBe(200);
    expect((await jobs(b)).length).toBe(1);
  });

  it("without the header, two identical calls are two callbacks", async () => {
    const id = newRequestId();
    const requestHandle = await register(id);
    await post(id, { requestHandle, status: "UPDATE" });
    await post(id, { requestHandle, status: "UPDATE" });
    expect((await jobs(id)).map((j) => j.data.seq).sort()).toEqual([1, 2]);
  });
});
