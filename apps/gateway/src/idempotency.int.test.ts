import { newRequestId } from "@ess/testing/context";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "./app.js";
import { type Send, useGatewayTestContext, useTransports } from "./test-context.js";

const ctx = await useGatewayTestContext({ limits: { idempotencyTtlSeconds: 120 } });

async function register(id: string): Promise<string> {
  await ctx.store.register(id, "the-handle", {});
  return "the-handle";
}

// the first suite runs in-process and over HTTP (the callback route on node:http)
let send: Send = async (path, init) => ctx.app.request(path, init);

function post(id: string, body: Record<string, unknown>, key?: string) {
  return send(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
    body: JSON.stringify(body),
  });
}

async function jobs(id: string) {
  const all = await ctx.queues.queue(ctx.keys.partition(id)).getJobs(["waiting", "delayed", "active", "completed"]);
  return all.filter((j) => j.data.requestId === id);
}

describe.each(useTransports(ctx))("Idempotency-Key (%s)", (_name, transport) => {
  beforeAll(() => {
    send = transport;
  });

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
    await ctx.store.register(id, "new-handle", {}).catch(() => {}); // CANCELLED is terminal: the 409 is expected
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

// The gateway or Redis dies after the admit ran but before the client got its answer: the client's
// retry with the same key must get the first call's answer and seq, never a second admission.
describe("Idempotency-Key across a crash between admit and answer", () => {
  const body = (requestHandle: string) => ({ requestHandle, status: "UPDATE", statusMessage: "once" });
  const fingerprint = async (requestHandle: string) =>
    (await import("@ess/store")).digest(`UPDATE\n${requestHandle}\nonce`);
  const seqOf = async (id: string) => Number(await ctx.redis.hget(ctx.keys.request(ctx.keys.partition(id), id), "seq"));
  const record = (id: string, key: string) => ctx.redis.get(ctx.keys.idempotency(ctx.keys.partition(id), id, key));
  const queueApp = createApp({ ...ctx.deps, enqueue: "queue" });
  const postTo = (app: typeof ctx.app, id: string, b: unknown, key: string) =>
    app.request(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": key },
      body: JSON.stringify(b),
    });

  it("ENQUEUE_MODE=script: the one script leaves the key answered; the retry gets 200 and the same job", async () => {
    const id = newRequestId();
    const requestHandle = await register(id);
    // the gateway's only call, then it "dies" before answering
    const first = await ctx.store.admitAndEnqueue(
      ctx.queues,
      { requestId: id, handle: requestHandle, status: "UPDATE", message: "once", acceptedAt: Date.now() },
      { key: "crash-s", fingerprint: await fingerprint(requestHandle) },
    );
    expect(first).toMatchObject({ kind: "admitted", seq: 1 });
    expect(await record(id, "crash-s")).toMatch(/\|1\|done$/);
    for (const app of [ctx.app, queueApp]) {
      expect((await postTo(app, id, body(requestHandle), "crash-s")).status).toBe(200);
    }
    expect(await seqOf(id)).toBe(1);
    expect((await jobs(id)).map((j) => j.id)).toEqual([`${id}-1`]);
  });

  describe("ENQUEUE_MODE=queue", () => {
    async function admitAndDie(id: string, requestHandle: string, key: string, leaseMs: number) {
      const r = await ctx.store.admit(
        id,
        requestHandle,
        "UPDATE",
        { key, fingerprint: await fingerprint(requestHandle) },
        leaseMs,
      );
      expect(r).toMatchObject({ kind: "admitted", seq: 1, resumed: false });
      return r;
    }

    it("died before the add: within the lease 409, after it the retry enqueues the first seq, once", async () => {
      const id = newRequestId();
      const requestHandle = await register(id);
      await admitAndDie(id, requestHandle, "crash-q1", 60_000);
      expect((await postTo(queueApp, id, body(requestHandle), "crash-q1")).status).toBe(409);
      // the lease runs out (its gateway is gone): the retry resumes the call, no new seq
      const id2 = newRequestId();
      const h2 = await register(id2);
      await admitAndDie(id2, h2, "crash-q2", 1);
      await new Promise((r) => setTimeout(r, 20));
      expect((await postTo(queueApp, id2, body(h2), "crash-q2")).status).toBe(200);
      expect((await postTo(queueApp, id2, body(h2), "crash-q2")).status).toBe(200);
      expect(await seqOf(id2)).toBe(1);
      expect((await jobs(id2)).map((j) => [j.id, j.data.seq, j.data.message])).toEqual([[`${id2}-1`, 1, "once"]]);
      expect(await record(id2, "crash-q2")).toMatch(/\|1\|done$/);
    });

    it("died after the add: the resumed retry finds the job by its id and adds none", async () => {
      const id = newRequestId();
      const requestHandle = await register(id);
      const r = await admitAndDie(id, requestHandle, "crash-q3", 1);
      if (r.kind !== "admitted") throw new Error("not admitted");
      await ctx.queues.add(r.partition, {
        v: 1,
        requestId: id,
        seq: r.seq,
        execution: r.execution,
        status: "UPDATE",
        message: "once",
        acceptedAt: Date.now(),
      });
      await new Promise((res) => setTimeout(res, 20));
      expect((await postTo(queueApp, id, body(requestHandle), "crash-q3")).status).toBe(200);
      expect(await seqOf(id)).toBe(1);
      expect((await jobs(id)).map((j) => j.id)).toEqual([`${id}-1`]);
    });

    it("died after the job was applied and removed: the retry's job is a duplicate, one history entry", async () => {
      const id = newRequestId();
      const requestHandle = await register(id);
      const r = await admitAndDie(id, requestHandle, "crash-q4", 1);
      if (r.kind !== "admitted") throw new Error("not admitted");
      const job = {
        v: 1 as const,
        requestId: id,
        seq: r.seq,
        execution: r.execution,
        status: "UPDATE" as const,
        message: "once",
        acceptedAt: Date.now(),
      };
      expect((await ctx.store.apply(id, "cb", job)).result).toBe("applied");
      // the retry reaches another gateway in ENQUEUE_MODE=script: same rules
      await new Promise((res) => setTimeout(res, 20));
      expect((await postTo(ctx.app, id, body(requestHandle), "crash-q4")).status).toBe(200);
      expect(await seqOf(id)).toBe(1);
      const [again] = await jobs(id);
      expect(again?.data.seq).toBe(1);
      expect((await ctx.store.apply(id, "cb", again?.data)).result).toBe("duplicate");
      const stored = await ctx.store.read(id);
      expect(stored?.history.filter((h) => h.message === "once")).toHaveLength(1);
    });
  });
});
