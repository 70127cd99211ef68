import { callbackBatchJobSchema } from "@ess/contract";
import { callbackJobId, JOB_BATCH, JOB_CALLBACK } from "@ess/store";
import { newRequestId } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { BacklogMonitor } from "./backlog.js";
import { useGatewayTestContext } from "./test-context.js";

// Callbacks of one partition that reach the admit in the same event-loop turn share one script call and
// one batch job (ADMIT_BATCH_MAX, default 64); each HTTP call still gets its own answer.
const ctx = await useGatewayTestContext({ partitions: 1 });

function post(id: string, body: Record<string, unknown>, key?: string) {
  return ctx.app.request(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
    body: JSON.stringify(body),
  });
}

async function registered(): Promise<string> {
  const id = newRequestId();
  await ctx.store.register(id, "h", {});
  return id;
}

async function errorCode(res: Response): Promise<string | undefined> {
  if (res.status === 200) return undefined;
  return ((await res.json()) as { errorCode?: string }).errorCode;
}

describe("admit batching", () => {
  it("concurrent callbacks: one answer each, one batch job, keys decided once", async () => {
    const [a, b] = [await registered(), await registered()];
    const unknown = newRequestId();
    const calls = [
      post(a, { requestHandle: "h", status: "UPDATE", statusMessage: "1" }, "k-a"),
      post(b, { requestHandle: "h", status: "UPDATE" }),
      post(unknown, { requestHandle: "h", status: "UPDATE" }),
      post(b, { requestHandle: "stale", status: "UPDATE" }),
      // the same key again, in the same turn: the first call's answer, not a second seq
      post(a, { requestHandle: "h", status: "UPDATE", statusMessage: "1" }, "k-a"),
      // the same key with other content: refused
      post(a, { requestHandle: "h", status: "UPDATE", statusMessage: "2" }, "k-a"),
      post(a, { requestHandle: "h", status: "WARNING" }),
    ];
    const answers = await Promise.all(calls);
    expect(answers.map((r) => r.status)).toEqual([200, 200, 404, 403, 200, 422, 200]);
    expect(await Promise.all(answers.map(errorCode))).toEqual([
      undefined,
      undefined,
      "ESS-40401",
      "ESS-40301",
      undefined,
      "ESS-42201",
      undefined,
    ]);
    const jobs = await ctx.queues.queue(0).getJobs(["waiting"]);
    const callbacks = jobs.flatMap((j) =>
      j.name === JOB_BATCH
        ? callbackBatchJobSchema.parse(j.data).callbacks
        : [j.data as { requestId: string; seq: number }],
    );
    // a: seq 1 (k-a) and seq 2 (WARNING); b: seq 1: each once, whatever the batches were
    expect(
      callbacks
        .filter((c) => c.requestId === a || c.requestId === b)
        .map((c) => `${c.requestId}-${c.seq}`)
        .sort(),
    ).toEqual([callbackJobId(a, 1), callbackJobId(a, 2), callbackJobId(b, 1)].sort());
    // they did share a batch job
    expect(jobs.some((j) => j.name === JOB_BATCH)).toBe(true);
    expect(Number(await ctx.redis.hget(ctx.keys.request(0, a), "seq"))).toBe(2);
  });

  it("a callback alone in its turn is exactly the single job of before", async () => {
    const id = await registered();
    expect((await post(id, { requestHandle: "h", status: "UPDATE" })).status).toBe(200);
    const job = await ctx.queues.queue(0).getJob(callbackJobId(id, 1));
    expect(job?.name).toBe(JOB_CALLBACK);
    expect(job?.data).toMatchObject({ v: 1, requestId: id, seq: 1, execution: 1, status: "UPDATE" });
    expect(await ctx.redis.hexists(ctx.keys.inflight(0), callbackJobId(id, 1))).toBe(0);
  });

  it("the backlog counts the callbacks inside batch jobs (backpressure in callbacks, not jobs)", async () => {
    const before = await ctx.queues.queue(0).getWaitingCount();
    const ids = [await registered(), await registered()];
    const answers = await Promise.all([...ids, ...ids].map((id) => post(id, { requestHandle: "h", status: "UPDATE" })));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const waiting = (await ctx.queues.queue(0).getWaitingCount()) - before;
    const marked = await ctx.redis.hlen(ctx.keys.inflight(0));
    expect(marked).toBeGreaterThanOrEqual(2);
    const backlog = new BacklogMonitor(ctx.redis, ctx.keys, 1, 60000);
    await backlog.refresh();
    // every waiting job once, and each callback inside a batch job once more
    expect(backlog.backlog(0)).toBe(before + waiting + marked);
    expect(backlog.backlog(0)).toBeGreaterThanOrEqual(before + 4);
  });
});
