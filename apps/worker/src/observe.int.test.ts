import type { CallbackJob } from "@ess/contract";
import { createRedis } from "@ess/store";
import { eventually } from "@ess/testing";
import { newRequestId, useTestContext } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyMetrics, observeWorkers, WorkerMetrics } from "./observe.js";
import { type CallbackWorker, createWorker } from "./worker.js";

const ctx = useTestContext({ partitions: 1 });
const metrics = new WorkerMetrics({ defaultMetrics: false });
const lines: Record<string, unknown>[] = [];
const log = {
  debug: () => {},
  info: (o: object, msg?: string) => lines.push({ ...o, msg }),
  warn: () => {},
  error: () => {},
};
const connection = createRedis(ctx.url, "worker");
let worker: CallbackWorker;
let failNext = 0;

beforeAll(() => {
  const observed = applyMetrics(metrics, log);
  worker = createWorker({
    connection,
    store: ctx.store,
    queues: ctx.queues,
    deadLetters: ctx.deadLetters,
    partitions: [0],
    concurrency: 1,
    gapTimeoutMs: 60000,
    lockMs: 5000,
    stalledIntervalMs: 2000,
    sweepIntervalMs: 1000,
    deadLetterRetentionMs: 86400_000,
    log,
    observe: {
      // a transient Redis failure on demand, before the real apply (the worker retries it)
      apply: (call, work) => {
        if (failNext > 0) {
          failNext -= 1;
          return Promise.reject(new Error("Connection is closed."));
        }
        return observed.apply(call, work);
      },
    },
  });
  observeWorkers(worker, metrics);
});

afterAll(async () => {
  await worker.close(5000);
  await connection.quit();
});

const value = async (name: string, labels = "") => {
  const text = await metrics.registry.metrics();
  const m = new RegExp(`^${name}${labels.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
};

async function admitted(id: string, handle: string, status = "UPDATE"): Promise<CallbackJob> {
  const a = await ctx.store.admit(id, handle, status as CallbackJob["status"]);
  if (a.kind !== "admitted") throw new Error("not admitted");
  return {
    v: 1,
    requestId: id,
    seq: a.seq,
    execution: a.execution,
    status: status as CallbackJob["status"],
    acceptedAt: Date.now(),
  };
}

describe("worker metrics and job logs", () => {
  it("counts results, the reorder buffer, lag, retries and logs each job with request id and seq", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h-1", {});
    const first = await admitted(id, "h-1");
    const second = await admitted(id, "h-1", "SUCCESS");
    // the second callback reaches the queue first: it waits in the reorder buffer
    await ctx.queues.add(0, second);
    await eventually(async () => (await value("ess_worker_callbacks_total", '{result="buffered"}')) === 1);
    expect(await value("ess_reorder_buffer_callbacks")).toBe(1);

    failNext = 1; // the first attempt of the next job fails like a Redis hiccup, then it is retried
    await ctx.queues.add(0, first);
    // seq 1 applied by its job, seq 2 drained from the buffer by the same script call
    await eventually(async () => (await value("ess_worker_callbacks_total", '{result="applied"}')) === 1, 20000);
    expect(await value("ess_worker_reorder_drained_total")).toBe(1);
    expect(await value("ess_reorder_buffer_callbacks")).toBe(0);
    expect(await value("ess_callback_lag_seconds_count")).toBe(1);
    expect(await value("ess_worker_job_retries_total")).toBe(1);
    expect(await value("ess_worker_job_failures_total")).toBe(0);

    const jobs = lines.filter((l) => l.msg === "job processed" && l.requestId === id);
    expect(jobs.map((l) => [l.seq, l.result])).toEqual([
      [2, "buffered"],
      [1, "applied"],
    ]);
    expect(JSON.stringify(lines)).not.toContain("h-1");
  });
});
