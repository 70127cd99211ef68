import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { BulkActions } from "./dlq/bulk.js";
import {
  type DeadLetter,
  DeadLetterEntries,
  type DeadLetterQuery,
  type FailedJob,
  type QueueFor,
} from "./dlq/entries.js";
import { type DeadLetterPage, DeadLetterQueries } from "./dlq/query.js";
import { DeadLetterReplays, type ReplayOperation } from "./dlq/replay.js";
import type { Keys } from "./keys.js";

export * from "./dlq/bulk.js";
export * from "./dlq/entries.js";
export * from "./dlq/query.js";
export * from "./dlq/replay.js";

/** Runs around each replay by id (a tracing span); absent: the replay runs as it is. */
export type AroundReplay = (
  id: string,
  replay: () => Promise<"replayed" | "not-found">,
) => Promise<"replayed" | "not-found">;

/**
 * The dead-letter queue as its callers see it: the stored entries and their indexes
 * (dlq/entries.ts), filtered paged reads (dlq/query.ts), and replays (dlq/replay.ts). The bulk
 * replay's loop runs in the worker.
 */
export class DeadLetters {
  readonly entries: DeadLetterEntries;
  readonly queries: DeadLetterQueries;
  readonly replays: DeadLetterReplays;
  /** the operator console's bulk actions (estimate, confirm with the typed count, run, abort) */
  readonly bulk: BulkActions;

  constructor(
    redis: Redis,
    keys: Keys,
    /** the queue a dead letter is replayed to */
    queueFor: QueueFor,
    private readonly aroundReplay?: AroundReplay,
  ) {
    this.entries = new DeadLetterEntries(redis, keys, queueFor);
    this.queries = new DeadLetterQueries(redis, keys);
    this.replays = new DeadLetterReplays(redis, keys, queueFor, this.entries, this.queries);
    this.bulk = new BulkActions(redis, keys, this.queries);
  }

  /** Dead-letter id of a job of partition p. */
  static id(partition: number, jobId: string): string {
    return DeadLetterEntries.id(partition, jobId);
  }

  /** Records a failed BullMQ job as a dead letter, then removes the job (safe to repeat). */
  record(partition: number, job: FailedJob, now = Date.now()): Promise<DeadLetter> {
    return this.entries.record(partition, job, now);
  }

  /** One dead letter by id, or null. */
  get(id: string): Promise<DeadLetter | null> {
    return this.entries.get(id);
  }

  /** Removes one dead letter and its index entries; false when it was not there. */
  remove(id: string): Promise<boolean> {
    return this.entries.remove(id);
  }

  /** Number of dead letters in all partitions. */
  count(): Promise<number> {
    return this.entries.count();
  }

  /** Dead letters oldest first, filtered, one page after `cursor`. */
  list(q: DeadLetterQuery, opts: { limit?: number; cursor?: string | undefined } = {}): Promise<DeadLetterPage> {
    return this.queries.list(q, opts);
  }

  /** Entries matching a query (exact unless a second filter narrows it). */
  countMatching(q: DeadLetterQuery): Promise<number> {
    return this.queries.countMatching(q);
  }

  /** Re-enqueues a dead letter exactly as it was first enqueued, then removes it. */
  replay(id: string): Promise<"replayed" | "not-found"> {
    const replay = () => this.replays.replay(id);
    return this.aroundReplay ? this.aroundReplay(id, replay) : replay();
  }

  /** Deletes dead letters matching a query (in pages); returns how many. */
  purgeMatching(q: DeadLetterQuery): Promise<number> {
    return this.replays.purgeMatching(q);
  }

  /** Starts a bulk replay of everything matching `filter`, at `rate` entries per second. */
  startReplay(filter: DeadLetterQuery, rate: number, opsQueue: Queue, now = Date.now()): Promise<ReplayOperation> {
    return this.replays.startReplay(filter, rate, opsQueue, now);
  }

  /** A bulk replay's progress, or null. */
  getReplay(id: string): Promise<ReplayOperation | null> {
    return this.replays.getReplay(id);
  }

  /** Asks a running bulk replay to stop after its current batch. */
  cancelReplay(id: string): Promise<ReplayOperation | null> {
    return this.replays.cancelReplay(id);
  }
}
