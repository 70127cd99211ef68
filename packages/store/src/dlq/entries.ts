import { type CallbackJob, callbackBatchJobSchema } from "@ess/contract";
import type { Job, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { CALLBACK_QUEUE, callbackJobId, DEAD_LETTER_QUEUE, type Keys } from "../keys.js";
import { JOB_BATCH, JOB_CALLBACK } from "../queues.js";
import { fanOut } from "../redis.js";

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
   * keyed by job id): a crash between the two steps is finished by the next sweep. A batch job of the
   * callback queue becomes one dead letter per callback it still carries (see recordCallbacks), each
   * the single callback job it stands for, in its own partition (a batch may span partitions):
   * listed, replayed and purged on its own.
   */
  async record(partition: number, job: FailedJob, now = Date.now()): Promise<DeadLetter[]> {
    const { reason, error } = parseReason(job.failedReason);
    const batch = job.name === JOB_BATCH ? callbackBatchJobSchema.safeParse(job.data) : undefined;
    let entries: DeadLetter[];
    if (batch?.success) {
      const failure = { reason, error, attempts: job.attemptsMade, opts: job.opts, enqueuedAt: job.timestamp };
      entries = await this.recordCallbacks(job.queueName, batch.data.callbacks, failure, now);
    } else {
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
      await this.write(partition, [entry], [], now);
      entries = [entry];
    }
    // already removed by a concurrent sweep: the entries are written either way
    await job.remove().catch(() => {});
    if (!batch?.success) await this.mirror(entries);
    return entries;
  }

  /**
   * Dead-letters callbacks of a batch job, each as the single callback job it stands for in its own
   * partition (id `<partition>.<requestId>-<seq>`, queue `queue` of that partition, name `cb`, the
   * batch's options): those whose in-flight marker is still there, i.e. not applied by the batch (a
   * callback it applied keeps its effect and is left out), and clears those markers in the same step
   * (one step per partition). Safe to repeat. The caller removes the batch job, if any.
   */
  async recordCallbacks(
    queue: string,
    callbacks: readonly CallbackJob[],
    failure: { reason: DeadLetterReason; error: string; attempts: number; opts: object; enqueuedAt: number },
    now = Date.now(),
  ): Promise<DeadLetter[]> {
    const byPartition = new Map<number, CallbackJob[]>();
    for (const cb of callbacks) {
      const p = this.keys.partition(cb.requestId);
      const list = byPartition.get(p);
      if (list) list.push(cb);
      else byPartition.set(p, [cb]);
    }
    const entries: DeadLetter[] = [];
    for (const [partition, cbs] of byPartition) {
      const ids = cbs.map((c) => callbackJobId(c.requestId, c.seq));
      const marked = await this.redis.hmget(this.keys.inflight(partition), ...ids);
      const mine: DeadLetter[] = [];
      cbs.forEach((cb, i) => {
        if (marked[i] === null) return;
        const jobId = ids[i] as string;
        mine.push({
          id: DeadLetterEntries.id(partition, jobId),
          partition,
          queue: queue || CALLBACK_QUEUE,
          jobId,
          name: JOB_CALLBACK,
          requestId: cb.requestId,
          seq: cb.seq,
          status: cb.status,
          reason: failure.reason,
          error: failure.error,
          attempts: failure.attempts,
          payload: cb,
          opts: { ...(failure.opts as Record<string, unknown>), jobId },
          enqueuedAt: failure.enqueuedAt,
          deadAt: now,
        });
      });
      await this.write(
        partition,
        mine,
        mine.map((e) => e.jobId),
        now,
      );
      entries.push(...mine);
    }
    await this.mirror(entries);
    return entries;
  }

  /** Writes entries and their index entries, and clears in-flight markers, in one MULTI (one slot). */
  private async write(partition: number, entries: DeadLetter[], markers: string[], now: number): Promise<void> {
    if (entries.length === 0 && markers.length === 0) return;
    const m = this.redis.multi();
    for (const entry of entries) {
      m.hset(this.keys.deadLetters(partition), entry.id, JSON.stringify(entry));
      for (const key of this.indexKeys(entry)) m.zadd(key, now, entry.id);
    }
    if (markers.length > 0) m.hdel(this.keys.inflight(partition), ...markers);
    const replies = await m.exec();
    const failed = replies?.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  }

  /** The dashboard's view (bull-board shows BullMQ queues); the store is what counts. */
  private async mirror(entries: DeadLetter[]): Promise<void> {
    for (const entry of entries) {
      await this.queueFor(entry.partition, DEAD_LETTER_QUEUE)
        .add(entry.name, entry, { jobId: entry.id, removeOnComplete: true })
        .catch(() => {});
    }
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
    const all = Array.from({ length: this.keys.partitions }, (_, p) => p);
    const replies = await fanOut(all, (p) => this.redis.hlen(this.keys.deadLetters(p)));
    return replies.reduce((sum, [, n]) => sum + Number(n ?? 0), 0);
  }
}
