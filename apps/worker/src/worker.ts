import { type CallbackJob, callbackJobSchema, safeParseCallbackBatchJob } from "@ess/contract";
import {
  type ApplyResult,
  AuditLog,
  BULK_JOB_NAME,
  CALLBACK_QUEUE,
  type CallbackQueues,
  type DeadLetters,
  isOutOfMemory,
  JOB_BATCH,
  JOB_CALLBACK,
  JOB_GAP,
  needsGapCheck,
  OPS_QUEUE,
  type RequestStore,
  reasonMessage,
} from "@ess/store";
import type { Redis } from "ioredis";
import { z } from "zod";
import { DelayedError, type Job, UnrecoverableError, Worker } from "./bullmq.js";
import { deadLetterUpkeep } from "./dead-letter-upkeep.js";
import { classify } from "./failures.js";
import type { WorkerLogger } from "./logger.js";
import { BulkReplayRunner } from "./replay.js";

export type { WorkerLogger } from "./logger.js";

/** One apply of a callback (`cb`, the job) or of a gap check (`gap`, the missing seq). */
export interface ApplyCall {
  requestId: string;
  mode: "cb" | "gap";
  arg: CallbackJob | number;
}

/**
 * Hooks around the worker's apply, called where it happens: the metrics and the per-job log line
 * (observe.ts), and the tracer's span (tracing.ts). A hook runs `work` once and returns (or throws) what it did.
 */
export interface WorkerObserver {
  apply(call: ApplyCall, work: () => Promise<ApplyResult>): Promise<ApplyResult>;
  /**
   * The callbacks of one batch job, applied by one script call (`work`, one result per call, in
   * order), observed exactly as `apply` would observe each of them. Optional: an observer without it
   * (the tracer, a span per callback) gets each callback through `apply`; with it, a batch costs one
   * promise instead of one per callback.
   */
  applyBatch?(calls: readonly ApplyCall[], work: () => Promise<ApplyResult[]>): Promise<ApplyResult[]>;
}

/** One observer made of several, the first outermost; it observes batches whole only if every one of them does. */
export function observeAll(...observers: (WorkerObserver | undefined)[]): WorkerObserver {
  const list = observers.filter((o): o is WorkerObserver => o !== undefined);
  if (list.length === 1) return list[0] as WorkerObserver;
  const batched = list.every((o) => o.applyBatch !== undefined);
  return {
    apply: (call, work) =>
      list.reduceRight<() => Promise<ApplyResult>>((inner, o) => () => o.apply(call, inner), work)(),
    ...(batched
      ? {
          applyBatch: (calls: readonly ApplyCall[], work: () => Promise<ApplyResult[]>) =>
            list.reduceRight<() => Promise<ApplyResult[]>>(
              (inner, o) => () => (o.applyBatch as NonNullable<WorkerObserver["applyBatch"]>)(calls, inner),
              work,
            )(),
        }
      : {}),
  };
}

export interface WorkerDeps {
  connection: Redis;
  store: RequestStore;
  queues: CallbackQueues;
  deadLetters: DeadLetters;
  /** runs the bulk replays the ops queue hands out (default: a runner over deadLetters) */
  replays?: BulkReplayRunner | undefined;
  partitions: number[];
  concurrency: number;
  gapTimeoutMs: number;
  /**
   * BullMQ lock: renewed every lockMs/2 while a job runs; a job whose worker died is handed to another
   * at the first stalled check after its lock ran out, so between lockMs/2 and lockMs + stalledIntervalMs
   * after the death. A worker whose event loop or Redis link stalls longer than lockMs/2 loses its
   * locks (a false stall: the job runs again, which the apply script makes a no-op).
   */
  lockMs: number;
  /** how often stalled (orphaned) jobs are looked for */
  stalledIntervalMs: number;
  /** Names this process in every job it takes (BullMQ's processedBy), e.g. `host:pid`. */
  name?: string | undefined;
  /** how often the failed sets are swept into the dead letters (catches a crash mid-move) */
  sweepIntervalMs: number;
  /** dead letters older than this are purged (hourly, by one worker at a time) */
  deadLetterRetentionMs: number;
  log: WorkerLogger;
  /** Hooks around each apply (metrics, tracing); absent: unobserved. */
  observe?: WorkerObserver | undefined;
  /** Test seam: runs before a callback is applied; throwing simulates a failure of the attempt. */
  beforeApply?: (job: Job) => void | Promise<void>;
}

/** Longest wait between two attempts of a job refused by a full Redis. */
const OUT_OF_MEMORY_MAX_DELAY_MS = 5000;

const gapJobSchema = z.strictObject({
  requestId: z.string().regex(/^[1-9][0-9]{0,18}$/),
  missing: z.number().int().min(1),
});
const replayJobSchema = z.strictObject({ opId: z.string().regex(/^[0-9a-f]{16}$/) });
const bulkJobSchema = z.strictObject({ bulkId: z.string().regex(/^[0-9a-f]{16}$/) });

/**
 * A gap check re-runs (after GAP_CHECK_RETRY_MS) while Redis fails it, this many times at most: enough
 * to outlast a long Redis outage, since a gap check that gives up leaves its request waiting for good.
 */
export const GAP_CHECK_ATTEMPTS = 1000;
export const GAP_CHECK_RETRY_MS = 1000;
/** A running worker: one BullMQ Worker per served partition, plus the ops worker. */
export interface CallbackWorker {
  workers: Worker[];
  /** Moves every finally-failed job (callbacks and webhook deliveries) of the served partitions into the dead letters. */
  sweep(): Promise<number>;
  /** Purges dead letters past their retention (if no other worker holds the purge lock); returns how many. */
  purgeExpired(): Promise<number>;
  /** Stops taking jobs and waits for the active ones (or hands them back after timeoutMs). */
  close(timeoutMs?: number): Promise<void>;
}

/**
 * Builds the processors and starts consuming. The worker alone changes request state; everything it
 * does to a request happens in one apply script, so crashes and redeliveries change nothing twice.
 */
export function createWorker(deps: WorkerDeps): CallbackWorker {
  const { store, queues, deadLetters, log } = deps;
  const replays =
    deps.replays ?? new BulkReplayRunner(deadLetters, { audit: new AuditLog(deps.connection, store.keys) });
  const upkeep = deadLetterUpkeep({
    ...deps,
    gapCheck: (requestId, missing) => scheduleGapCheck(requestId, missing, deps.gapTimeoutMs),
  });
  const apply = (call: ApplyCall): Promise<ApplyResult> => {
    const work = () => store.apply(call.requestId, call.mode, call.arg);
    return deps.observe ? deps.observe.apply(call, work) : work();
  };

  /** One script call for the callbacks of a batch, observed as a batch or, for an observer that needs it, one by one. */
  function applyBatch(cbs: CallbackJob[]): Promise<ApplyResult[]> {
    const observe = deps.observe;
    if (!observe) return store.applyBatch(cbs);
    const calls = cbs.map((cb): ApplyCall => ({ requestId: cb.requestId, mode: "cb", arg: cb }));
    if (observe.applyBatch) return observe.applyBatch(calls, () => store.applyBatch(cbs));
    // each observer's work waits for the one call and takes its own result
    let batch: Promise<ApplyResult[]> | undefined;
    const all = () => {
      batch ??= store.applyBatch(cbs);
      return batch;
    };
    return Promise.all(calls.map((call, i) => observe.apply(call, () => all().then((r) => r[i] as ApplyResult))));
  }

  async function scheduleGapCheck(requestId: string, missing: number, delay: number): Promise<void> {
    const p = store.keys.partition(requestId);
    await queues.queue(p).add(
      JOB_GAP,
      { requestId, missing },
      {
        jobId: `gap-${requestId}-${missing}`,
        delay,
        attempts: GAP_CHECK_ATTEMPTS,
        backoff: { type: "fixed", delay: GAP_CHECK_RETRY_MS },
        removeOnComplete: true,
        removeOnFail: false,
      },
    );
  }

  async function processCallback(job: Job): Promise<string> {
    const parsed = callbackJobSchema.safeParse(job.data);
    if (!parsed.success) {
      // a payload that fails validation will never apply: no retries
      throw new UnrecoverableError(
        reasonMessage("invalid-payload", `invalid callback payload: ${parsed.error.issues[0]?.message ?? "invalid"}`),
      );
    }
    const cb = parsed.data;
    await deps.beforeApply?.(job);
    const res = await apply({ requestId: cb.requestId, mode: "cb", arg: cb });
    log.debug({ requestId: cb.requestId, seq: cb.seq, status: cb.status, result: res.result }, "callback processed");
    if (res.result === "gone") {
      throw new UnrecoverableError(
        reasonMessage("request-gone", `request ${cb.requestId} no longer exists (expired or deleted)`),
      );
    }
    if (needsGapCheck(res)) await scheduleGapCheck(cb.requestId, res.missing, deps.gapTimeoutMs);
    return res.result;
  }

  /**
   * A batch job: its callbacks (one batch group: any partitions on a single Redis, one on Redis Cluster;
   * admission order) applied by one script call, each observed (metrics, log line, trace span) as if
   * applied on its own, and its gap checks scheduled as a single job's would be (in the queue of the
   * request's own partition). A callback whose request is gone is dead-lettered on its own (as the
   * single job it stands for, in its own partition) and the others complete. A failure of the call fails
   * the batch as a whole; its retry applies nothing twice (apply-batch), and once out of attempts each
   * callback it had not applied becomes a dead letter of its own (DeadLetters.record).
   */
  async function processBatch(job: Job): Promise<string> {
    const parsed = safeParseCallbackBatchJob(job.data);
    const group = parsed.success ? store.batchGroupOf(parsed.data.callbacks[0]?.requestId ?? "") : -1;
    if (!parsed.success || parsed.data.callbacks.some((cb) => store.batchGroupOf(cb.requestId) !== group)) {
      throw new UnrecoverableError(
        reasonMessage(
          "invalid-payload",
          `invalid batch payload: ${parsed.success ? "callbacks of several partitions on Redis Cluster" : (parsed.error.issues[0]?.message ?? "invalid")}`,
        ),
      );
    }
    const cbs = parsed.data.callbacks;
    await deps.beforeApply?.(job);
    const results = await applyBatch(cbs);
    const gone: CallbackJob[] = [];
    // the gap check a request's last callback of the batch asks for (as its own job would)
    const gaps = new Map<string, ApplyResult>();
    results.forEach((res, i) => {
      const cb = cbs[i] as CallbackJob;
      log.debug({ requestId: cb.requestId, seq: cb.seq, status: cb.status, result: res.result }, "callback processed");
      if (res.result === "gone") gone.push(cb);
      else gaps.set(cb.requestId, res);
    });
    if (gone.length > 0) {
      const entries = await deadLetters.recordCallbacks(job.queueName, gone, {
        reason: "request-gone",
        error: "request no longer exists (expired or deleted)",
        attempts: job.attemptsMade + 1,
        opts: job.opts,
        enqueuedAt: job.timestamp,
      });
      for (const e of entries)
        log.warn({ requestId: e.requestId, seq: e.seq, reason: e.reason, id: e.id }, "job dead-lettered");
    }
    for (const [requestId, res] of gaps) {
      if (needsGapCheck(res)) await scheduleGapCheck(requestId, res.missing, deps.gapTimeoutMs);
    }
    return `${results.length} callbacks`;
  }

  async function processGap(job: Job, token: string | undefined): Promise<string> {
    const parsed = gapJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(reasonMessage("invalid-payload", "invalid gap-check payload"));
    const { requestId, missing } = parsed.data;
    const res = await apply({ requestId, mode: "gap", arg: missing });
    if (res.result === "wait") {
      await job.moveToDelayed(Date.now() + Math.max(res.n, 10), token);
      throw new DelayedError();
    }
    if (res.result === "skipped") log.warn({ requestId, seq: missing }, "sequence gap skipped");
    if (res.missing > 0 && res.missing !== missing) await scheduleGapCheck(requestId, res.missing, deps.gapTimeoutMs);
    return res.result;
  }

  /**
   * Consecutive attempts refused by a full Redis, over the whole worker: a full Redis refuses every
   * job alike, so the backoff grows with the shortage, not per job; any success resets it.
   */
  let outOfMemoryStreak = 0;

  /** Delay before a job refused by a full Redis runs again: exponential from the job backoff, capped, jittered. */
  function outOfMemoryDelay(): number {
    const base = Math.min(queues.policy.backoffMs * 2 ** Math.min(outOfMemoryStreak, 16), OUT_OF_MEMORY_MAX_DELAY_MS);
    return Math.round(base * (0.5 + Math.random() / 2));
  }

  /** Classifies a failure once: permanent ones are dead-lettered without retries. */
  async function guarded(job: Job, token: string | undefined, run: () => Promise<string>): Promise<string> {
    try {
      const result = await run();
      outOfMemoryStreak = 0;
      return result;
    } catch (err) {
      if (err instanceof DelayedError || err instanceof UnrecoverableError) throw err;
      const failure = classify(err);
      if (failure.kind === "permanent") {
        throw new UnrecoverableError(reasonMessage(failure.reason, (err as Error).message ?? String(err)));
      }
      if (failure.kind === "overload" && token !== undefined) {
        // nothing was applied (a full Redis refuses the apply script whole): delay the job without
        // spending one of its attempts, so no shortage, however long, dead-letters a good callback
        const delay = outOfMemoryDelay();
        outOfMemoryStreak++;
        try {
          await job.moveToDelayed(Date.now() + delay, token);
        } catch (moveErr) {
          // BullMQ could not move it either: an ordinary failed attempt, retried with backoff
          log.warn({ jobId: job.id, err: (moveErr as Error).message }, "Redis is full; could not delay the job");
          throw err;
        }
        log.warn({ jobId: job.id, delayMs: delay }, "Redis is full (maxmemory); job delayed, will retry");
        throw new DelayedError();
      }
      log.warn(
        { jobId: job.id, attemptsMade: job.attemptsMade, err: (err as Error).message },
        "transient failure; will retry",
      );
      throw err;
    }
  }

  const processor = async (job: Job, token?: string): Promise<string> => {
    switch (job.name) {
      case JOB_CALLBACK:
        return guarded(job, token, () => processCallback(job));
      case JOB_BATCH:
        return guarded(job, token, () => processBatch(job));
      case JOB_GAP:
        return guarded(job, token, () => processGap(job, token));
      default:
        throw new UnrecoverableError(reasonMessage("invalid-payload", `unknown job name ${job.name}`));
    }
  };

  const workers = deps.partitions.map((p) => {
    const w = new Worker(CALLBACK_QUEUE, processor, {
      connection: deps.connection,
      prefix: store.keys.tag(p),
      concurrency: deps.concurrency,
      lockDuration: deps.lockMs,
      stalledInterval: deps.stalledIntervalMs,
      maxStalledCount: 3,
      ...(deps.name === undefined ? {} : { name: deps.name }),
    });
    w.on("failed", (job, err) => {
      if (!job || err instanceof DelayedError || err.name === "DelayedError") return;
      void job
        .isFailed()
        .then((final) => (final ? upkeep.deadLetter(p, job) : undefined))
        // the job stays in the failed set, where the next sweep moves it into the dead letters
        .catch((err: Error) =>
          log.warn({ partition: p, jobId: job.id, err: err.message }, "dead-lettering deferred to the sweep"),
        );
    });
    w.on("stalled", (jobId) => log.warn({ partition: p, jobId }, "job stalled; handed to another worker"));
    // a full Redis refuses BullMQ's own fetches and lock renewals too: overload, logged at warn
    w.on("error", (err) => {
      if (isOutOfMemory(err)) log.warn({ partition: p, err: err.message }, "worker error");
      else log.error({ partition: p, err: err.message }, "worker error");
    });
    return w;
  });

  const opsWorker = new Worker(
    OPS_QUEUE,
    async (job: Job) => {
      if (job.name === BULK_JOB_NAME) {
        const bulk = bulkJobSchema.safeParse(job.data);
        if (!bulk.success) throw new UnrecoverableError(reasonMessage("invalid-payload", "invalid bulk job"));
        const op = await replays.runBulk(bulk.data.bulkId);
        log.info(
          { bulkId: bulk.data.bulkId, kind: op?.kind, state: op?.state, processed: op?.processed },
          "bulk action finished",
        );
        return op?.state ?? "gone";
      }
      const parsed = replayJobSchema.safeParse(job.data);
      if (!parsed.success) throw new UnrecoverableError(reasonMessage("invalid-payload", "invalid replay job"));
      const op = await replays.run(parsed.data.opId);
      log.info({ opId: parsed.data.opId, state: op?.state, replayed: op?.replayed }, "bulk replay finished");
      return op?.state ?? "gone";
    },
    { connection: deps.connection, prefix: store.keys.opsTag(), concurrency: 2, lockDuration: deps.lockMs },
  );
  opsWorker.on("error", (err) => log.error({ err: err.message }, "ops worker error"));
  // a console bulk action whose job failed for good (its attempts spent) ends `failed`, with the error
  opsWorker.on("failed", (job, err) => {
    if (!job || job.name !== BULK_JOB_NAME) return;
    const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
    const bulkId = (job.data as { bulkId?: unknown }).bulkId;
    if (!final || typeof bulkId !== "string") return;
    deadLetters.bulk
      .finish(bulkId, "failed", err.message)
      .catch((e: Error) => log.warn({ bulkId, err: e.message }, "could not mark the bulk action failed"));
  });

  upkeep.start();

  return {
    workers,
    sweep: upkeep.sweep,
    purgeExpired: upkeep.purgeExpired,
    async close(timeoutMs = 20000) {
      upkeep.stop();
      const all = [...workers, opsWorker];
      const closing = Promise.all(all.map((w) => w.close()));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          log.warn({}, "jobs still active at shutdown timeout: handing them back");
          void Promise.all(all.map((w) => w.close(true))).then(() => resolve());
        }, timeoutMs);
      });
      await Promise.race([closing, timeout]);
      clearTimeout(timer);
    },
  };
}
