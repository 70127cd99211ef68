import { createApp } from "@ess/gateway";
import { newRequestId } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { useGatewayTestContext } from "./test-context.js";

// Both enqueue modes answer the same and leave the same job behind (ENQUEUE_MODE).
const ctx = await useGatewayTestContext();

describe.each(["script", "queue"] as const)("ENQUEUE_MODE=%s", (enqueue) => {
  const app = createApp({ ...ctx.deps, enqueue });

  it("answers 200 only with the job in the queue, seqs in order, refusals without a job", async () => {
    const id = newRequestId();
    const reg = await app.request(`/gateway/v1/requests/${id}/executions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ requestHandle: "the-handle" }),
    });
    expect(reg.status).toBe(201);
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      app.request(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    expect((await post({ requestHandle: "the-handle", status: "UPDATE", statusMessage: "1/2" })).status).toBe(200);
    expect((await post({ requestHandle: "the-handle", status: "SUCCESS" }, { "idempotency-key": "k1" })).status).toBe(
      200,
    );
    // the same Idempotency-Key and content: the first answer again, no second job
    expect((await post({ requestHandle: "the-handle", status: "SUCCESS" }, { "idempotency-key": "k1" })).status).toBe(
      200,
    );
    expect((await post({ requestHandle: "wrong", status: "UPDATE" })).status).toBe(403);

    const p = ctx.keys.partition(id);
    const jobs = (await ctx.queues.queue(p).getJobs(["waiting"])).filter((j) => j.data.requestId === id);
    expect(jobs.map((j) => [j.id, j.data.seq, j.data.status, j.data.message]).sort()).toEqual([
      [`${id}-1`, 1, "UPDATE", "1/2"],
      [`${id}-2`, 2, "SUCCESS", undefined],
    ]);
    for (const j of jobs) {
      expect(j.opts).toMatchObject({ attempts: 3, removeOnComplete: true, removeOnFail: false });
    }
  });
});
