import { callbackJobSchema } from "@ess/contract";
import { CALLBACK_QUEUE, type CallbackQueues, JOB_CALLBACK, JOB_GAP, type RequestStore } from "@ess/store";
import { DelayedError, type Job, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";

/** Minimal logger surface (pino's). */
export interface WorkerLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface WorkerDeps {
  connection: Redis;
  store: RequestStore;
  queues: CallbackQueues;
  partitions: number[];
  concurrency: number;
  gapTimeoutMs: number;
  log: WorkerLogger;
}

const gapJobSchema = z.strictObject({
  requestId: z.string().regex(/^[1-9][0-9]{0,18}$/),
  missing: z.number().int().min(1),
});

/** A running worker: one BullMQ Worker per served partition. */
export interface CallbackWorker {
  workers: Worker[];
  /** Stops taking jobs and waits for the active ones (or hands them back after timeoutMs). */
  close(timeoutMs?: number): Promise<void>;
}

/**
 * Builds the processor and starts consuming. The worker alone changes request state; everything it
 * does to a request happens in one apply script, so crashes and redeliveries change nothing twice.
 */
export function createWorker(deps: WorkerDeps): CallbackWorker {
  const { store, queues, log } = deps;

  async function scheduleGapCheck(requestId: string, missing: number, delay: number): Promise<void> {
    const p = store.keys.partition(requestId);
    await queues.queue(p).add(
      JOB_GAP,
      { requestId, missing },
      {
        jobId: `gap-${requestId}-${missing}`,
        delay,
        attempts: 1000,
        backoff: { type: "fixed", delay: 1000 },
        removeOnComplete: true,
        removeOnFail: false,
      },
    );
  }

  async function processCallback(job: Job): Promise<string> {
    const parsed = callbackJobSchema.safeParse(job.data);
    if (!parsed.success) {
      // a payload that fails validation will never apply: no retries
      throw new UnrecoverableError(`invalid callback payload: ${parsed.error.issues[0]?.message ?? "invalid"}`);
    }
    const cb = parsed.data;
    const res = await store.apply(cb.requestId, "cb", cb);
    log.debug({ requestId: cb.requestId, seq: cb.seq, status: cb.status, result: res.result }, "callback processed");
    if (res.result === "gone") {
      throw new UnrecoverableError(`request ${cb.requestId} no longer exists (expired or deleted)`);
    }
    if (res.missing > 0) await scheduleGapCheck(cb.requestId, res.missing, deps.gapTimeoutMs);
    return res.result;
  }

  async function processGap(job: Job, token: string | undefined): Promise<string> {
    const parsed = gapJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError("invalid gap-check payload");
    const { requestId, missing } = parsed.data;
    const res = await store.apply(requestId, "gap", missing);
    if (res.result === "wait") {
      await job.moveToDelayed(Date.now() + Math.max(res.n, 10), token);
      throw new DelayedError();
    }
    if (res.result === "skipped") log.warn({ requestId, seq: missing }, "sequence gap skipped");
    if (res.missing > 0 && res.missing !== missing) await scheduleGapCheck(requestId, res.missing, deps.gapTimeoutMs);
    return res.result;
  }

  const processor = async (job: Job, token?: string): Promise<string> => {
    switch (job.name) {
      case JOB_CALLBACK:
        return processCallback(job);
      case JOB_GAP:
        return processGap(job, token);
      default:
        throw new UnrecoverableError(`unknown job name ${job.name}`);
    }
  };

  const workers = deps.partitions.map((p) => {
    const w = new Worker(CALLBACK_QUEUE, processor, {
      connection: deps.connection,
      prefix: store.keys.tag(p),
      concurrency: deps.concurrency,
      // a job whose worker died is handed to another after this long
      stalledInterval: 5000,
      maxStalledCount: 3,
    });
    w.on("failed", (job, err) => {
      if (err instanceof DelayedError || err.name === "DelayedError") return;
      log.warn({ partition: p, jobId: job?.id, attemptsMade: job?.attemptsMade, err: err.message }, "job failed");
    });
    w.on("error", (err) => log.error({ partition: p, err: err.message }, "worker error"));
    return w;
  });

  return {
    workers,
    async close(timeoutMs = 20000) {
      const closing = Promise.all(workers.map((w) => w.close()));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          log.warn({}, "jobs still active at shutdown timeout: handing them back");
          void Promise.all(workers.map((w) => w.close(true))).then(() => resolve());
        }, timeoutMs);
      });
      await Promise.race([closing, timeout]);
      clearTimeout(timer);
    },
  };
}
