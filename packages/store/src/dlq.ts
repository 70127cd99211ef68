import { randomBytes } from "node:crypto";
import { EssError } from "@ess/domain";
import type { Job, JobsOptions, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { DEAD_LETTER_QUEUE, type Keys } from "./keys.js";
import { fanOut } from "./redis.js";

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

export interface DeadLetterPage {
  items: DeadLetter[];
  /** pass back as `cursor` for the next page; null at the end */
  nextCursor: string | null;
}

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

type Cursor = [score: number, partition: number, id: string];

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString("base64url");
}

function decodeCursor(raw: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as unknown;
    if (Array.isArray(c) && typeof c[0] === "number" && typeof c[1] === "number" && typeof c[2] === "string") {
      return c as Cursor;
    }
  } catch {
    // fall through
  }
  throw new EssError("INVALID_BODY", "cursor is not one this server issued");
}

const after = (a: Cursor, b: Cursor) => (a[0] !== b[0] ? a[0] > b[0] : a[1] !== b[1] ? a[1] > b[1] : a[2] > b[2]);

/** Options a replayed job keeps from the original (attempts start afresh). */
function replayOptions(opts: Record<string, unknown>, jobId: string): JobsOptions {
  const keep: JobsOptions = { jobId };
  for (const k of ["attempts", "backoff", "removeOnComplete", "removeOnFail", "priority"] as const) {
    if (opts[k] !== undefined) (keep as Record<string, unknown>)[k] = opts[k];
  }
  return keep;
}

/**
 * The dead-letter queue: per partition a hash of entries and sorted-set indexes by time, by request,
 * by status and by reason, so listing stays a few range reads per page at any size.
 */
export class DeadLetters {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /** the queue a dead letter is replayed to */
    private readonly queueFor: (partition: number, queueName: string) => Queue,
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
      id: DeadLetters.id(partition, String(job.id)),
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

  private indexKeys(e: Pick<DeadLetter, "partition" | "requestId" | "status" | "reason">): string[] {
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

  /** The partitions a query touches. */
  private partitionsOf(q: DeadLetterQuery): number[] {
    if (q.requestId) return [this.keys.partition(q.requestId)];
    if (q.partition !== undefined) return [q.partition];
    return Array.from({ length: this.keys.partitions }, (_, i) => i);
  }

  /** The most selective index for a query in partition p. */
  private indexFor(p: number, q: DeadLetterQuery): string {
    if (q.requestId) return this.keys.deadLetterIndex(p, { field: "req", value: q.requestId });
    if (q.status) return this.keys.deadLetterIndex(p, { field: "status", value: q.status });
    if (q.reason) return this.keys.deadLetterIndex(p, { field: "reason", value: q.reason });
    return this.keys.deadLetterIndex(p);
  }

  private matches(e: DeadLetter, q: DeadLetterQuery): boolean {
    return (
      (q.requestId === undefined || e.requestId === q.requestId) &&
      (q.status === undefined || e.status === q.status) &&
      (q.reason === undefined || e.reason === q.reason) &&
      (q.partition === undefined || e.partition === q.partition)
    );
  }

  /** Dead letters oldest first, filtered, one page after `cursor`. A few range reads per page at any size. */
  async list(q: DeadLetterQuery, opts: { limit?: number; cursor?: string | undefined } = {}): Promise<DeadLetterPage> {
    const limit = Math.min(Math.max(opts.limit ?? 100, 1), 1000);
    let cursor: Cursor | null = opts.cursor ? decodeCursor(opts.cursor) : null;
    const min = q.from ?? 0;
    const max = q.to ?? Number.MAX_SAFE_INTEGER;
    const fetchSize = limit + 64; // 64: room for entries that share the cursor's millisecond
    const parts = this.partitionsOf(q);
    const items: DeadLetter[] = [];
    for (let round = 0; round < 100; round++) {
      const at = cursor;
      const replies = await fanOut(parts, (p) => {
        // order is (score, partition, id): a lower partition's entries at the cursor's score came before
        const lo = at && at[0] >= min ? (p < at[1] ? `(${at[0]}` : `${at[0]}`) : `${min}`;
        return this.redis.zrangebyscore(this.indexFor(p, q), lo, max, "WITHSCORES", "LIMIT", 0, fetchSize);
      });
      const candidates: Cursor[] = [];
      let bound: Cursor | null = null; // past the end of a partial read, order is unknown
      replies.forEach(([err, flat], i) => {
        if (err) throw err;
        const list = flat as string[];
        const p = parts[i] ?? 0;
        for (let j = 0; j < list.length; j += 2) {
          const c: Cursor = [Number(list[j + 1]), p, list[j] ?? ""];
          if (!cursor || after(c, cursor)) candidates.push(c);
        }
        if (list.length / 2 >= fetchSize) {
          const last: Cursor = [Number(list[list.length - 1]), p, list[list.length - 2] ?? ""];
          if (!bound || after(bound, last)) bound = last;
        }
      });
      candidates.sort((a, b) => (after(a, b) ? 1 : after(b, a) ? -1 : 0));
      const safe = bound ? candidates.filter((c) => !after(c, bound as Cursor)) : candidates;
      if (safe.length === 0) {
        if (!bound) return { items, nextCursor: null };
        cursor = bound;
        continue;
      }
      const take = safe.slice(0, limit - items.length);
      const rows = await fanOut(take, (c) => this.redis.hget(this.keys.deadLetters(c[1]), c[2]));
      take.forEach((_, i) => {
        const raw = rows[i]?.[1] as string | null | undefined;
        if (!raw) return;
        const e = JSON.parse(raw) as DeadLetter;
        if (this.matches(e, q)) items.push(e);
      });
      cursor = take[take.length - 1] ?? cursor;
      const more = bound !== null || candidates.length > take.length;
      if (!more) return { items, nextCursor: null };
      if (items.length >= limit) return { items, nextCursor: cursor ? encodeCursor(cursor) : null };
    }
    return { items, nextCursor: cursor ? encodeCursor(cursor) : null };
  }

  /** Entries matching a query (ZCOUNT on the chosen index: exact unless a second filter narrows it). */
  async countMatching(q: DeadLetterQuery): Promise<number> {
    const replies = await fanOut(this.partitionsOf(q), (p) =>
      this.redis.zcount(this.indexFor(p, q), q.from ?? 0, q.to ?? Number.MAX_SAFE_INTEGER),
    );
    return replies.reduce((sum, [, n]) => sum + Number(n ?? 0), 0);
  }

  /**
   * Re-enqueues a dead letter exactly as it was first enqueued (same job id, data and options, fresh
   * attempts), then removes it. The apply script makes a replay of an applied callback a no-op.
   */
  async replay(id: string): Promise<"replayed" | "not-found"> {
    const entry = await this.get(id);
    if (!entry) return "not-found";
    await this.queueFor(entry.partition, entry.queue).add(
      entry.name,
      entry.payload,
      replayOptions(entry.opts, entry.jobId),
    );
    await this.remove(id);
    return "replayed";
  }

  /** Deletes dead letters matching a query (in pages); returns how many. */
  async purgeMatching(q: DeadLetterQuery): Promise<number> {
    let n = 0;
    for (;;) {
      const page = await this.list(q, { limit: 500 });
      for (const e of page.items) if (await this.remove(e.id)) n++;
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
      total: await this.countMatching({ ...filter, to: upTo }),
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
    await this.redis.expire(this.keys.replayOp(id), 7 * 86400);
    await opsQueue.add(
      "replay",
      { opId: id },
      {
        jobId: `replay-${id}`,
        attempts: 20,
        backoff: { type: "exponential", delay: 1000 },
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

  /**
   * Runs a bulk replay (in a worker, as a BullMQ job, so a crash resumes it elsewhere): batches of
   * `rate` entries a second, progress in Redis, stops when cancelled.
   */
  async runReplay(
    id: string,
    sleep = (ms: number) => new Promise((r) => setTimeout(r, ms)),
  ): Promise<ReplayOperation | null> {
    for (;;) {
      const op = await this.getReplay(id);
      if (!op || op.state === "done" || op.state === "cancelled" || op.state === "failed") return op;
      const key = this.keys.replayOp(id);
      if (op.state === "cancelling") {
        await this.redis.hset(key, "state", "cancelled", "updatedAt", Date.now());
        return this.getReplay(id);
      }
      const started = Date.now();
      const page = await this.list(op.filter, { limit: Math.max(1, Math.min(op.rate, 1000)) });
      if (page.items.length === 0) {
        await this.redis.hset(key, "state", "done", "updatedAt", Date.now());
        return this.getReplay(id);
      }
      let n = 0;
      for (const e of page.items) if ((await this.replay(e.id)) === "replayed") n++;
      await this.redis.multi().hincrby(key, "replayed", n).hset(key, "updatedAt", Date.now()).exec();
      // rate limit: one batch of `rate` entries per second, so replays never starve live callbacks
      const wait = 1000 - (Date.now() - started);
      if (wait > 0) await sleep(wait);
    }
  }
}
