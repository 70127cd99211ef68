import type { Job, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { DEAD_LETTER_QUEUE, type Keys } from "../keys.js";

/** Why a job ended in the dead-letter queue. */
export const DEAD_LETTER_REASONS = [
  "invalid-payload",
  "request-gone",
  "permanent-error",
  "attempts-exhausted",
] as const;
export type DeadLetterReason = (typeof DEAD_LETTER_REASONS)[number];

/** A job that could not be applied, with everything needed to understand and replay it. */
export interface DeadLetter {
  /** `<partition>.<jobId>` */
  id: string;
  partition: number;
  /** the BullMQ queue it came from (and is replayed to) */
  queue: string;
  jobId: string;
  /** job name (`cb` for a callback) */
  name: string;
  requestId: string | null;
  seq: number | null;
  status: string | null;
  reason: DeadLetterReason;
  /** the last error's message */
  error: string;
  attempts: number;
  /** the original job data, as enqueued */
  payload: unknown;
  /** the original job options, for the replay */
  opts: Record<string, unknown>;
  enqueuedAt: number;
  deadAt: number;
}

/** Filters of a listing; every field optional. Times in ms since the epoch. */
export interface DeadLetterQuery {
  partition?: number | undefined;
  requestId?: string | undefined;
  status?: string | undefined;
  reason?: DeadLetterReason | undefined;
  from?: number | undefined;
  to?: number | undefined;
}

/** What record() needs of a failed BullMQ job. */
export type FailedJob = Pick<
  Job,
  "id" | "name" | "data" | "opts" | "failedReason" | "attemptsMade" | "timestamp" | "queueName"
> & {
  remove(): Promise<void>;
};

const REASON_PREFIX = /^\[([a-z-]+)\] /;

/** The message a worker throws to dead-letter a job with a reason: `[reason] message`. */
export function reasonMessage(reason: DeadLetterReason, message: string): string {
  return `[${reason}] ${message}`;
}

function parseReason(failedReason: string | undefined): { reason: DeadLetterReason; error: string } {
  const text = failedReason ?? "unknown error";
  const m = REASON_PREFIX.exec(text);
  const reason = m?.[1] as DeadLetterReason | undefined;
  if (reason && (DEAD_LETTER_REASONS as readonly string[]).includes(reason)) {
    return { reason, error: text.slice(m?.[0].length ?? 0) };
  }
  return { reason: "attempts-exhausted", error: text };
}

/** The queue a dead letter of a partition is replayed to (and the dashboard's mirror queue). */
export type QueueFor = (partition: number, queueName: string) => Queue;

/**
 * The dead letters as stored: per partition a hash of entries (id → JSON) and sorted-set indexes by
 * time, by request, by status and by reason (score = ms when dead-lettered), kept in step here.
 */
export class DeadLetterEntries {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly queueFor: QueueFor,
  ) {}

  /** Dead-letter id of a job of partition p. */
  static id(partition: number, jobId: string): string {
    return `${partition}.${jobId}`;
  }
  /**
   * Records a failed BullMQ job as a dead letter, then removes the job. Safe to repeat (the entry is
   * keyed by job id): a crash between the two steps is finished by the next sweep.
   */
  async record(partition: number, job: FailedJob, now = Date.now()): Promise<DeadLetter> {
    const { reason, error } = parseReason(job.failedReason);
    const data = (job.data ?? {}) as Record<string, unknown>;
    const entry: DeadLetter = {
      id: DeadLetterEntries.id(partition, String(job.id)),
      partition,
      queue: job.queueName,
      jobId: String(job.id),
      name: job.name,
      requestId: typeof data.requestId === "string" ? data.requestId : null,
      seq: typeof data.seq === "number" ? data.seq : null,
      status: typeof data.status === "string" ? data.status : null,
      reason,
      error,
      attempts: job.attemptsMade,
      payload: job.data,
      opts: { ...(job.opts as Record<string, unknown>) },
      enqueuedAt: job.timestamp,
      deadAt: now,
    };
    const m = this.redis.multi().hset(this.keys.deadLetters(partition), entry.id, JSON.stringify(entry));
    for (const key of this.indexKeys(entry)) m.zadd(key, now, entry.id);
    const replies = await m.exec();
    const failed = replies?.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
    // already removed by a concurrent sweep: the entry is written either way
    await job.remove().catch(() => {});
    // the dashboard's view (bull-board shows BullMQ queues); the store above is what counts
    await this.queueFor(partition, DEAD_LETTER_QUEUE)
      .add(entry.name, entry, { jobId: entry.id, removeOnComplete: true })
      .catch(() => {});
    return entry;
  }

  /** The index keys an entry is listed under. */
  indexKeys(e: Pick<DeadLetter, "partition" | "requestId" | "status" | "reason">): string[] {
    const keys = [
      this.keys.deadLetterIndex(e.partition),
      this.keys.deadLetterIndex(e.partition, { field: "reason", value: e.reason }),
    ];
    if (e.requestId) keys.push(this.keys.deadLetterIndex(e.partition, { field: "req", value: e.requestId }));
    if (e.status) keys.push(this.keys.deadLetterIndex(e.partition, { field: "status", value: e.status }));
    return keys;
  }

  /** One dead letter by id, or null. */
  async get(id: string): Promise<DeadLetter | null> {
    const p = Number(id.split(".", 1)[0]);
    if (!Number.isInteger(p) || p < 0 || p >= this.keys.partitions) return null;
    const raw = await this.redis.hget(this.keys.deadLetters(p), id);
    return raw ? (JSON.parse(raw) as DeadLetter) : null;
  }

  /** Removes one dead letter and its index entries; false when it was not there. */
  async remove(id: string): Promise<boolean> {
    const entry = await this.get(id);
    if (!entry) return false;
    const m = this.redis.multi().hdel(this.keys.deadLetters(entry.partition), id);
    for (const key of this.indexKeys(entry)) m.zrem(key, id);
    await m.exec();
    await this.queueFor(entry.partition, DEAD_LETTER_QUEUE)
      .remove(id)
      .catch(() => 0);
    return true;
  }

  /** Number of dead letters in all partitions. */
  async count(): Promise<number> {
    const m = this.redis.multi();
    for (let p = 0; p < this.keys.partitions; p++) m.hlen(this.keys.deadLetters(p));
    const replies = (await m.exec()) ?? [];
    return replies.reduce((sum, [, n]) => sum + Number(n ?? 0), 0);
  }
}
