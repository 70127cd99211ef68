import { randomBytes } from "node:crypto";
import { EssError } from "@ess/domain";
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { REPLY } from "../codes.js";
import type { Keys } from "../keys.js";
import { defineScripts, type ScriptedRedis } from "../scripts.js";
import type { DeadLetterQuery } from "./entries.js";
import type { DeadLetterQueries } from "./query.js";

/** What a bulk action does to each dead letter it covers. */
export const BULK_KINDS = ["replay", "purge"] as const;
export type BulkKind = (typeof BULK_KINDS)[number];

/**
 * A bulk action's life: `estimated` (created, counted, waiting for the typed confirmation) →
 * `running` (confirmed: its ids are snapshotted and a worker works through them) → `done`; or
 * `aborting` → `aborted` when an operator stops it (an `estimated` one is aborted at once); `failed`
 * when the worker gave up.
 */
export const BULK_STATES = ["estimated", "running", "aborting", "aborted", "done", "failed"] as const;
export type BulkState = (typeof BULK_STATES)[number];

/** The filter a bulk action covers: the dead-letter listing's filter. */
export type DeadLetterFilter = DeadLetterQuery;

/** A bulk dead-letter action as the console shows it. */
export interface BulkAction {
  id: string;
  kind: BulkKind;
  /** the filter as the server snapshotted it at creation (its `to` bounded by the creation time) */
  filter: DeadLetterFilter;
  /** how many dead letters the filter matched (at creation; refreshed by a refused confirmation) */
  estimate: number;
  state: BulkState;
  /** ids worked through so far (of `estimate`, once running) */
  processed: number;
  /** ids replayed or purged */
  succeeded: number;
  /** ids that were no longer there, or failed */
  failed: number;
  /** per-id results by label: replayed, purged, not-found, error */
  results: Record<string, number>;
  /** who created it */
  createdBy: string;
  createdAt: number;
  /** entries per second the worker works through (set at confirmation) */
  rate?: number;
  /** who confirmed (or aborted before confirmation) */
  actor?: string;
  /** the reason given at confirmation */
  reason?: string;
  startedAt?: number;
  finishedAt?: number;
  /** who aborted it, and why */
  abortedBy?: string;
  abortReason?: string;
  /** the worker's failure message */
  error?: string;
}

/** How long a bulk action's record (and id snapshot) stays readable. */
export const BULK_RECORD_TTL_SECONDS = 7 * 86400;
/** Bulk actions listed at most (the newest). */
export const BULK_LIST_LIMIT = 200;
/** Most dead letters one bulk action may cover: the id snapshot stays a bounded list. */
export const BULK_MAX_ENTRIES = 1_000_000;
/** Attempts of a bulk action's ops job: a worker that dies mid-way hands it to another, which resumes it. */
const BULK_JOB_ATTEMPTS = 20;
const BULK_JOB_BACKOFF_MS = 1000;
/** Page size of the snapshot reads. */
const SNAPSHOT_PAGE = 1000;

/** The ops queue's job name of a bulk action (the job data: `{ bulkId }`). */
export const BULK_JOB_NAME = "bulk";

const TERMINAL: readonly BulkState[] = ["aborted", "done", "failed"];

/** True once a bulk action can change no more. */
export function isBulkFinished(state: BulkState): boolean {
  return TERMINAL.includes(state);
}

/**
 * The records of bulk dead-letter actions (on the ops hash tag): created with a server-side estimate
 * and filter snapshot, confirmed with the typed count (which snapshots the matching ids), run by a
 * worker over exactly that id list, aborted by an operator.
 *
 * Exactly what the filter matched, no more, no less: at creation the filter's `to` is bounded by the
 * creation time, so dead letters recorded later never match it; at confirmation the matching ids are
 * listed and stored, and the confirmation is refused when their number is not the estimate the
 * operator typed (someone replayed or purged some meanwhile); the worker then touches those ids
 * only, each once, and never re-reads the filter.
 */
export class BulkActions {
  private readonly redis: ScriptedRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly queries: DeadLetterQueries,
  ) {
    this.redis = defineScripts(redis);
  }

  /** The ids matching a filter, oldest first (every page of the listing). */
  async matchingIds(filter: DeadLetterFilter): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await this.queries.list(filter, { limit: SNAPSHOT_PAGE, cursor });
      for (const e of page.items) ids.push(e.id);
      if (ids.length > BULK_MAX_ENTRIES) {
        throw new EssError("INVALID_BODY", `the filter matches more than ${BULK_MAX_ENTRIES} dead letters: narrow it`);
      }
      if (!page.nextCursor) return ids;
      cursor = page.nextCursor;
    }
  }

  /** Creates a bulk action in state `estimated`: the filter snapshotted (bounded by now) and its match counted. */
  async create(kind: BulkKind, filter: DeadLetterFilter, createdBy: string, now = Date.now()): Promise<BulkAction> {
    const id = randomBytes(8).toString("hex");
    const snapshot: DeadLetterFilter = { ...stripUndefined(filter), to: Math.min(filter.to ?? now, now) };
    const estimate = (await this.matchingIds(snapshot)).length;
    const key = this.keys.bulkAction(id);
    await this.redis
      .multi()
      .hset(key, {
        kind,
        filter: JSON.stringify(snapshot),
        estimate,
        state: "estimated",
        processed: 0,
        succeeded: 0,
        failed: 0,
        createdBy,
        createdAt: now,
      })
      .expire(key, BULK_RECORD_TTL_SECONDS)
      .zadd(this.keys.bulkActions(), now, id)
      .zremrangebyscore(this.keys.bulkActions(), "-inf", now - BULK_RECORD_TTL_SECONDS * 1000)
      .zremrangebyrank(this.keys.bulkActions(), 0, -(BULK_LIST_LIMIT + 1))
      .exec();
    return (await this.get(id)) as BulkAction;
  }

  /**
   * Confirms an `estimated` action: lists the ids its snapshotted filter matches now; when their
   * number is not `typedCount` (the estimate the operator typed) it refuses (and, when the match
   * changed, stores the new estimate so the operator can confirm that). Else it stores the ids, moves
   * to `running` and hands the action to the ops queue. One confirmation wins a race.
   */
  async confirm(
    id: string,
    typedCount: number,
    by: { actor: string; reason: string },
    opsQueue: Queue,
    rate: number,
    now = Date.now(),
  ): Promise<BulkAction> {
    const op = await this.require(id);
    if (op.state !== "estimated") {
      throw new EssError("ACTION_CONFLICT", `bulk action ${id} is ${op.state}: only an estimated action is confirmed`);
    }
    if (typedCount !== op.estimate) {
      throw new EssError(
        "INVALID_BODY",
        `the typed count ${typedCount} is not the estimate ${op.estimate}: type the count the action covers`,
      );
    }
    const ids = await this.matchingIds(op.filter);
    const key = this.keys.bulkAction(id);
    if (ids.length !== op.estimate) {
      await this.redis.hset(key, "estimate", ids.length);
      throw new EssError(
        "ACTION_CONFLICT",
        `the filter matches ${ids.length} dead letters now, not ${op.estimate}: confirm again with the new count`,
      );
    }
    // the snapshot is staged under a key of its own and put in place by the same script that moves
    // the state, so a concurrent confirmation or abort cannot interleave with it
    const staged = this.keys.bulkActionStaged(id, randomBytes(6).toString("hex"));
    for (let i = 0; i < ids.length; i += SNAPSHOT_PAGE) {
      await this.redis.rpush(staged, ...ids.slice(i, i + SNAPSHOT_PAGE));
    }
    if (ids.length > 0) await this.redis.expire(staged, 3600);
    await this.transition(
      id,
      ["estimated"],
      {
        state: "running",
        actor: by.actor,
        reason: by.reason,
        startedAt: now,
        rate: Math.max(1, Math.floor(rate)),
      },
      staged,
    );
    await opsQueue.add(
      BULK_JOB_NAME,
      { bulkId: id },
      {
        jobId: `bulk-${id}`,
        attempts: BULK_JOB_ATTEMPTS,
        backoff: { type: "exponential", delay: BULK_JOB_BACKOFF_MS },
        removeOnComplete: true,
        removeOnFail: false,
      },
    );
    return (await this.get(id)) as BulkAction;
  }

  /**
   * Moves an action from one of `from` to the state in `fields`, atomically (bulkTransition-3);
   * ACTION_CONFLICT when it is in another state, ROUTE_NOT_FOUND when it is gone.
   */
  private async transition(
    id: string,
    from: readonly BulkState[],
    fields: Record<string, string | number>,
    staged?: string,
  ): Promise<void> {
    const reply = await (this.redis as ScriptedRedis).ess_bulkTransition(
      this.keys.bulkAction(id),
      staged ?? this.keys.bulkActionStaged(id, "none"),
      this.keys.bulkActionIds(id),
      from.join(","),
      BULK_RECORD_TTL_SECONDS,
      ...Object.entries(fields).flat(),
    );
    const code = Number(reply[0]);
    if (code === REPLY.NOT_FOUND) throw new EssError("ROUTE_NOT_FOUND", `no bulk action ${id.slice(0, 40)}`);
    if (code !== REPLY.CREATED) {
      throw new EssError(
        "ACTION_CONFLICT",
        `bulk action ${id} is ${String(reply[1])}: this needs it ${from.join(" or ")}`,
      );
    }
  }

  /** Aborts an action: an estimated one at once, a running one after the worker's current batch. */
  async abort(id: string, by: { actor: string; reason: string }, now = Date.now()): Promise<BulkAction> {
    const op = await this.require(id);
    const who = { abortedBy: by.actor, abortReason: by.reason };
    if (op.state === "estimated") {
      await this.transition(id, ["estimated"], { state: "aborted", ...who, finishedAt: now });
    } else {
      await this.transition(id, ["running"], { state: "aborting", ...who });
    }
    return (await this.get(id)) as BulkAction;
  }

  /** One bulk action, or undefined. */
  async get(id: string): Promise<BulkAction | undefined> {
    if (!/^[0-9a-f]{16}$/.test(id)) return undefined;
    const h = await this.redis.hgetall(this.keys.bulkAction(id));
    if (!h.state) return undefined;
    const results: Record<string, number> = {};
    for (const [k, v] of Object.entries(h)) if (k.startsWith("r:")) results[k.slice(2)] = Number(v);
    const opt = <K extends string>(k: K, v: string | undefined) => (v === undefined ? {} : { [k]: v });
    const num = <K extends string>(k: K, v: string | undefined) => (v === undefined ? {} : { [k]: Number(v) });
    return {
      id,
      kind: h.kind as BulkKind,
      filter: JSON.parse(h.filter ?? "{}") as DeadLetterFilter,
      estimate: Number(h.estimate),
      state: h.state as BulkState,
      processed: Number(h.processed ?? 0),
      succeeded: Number(h.succeeded ?? 0),
      failed: Number(h.failed ?? 0),
      results,
      createdBy: h.createdBy ?? "",
      createdAt: Number(h.createdAt),
      ...num("rate", h.rate),
      ...opt("actor", h.actor),
      ...opt("reason", h.reason),
      ...num("startedAt", h.startedAt),
      ...num("finishedAt", h.finishedAt),
      ...opt("abortedBy", h.abortedBy),
      ...opt("abortReason", h.abortReason),
      ...opt("error", h.error),
    };
  }

  /** The newest bulk actions first (those still retained). */
  async list(limit = BULK_LIST_LIMIT): Promise<BulkAction[]> {
    const ids = await this.redis.zrevrange(this.keys.bulkActions(), 0, Math.max(1, limit) - 1);
    const out: BulkAction[] = [];
    for (const id of ids) {
      const op = await this.get(id);
      if (op) out.push(op);
    }
    return out;
  }

  /** The worker's next ids: `count` of the snapshot from position `from`. */
  snapshotIds(id: string, from: number, count: number): Promise<string[]> {
    return this.redis.lrange(this.keys.bulkActionIds(id), from, from + count - 1);
  }

  /** Counts one id worked through, with its result label (replayed, purged, not-found, error). */
  async addResult(id: string, result: string, succeeded: boolean): Promise<void> {
    const key = this.keys.bulkAction(id);
    await this.redis
      .multi()
      .hincrby(key, "processed", 1)
      .hincrby(key, succeeded ? "succeeded" : "failed", 1)
      .hincrby(key, `r:${result}`, 1)
      .exec();
  }

  /** Ends a running (or aborting) action: done, aborted, failed. */
  async finish(id: string, state: "done" | "aborted" | "failed", error?: string, now = Date.now()): Promise<void> {
    await this.transition(id, ["running", "aborting"], {
      state,
      finishedAt: now,
      ...(error === undefined ? {} : { error: error.slice(0, 500) }),
    });
  }

  private async require(id: string): Promise<BulkAction> {
    const op = await this.get(id);
    if (!op) throw new EssError("ROUTE_NOT_FOUND", `no bulk action ${id.slice(0, 40)}`);
    return op;
  }
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
