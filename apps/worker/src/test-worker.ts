import { DeadLetters } from "@ess/store";
import type { TestContext } from "@ess/testing/context";
import { createWorker, type WorkerDeps } from "./worker.js";

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** An in-process worker (real BullMQ, real Redis) over a test context, with fast timings. */
export function startTestWorker(ctx: TestContext, overrides: Partial<WorkerDeps> = {}) {
  const deadLetters = new DeadLetters(ctx.redis, ctx.keys, (p, name) => ctx.queues.queue(p, name));
  const worker = createWorker({
    connection: ctx.workerRedis,
    store: ctx.store,
    queues: ctx.queues,
    deadLetters,
    partitions: Array.from({ length: ctx.keys.partitions }, (_, i) => i),
    concurrency: 8,
    gapTimeoutMs: ctx.store.limits.gapTimeoutMs,
    lockMs: 5000,
    stalledIntervalMs: 2000,
    sweepIntervalMs: 500,
    deadLetterRetentionMs: 86400_000,
    log: quiet,
    ...overrides,
  });
  return { worker, deadLetters };
}
