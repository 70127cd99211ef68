import { randomBytes } from "node:crypto";
import type { JobsOptions, Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Keys } from "../keys.js";
import type { DeadLetterEntries, DeadLetterQuery, QueueFor } from "./entries.js";
import type { DeadLetterQueries } from "./query.js";

/** Progress of a bulk replay. */
export interface ReplayOperation {
  id: string;
  state: "running" | "cancelling" | "cancelled" | "done" | "failed";
  filter: DeadLetterQuery;
  /** entries per second */
  rate: number;
  /** matching entries when the operation started (entries dead-lettered later are not replayed) */
  total: number;
  replayed: number;
  createdAt: number;
  updatedAt: number;
  error?: string;
}

/** How long a bulk replay's progress record stays readable after it starts. */
export const REPLAY_RECORD_TTL_SECONDS = 7 * 86400;
/** Attempts of a bulk replay's ops job: a worker that dies mid-replay hands it to another, which resumes it. */
export const REPLAY_JOB_ATTEMPTS = 20;
/** First wait between two attempts of a bulk replay's ops job (doubling). */
const REPLAY_JOB_BACKOFF_MS = 1000;
/** Dead letters deleted per page by purgeMatching. */
const PURGE_PAGE_SIZE = 500;

/** Options a replayed job keeps from the original (attempts start afresh). */
function replayOptions(opts: Record<string, unknown>, jobId: string): JobsOptions {
  const keep: JobsOptions = { jobId };
  for (const k of ["attempts", "backoff", "removeOnComplete", "removeOnFail", "priority"] as const) {
    if (opts[k] !== undefined) (keep as Record<string, unknown>)[k] = opts[k];
  }
  return keep;
}

/**
 * Replays and purges: one dead letter back to its queue, and the records of bulk replays (started
 * here, run by a worker, read and cancelled by operators).
 */
export class DeadLetterReplays {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly queueFor: QueueFor,
    private readonly entries: DeadLetterEntries,
    private readonly queries: DeadLetterQueries,
  ) {}

  /**
   * Re-enqueues a dead letter exactly as it was first enqueued (same job id, data and options, fresh
   * attempts), then removes it. The apply script makes a replay of an applied callback a no-op.
   */
  async replay(id: string): Promise<"replayed" | "not-found"> {
    const entry = await this.entries.get(id);
    if (!entry) return "not-found";
    await this.queueFor(entry.partition, entry.queue).add(
      entry.name,
      entry.payload,
      replayOptions(entry.opts, entry.jobId),
    );
    await this.entries.remove(id);
    return "replayed";
  }

  /** Deletes dead letters matching a query (in pages); returns how many. */
  async purgeMatching(q: DeadLetterQuery): Promise<number> {
    let n = 0;
    for (;;) {
      const page = await this.queries.list(q, { limit: PURGE_PAGE_SIZE });
      for (const e of page.items) if (await this.entries.remove(e.id)) n++;
      if (page.items.length === 0 || !page.nextCursor) return n;
    }
  }

  /** Starts a bulk replay of everything matching `filter`, at `rate` entries per second. */
  async startReplay(
    filter: DeadLetterQuery,
    rate: number,
    opsQueue: Queue,
    now = Date.now(),
  ): Promise<ReplayOperation> {
    const id = randomBytes(8).toString("hex");
    const upTo = Math.min(filter.to ?? now, now);
    const op: ReplayOperation = {
      id,
      state: "running",
      filter: { ...filter, to: upTo },
      rate,
      total: await this.queries.countMatching({ ...filter, to: upTo }),
      replayed: 0,
      createdAt: now,
      updatedAt: now,
    };
    await this.redis.hset(this.keys.replayOp(id), {
      state: op.state,
      filter: JSON.stringify(op.filter),
      rate,
      total: op.total,
      replayed: 0,
      createdAt: now,
      updatedAt: now,
    });
    await this.redis.expire(this.keys.replayOp(id), REPLAY_RECORD_TTL_SECONDS);
    await opsQueue.add(
      "replay",
      { opId: id },
      {
        jobId: `replay-${id}`,
        attempts: REPLAY_JOB_ATTEMPTS,
        backoff: { type: "exponential", delay: REPLAY_JOB_BACKOFF_MS },
        removeOnComplete: true,
        removeOnFail: false,
      },
    );
    return op;
  }

  /** A bulk replay's progress, or null. */
  async getReplay(id: string): Promise<ReplayOperation | null> {
    const h = await this.redis.hgetall(this.keys.replayOp(id));
    if (!h.state) return null;
    return {
      id,
      state: h.state as ReplayOperation["state"],
      filter: JSON.parse(h.filter ?? "{}") as DeadLetterQuery,
      rate: Number(h.rate),
      total: Number(h.total),
      replayed: Number(h.replayed),
      createdAt: Number(h.createdAt),
      updatedAt: Number(h.updatedAt),
      ...(h.error ? { error: h.error } : {}),
    };
  }

  /** Asks a running bulk replay to stop after its current batch. */
  async cancelReplay(id: string): Promise<ReplayOperation | null> {
    const op = await this.getReplay(id);
    if (!op) return null;
    if (op.state === "running")
      await this.redis.hset(this.keys.replayOp(id), "state", "cancelling", "updatedAt", Date.now());
    return this.getReplay(id);
  }

  /** Sets a bulk replay's state (the worker's loop: done, cancelled). */
  async setReplayState(id: string, state: ReplayOperation["state"]): Promise<void> {
    await this.redis.hset(this.keys.replayOp(id), "state", state, "updatedAt", Date.now());
  }

  /** Adds `n` entries to a bulk replay's progress. */
  async addReplayed(id: string, n: number): Promise<void> {
    const key = this.keys.replayOp(id);
    await this.redis.multi().hincrby(key, "replayed", n).hset(key, "updatedAt", Date.now()).exec();
  }
}
