import { callbackBatchJobSchema } from "@ess/contract";
import {
  CALLBACK_QUEUE,
  type CallbackQueues,
  type DeadLetters,
  JOB_BATCH,
  type RequestStore,
  WEBHOOK_QUEUE,
} from "@ess/store";
import type { Job } from "bullmq";
import type { Redis } from "ioredis";
import type { WorkerLogger } from "./logger.js";

/** How often a worker tries to purge dead letters past their retention; the first try comes soon after start. */
export const PURGE_INTERVAL_MS = 3600_000;
export const FIRST_PURGE_DELAY_MS = 5000;
/** The purge lock outlives a purge; it expires on its own if the worker holding it dies. */
export const PURGE_LOCK_SECONDS = 300;

/** What the dead-letter upkeep needs (a subset of the worker's dependencies). */
export interface DeadLetterUpkeepDeps {
  connection: Redis;
  store: RequestStore;
  queues: CallbackQueues;
  deadLetters: DeadLetters;
  partitions: number[];
  /** how often the failed sets are swept into the dead letters (catches a crash mid-move) */
  sweepIntervalMs: number;
  /** dead letters older than this are purged */
  deadLetterRetentionMs: number;
  log: WorkerLogger;
  /**
   * Schedules the gap check of a request's missing seq. A batch job's callbacks are dead-lettered only
   * after the gap check of each request's lowest seq in it is scheduled: an apply that found that seq
   * missing but marked in flight asked for none (ApplyResult.held).
   */
  gapCheck?: ((requestId: string, missing: number) => Promise<void>) | undefined;
}

/** The worker's side of the dead letters: moving failed jobs in, sweeping, purging past retention. */
export interface DeadLetterUpkeep {
  /** Moves one finally-failed job into the dead letters; a failure is logged and left to the next sweep. */
  deadLetter(p: number, job: Job): Promise<void>;
  /** Moves every finally-failed job (callbacks and webhook deliveries) of the served partitions into the dead letters. */
  sweep(): Promise<number>;
  /** Purges dead letters past their retention (if no other worker holds the purge lock); returns how many. */
  purgeExpired(): Promise<number>;
  /** Starts the periodic sweep and purge. */
  start(): void;
  stop(): void;
}

export function deadLetterUpkeep(deps: DeadLetterUpkeepDeps): DeadLetterUpkeep {
  const { store, queues, deadLetters, log } = deps;

  async function deadLetter(p: number, job: Job): Promise<void> {
    try {
      if (job.name === JOB_BATCH && deps.gapCheck) {
        const batch = callbackBatchJobSchema.safeParse(job.data);
        const lowest = new Map<string, number>();
        for (const cb of batch.success ? batch.data.callbacks : [])
          lowest.set(cb.requestId, Math.min(cb.seq, lowest.get(cb.requestId) ?? cb.seq));
        for (const [requestId, seq] of lowest) await deps.gapCheck(requestId, seq);
      }
      // a batch job becomes a dead letter per callback it had not applied
      for (const entry of await deadLetters.record(p, job)) {
        log.warn(
          { requestId: entry.requestId, seq: entry.seq, reason: entry.reason, attempts: entry.attempts, id: entry.id },
          "job dead-lettered",
        );
      }
    } catch (err) {
      // the job stays in BullMQ's failed set; the next sweep moves it
      log.error({ jobId: job.id, err: (err as Error).message }, "could not dead-letter; will retry on sweep");
    }
  }

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

  let timers: NodeJS.Timeout[] = [];
  const purgeLogged = () => void purgeExpired().catch((err: Error) => log.warn({ err: err.message }, "purge failed"));
  return {
    deadLetter,
    sweep,
    purgeExpired,
    start() {
      timers = [
        setInterval(
          () => void sweep().catch((err: Error) => log.warn({ err: err.message }, "sweep failed")),
          deps.sweepIntervalMs,
        ),
        setInterval(purgeLogged, PURGE_INTERVAL_MS),
        setTimeout(purgeLogged, FIRST_PURGE_DELAY_MS),
      ];
      for (const t of timers) t.unref();
    },
    stop() {
      // clearTimeout clears intervals too
      for (const t of timers) clearTimeout(t);
      timers = [];
    },
  };
}
