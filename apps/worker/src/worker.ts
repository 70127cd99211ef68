import { callbackJobSchema } from "@ess/contract";
import {
  CALLBACK_QUEUE,
  type CallbackQueues,
  type DeadLetters,
  isOutOfMemory,
  JOB_CALLBACK,
  JOB_GAP,
  OPS_QUEUE,
  type RequestStore,
  reasonMessage,
  WEBHOOK_QUEUE,
} from "@ess/store";
import { DelayedError, type Job, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";
import { classify } from "./failures.js";
import { BulkReplayRunner } from "./replay.js";

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
  /** Test seam: runs before a callback is applied; throwing simulates a failure of the attempt. */
  beforeApply?: (job: Job) => void | Promise<void>;
}

/**
 * Attempts of a gap check, and the wait between two: a check fails only when Redis does (the
 * script's 'wait' answer delays the same job without spending an attempt), so these ride out an
 * outage of about GAP_CHECK_ATTEMPTS x GAP_CHECK_RETRY_MS without losing the check.
 */
const GAP_CHECK_ATTEMPTS = 1000;
const GAP_CHECK_RETRY_MS = 1000;
/** How often one worker purges the dead letters past their retention, the first time this soon after start. */
const PURGE_INTERVAL_MS = 3600_000;
const FIRST_PURGE_DELAY_MS = 5000;
/** The purge lock's expiry: another worker may purge once a purging worker died this long ago. */
const PURGE_LOCK_SECONDS = 300;

/** Longest wait between two attempts of a job refused by a full Redis. */
const OUT_OF_MEMORY_MAX_DELAY_MS = 5000;

const gapJobSchema = z.strictObject({
  requestId: z.string().regex(/^[1-9][0-9]{0,18}$/),
  missing: z.number().int().min(1),
});
const replayJobSchema = z.strictObject({ opId: z.string().regex(/^[0-9a-f]{16}$/) });

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
  const replays = deps.replays ?? new BulkReplayRunner(deadLetters);

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
    const res = await store.apply(cb.requestId, "cb", cb);
    log.debug({ requestId: cb.requestId, seq: cb.seq, status: cb.status, result: res.result }, "callback processed");
    if (res.result === "gone") {
      throw new UnrecoverableError(
        reasonMessage("request-gone", `request ${cb.requestId} no longer exists (expired or deleted)`),
      );
    }
    if (res.missing > 0) await scheduleGapCheck(cb.requestId, res.missing, deps.gapTimeoutMs);
    return res.result;
  }

  async function processGap(job: Job, token: string | undefined): Promise<string> {
    const parsed = gapJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(reasonMessage("invalid-payload", "invalid gap-check payload"));
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
      case JOB_GAP:
        return guarded(job, token, () => processGap(job, token));
      default:
        throw new UnrecoverableError(reasonMessage("invalid-payload", `unknown job name ${job.name}`));
    }
  };

  async function deadLetter(p: number, job: Job): Promise<void> {
    try {
      const entry = await deadLetters.record(p, job);
      log.warn(
        { requestId: entry.requestId, seq: entry.seq, reason: entry.reason, attempts: entry.attempts, id: entry.id },
        "job dead-lettered",
      );
    } catch (err) {
      // the job stays in BullMQ's failed set; the next sweep moves it
      log.error({ jobId: job.id, err: (err as Error).message }, "could not dead-letter; will retry on sweep");
    }
  }

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
        .then((final) => (final ? deadLetter(p, job) : undefined))
        .catch(() => {});
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
      const parsed = replayJobSchema.safeParse(job.data);
      if (!parsed.success) throw new UnrecoverableError(reasonMessage("invalid-payload", "invalid replay job"));
      const op = await replays.run(parsed.data.opId);
      log.info({ opId: parsed.data.opId, state: op?.state, replayed: op?.replayed }, "bulk replay finished");
      return op?.state ?? "gone";
    },
    { connection: deps.connection, prefix: store.keys.opsTag(), concurrency: 2, lockDuration: deps.lockMs },
  );
  opsWorker.on("error", (err) => log.error({ err: err.message }, "ops worker error"));

  async function sweep(): Promise<number> {
    let moved = 0;
    for (const p of deps.partitions) {
      for (const name of [CALLBACK_QUEUE, WEBHOOK_QUEUE]) {
        const failed = await queues.queue(p, name).getFailed(0, 199);
        for (const job of failed) {
          await deadLetter(p, job);
          moved++;
        }
      }
    }
    return moved;
  }

  async function purgeExpired(): Promise<number> {
    // one worker at a time: the lock expires on its own if this one dies
    const lock = store.keys.lock("dlq-purge");
    if ((await deps.connection.set(lock, "1", "EX", PURGE_LOCK_SECONDS, "NX")) !== "OK") return 0;
    try {
      const n = await deadLetters.purgeMatching({ to: Date.now() - deps.deadLetterRetentionMs });
      if (n > 0) log.info({ purged: n }, "dead letters past retention purged");
      return n;
    } finally {
      await deps.connection.del(lock);
    }
  }

  const timers = [
    setInterval(
      () => void sweep().catch((err: Error) => log.warn({ err: err.message }, "sweep failed")),
      deps.sweepIntervalMs,
    ),
    setInterval(
      () => void purgeExpired().catch((err: Error) => log.warn({ err: err.message }, "purge failed")),
      PURGE_INTERVAL_MS,
    ),
  ];
  const firstPurge = setTimeout(() => void purgeExpired().catch(() => {}), FIRST_PURGE_DELAY_MS);
  for (const t of [...timers, firstPurge]) t.unref();

  return {
    workers,
    sweep,
    purgeExpired,
    async close(timeoutMs = 20000) {
      for (const t of timers) clearInterval(t);
      clearTimeout(firstPurge);
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
