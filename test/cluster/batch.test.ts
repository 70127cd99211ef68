import "@ess/testing/provided";
import { type CallbackJob, callbackBatchJobSchema } from "@ess/contract";
import { callbackJobId, JOB_BATCH } from "@ess/store";
import { eventually } from "@ess/testing";
import { newRequestId } from "@ess/testing/context";
import { afterAll, describe, expect, inject, it } from "vitest";
import { useGatewayTestContext } from "../../apps/gateway/src/test-context.js";
import { startTestWorker } from "../../apps/worker/src/test-worker.js";

// On Redis Cluster a batch stays one partition's (a script's keys must share one slot): callbacks of
// several partitions that reach the admit together get one script call and one job per partition, and a
// batch job spanning partitions is refused by the worker as an invalid payload.
const onCluster = inject("redisClusterNodes") !== "";
const ctx = await useGatewayTestContext({ partitions: 4 });

function post(id: string, status: string) {
  return ctx.app.request(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ requestHandle: "h", status }),
  });
}

/** `n` registered requests in each partition */
async function perPartition(n: number): Promise<string[]> {
  const ids: string[][] = Array.from({ length: ctx.keys.partitions }, () => []);
  while (ids.some((l) => l.length < n)) {
    const id = newRequestId();
    const l = ids[ctx.keys.partition(id)] as string[];
    if (l.length < n) l.push(id);
  }
  for (const id of ids.flat()) await ctx.store.register(id, "h", {});
  return ids.flat();
}

describe.skipIf(!onCluster)("admit batching on a Redis Cluster", () => {
  it("each partition is a batch group of its own", () => {
    expect(ctx.store.clustered).toBe(true);
    expect([0, 1, 2, 3].map((p) => ctx.store.batchGroup(p))).toEqual([0, 1, 2, 3]);
  });

  it("callbacks of several partitions arriving together: one job per partition, each in its own queue", async () => {
    const ids = await perPartition(2);
    const answers = await Promise.all(ids.flatMap((id) => [post(id, "UPDATE"), post(id, "WARNING")]));
    expect(answers.map((r) => r.status)).toEqual(answers.map(() => 200));
    let batches = 0;
    for (let p = 0; p < ctx.keys.partitions; p++) {
      for (const job of await ctx.queues.queue(p).getJobs(["waiting"])) {
        const callbacks: CallbackJob[] =
          job.name === JOB_BATCH ? callbackBatchJobSchema.parse(job.data).callbacks : [job.data as CallbackJob];
        // every callback of a job is of the job's own partition, and so is its marker
        for (const c of callbacks) {
          expect(ctx.keys.partition(c.requestId)).toBe(p);
          if (job.name === JOB_BATCH)
            expect(await ctx.redis.hget(ctx.keys.inflight(p), callbackJobId(c.requestId, c.seq))).toBe(job.id);
        }
        if (job.name === JOB_BATCH) batches++;
      }
    }
    // they did batch, per partition
    expect(batches).toBeGreaterThan(0);
  });

  it("the store refuses to put callbacks of two partitions in one script call", async () => {
    const ids = await perPartition(1);
    const cb = (requestId: string) => ({ cb: { requestId, handle: "h", status: "UPDATE" as const, acceptedAt: 1 } });
    await expect(ctx.store.admitAndEnqueueBatch(ctx.queues, [cb(ids[0]!), cb(ids[1]!)])).rejects.toThrow(
      /not of batch group/,
    );
    expect(await ctx.store.state(ids[1]!)).toBe("RUNNING");
    expect(await ctx.redis.hget(ctx.keys.request(1, ids[1]!), "seq")).toBe("0");
  });

  it("the worker refuses a batch job spanning partitions as an invalid payload", async () => {
    const ids = await perPartition(1);
    const { worker } = startTestWorker(ctx);
    afterAll(() => worker.close(5000));
    const reasons: string[] = [];
    for (const w of worker.workers) w.on("failed", (_job, err) => reasons.push(err.message));
    const job = (requestId: string) => ({ v: 1, requestId, seq: 1, execution: 1, status: "UPDATE", acceptedAt: 1 });
    await ctx.queues.queue(0).add(JOB_BATCH, { v: 1, callbacks: [job(ids[0]!), job(ids[1]!)] }, { jobId: "spanning" });
    await eventually(async () => reasons.length > 0, 20000);
    expect(reasons[0]).toMatch(/^\[invalid-payload\] invalid batch payload: callbacks of several partitions/);
    expect(await ctx.store.state(ids[0]!)).toBe("RUNNING");
    expect((await ctx.store.read(ids[0]!))?.fields.applied ?? "0").toBe("0");
  });
});
