import type { RequestState } from "@ess/domain";
import type { Redis } from "ioredis";
import { decodeReply } from "./codes.js";
import { isCluster } from "./redis.js";
import type { Reply, ScriptedRedis } from "./scripts.js";
import type { RequestStore } from "./store.js";

/** Outcome of a cancel: the state the request left and the state it is now in. */
export interface CancelResult {
  from: RequestState;
  to: "CANCELLED" | "CANCELLING";
}

/** Who took an action in the operator console, and why: recorded in the request's history. */
export interface OperatorNote {
  /** e.g. "cancel", "forceCancel", "rearm", "replayDeadLetters" */
  action: string;
  actor: string;
  reason: string;
}

/** What a passed requestTimeout does (TIMEOUT_POLICY). */
export type TimeoutPolicy = "mark" | "error";

/** What one sweep call did on one partition. */
export interface SweepResult {
  timedOut: number;
  rescheduled: number;
  dropped: number;
  /** due members remain (the call hit its limit) */
  more: boolean;
  /** expired terminal requests taken out of the request index */
  pruned: number;
}

/** One entry of a partition's event stream: its stream id and its fields. */
export interface StreamEvent {
  partition: number;
  id: string;
  fields: Record<string, string>;
}

/** Requests handled by one sweep call at most: keeps each script call short. */
const SWEEP_BATCH = 200;

function fieldsOf(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

/**
 * The scheduler side's Redis operations: cancel, forceCancel, timeouts, subscriptions and event
 * reads. Every state change is one Lua script on the request's keys (with history entry and event).
 */
export class SchedulerStore {
  constructor(readonly store: RequestStore) {}

  private async cancelScript(
    requestId: string,
    op: "cancel" | "force",
    quietMs: number,
    now: number,
    operator: OperatorNote | undefined,
  ) {
    const { keys, limits, redis } = this.store;
    const p = keys.partition(requestId);
    return redis.ess_cancel(
      ...keys.stateKeys(p, requestId),
      op,
      now,
      limits.historyLimit,
      limits.eventsMaxLen,
      limits.retentionSeconds,
      quietMs,
      requestId,
      operator ? JSON.stringify(operator) : "",
    );
  }

  /** ESS cancel: WAIT/READY/BLOCKED/HOLD → CANCELLED, RUNNING/COMPLETED → CANCELLING (CANCEL_RULES). */
  async cancel(requestId: string, now = Date.now(), operator?: OperatorNote): Promise<CancelResult> {
    const reply = await this.cancelScript(requestId, "cancel", 0, now, operator);
    const code = decodeReply(reply, { requestId, op: "cancel" });
    return { from: String(reply[1]) as RequestState, to: code === "CANCELLING" ? "CANCELLING" : "CANCELLED" };
  }

  /** ESS forceCancel: CANCELLING → CANCELLED once the request has been quiet for quietMs (FORCE_CANCEL_RULES). */
  async forceCancel(
    requestId: string,
    quietMs: number,
    now = Date.now(),
    operator?: OperatorNote,
  ): Promise<CancelResult> {
    const reply = await this.cancelScript(requestId, "force", quietMs, now, operator);
    decodeReply(reply, { requestId, op: "forceCancel", quietMs });
    return { from: String(reply[1]) as RequestState, to: "CANCELLED" };
  }

  /**
   * Records an operator console action that changes no state in the request's history (with the
   * actor and reason); throws REQUEST_NOT_FOUND when the request is not there.
   */
  async operatorNote(requestId: string, note: OperatorNote, now = Date.now()): Promise<void> {
    const { keys, limits, redis } = this.store;
    const p = keys.partition(requestId);
    const reply = await redis.ess_operatorNote(
      keys.request(p, requestId),
      keys.history(p, requestId),
      now,
      limits.historyLimit,
      JSON.stringify(note),
    );
    decodeReply(reply, { requestId });
  }

  /**
   * Marks (or ends, policy 'error') the due requests of one partition and takes expired terminal
   * requests out of its request index; call again while `more`. Reads the due ids, then runs the
   * sweep script once per id with that request's keys, and the index prune, in one pipeline: the
   * script claims each id atomically, so concurrent sweepers handle each once.
   */
  async sweepTimeouts(partition: number, policy: TimeoutPolicy, now = Date.now()): Promise<SweepResult> {
    const { keys, limits, redis } = this.store;
    const deadlines = keys.deadlines(partition);
    const due = await redis.zrangebyscore(deadlines, "-inf", now, "LIMIT", 0, SWEEP_BATCH);
    const pipeline = redis.pipeline() as unknown as ScriptedRedis;
    for (const id of due) {
      void pipeline.ess_sweepTimeouts(
        deadlines,
        keys.request(partition, id),
        keys.history(partition, id),
        keys.buffer(partition, id),
        keys.skipped(partition, id),
        keys.events(partition),
        keys.requestIndex(partition),
        keys.requestIndexExpiry(partition),
        now,
        id,
        policy,
        limits.historyLimit,
        limits.eventsMaxLen,
        limits.retentionSeconds,
      );
    }
    void pipeline.ess_pruneIndex(keys.requestIndex(partition), keys.requestIndexExpiry(partition), now, SWEEP_BATCH);
    const replies = (await (pipeline as unknown as ReturnType<Redis["pipeline"]>).exec()) ?? [];
    const result: SweepResult = { timedOut: 0, rescheduled: 0, dropped: 0, more: false, pruned: 0 };
    for (const [i, [err, reply]] of replies.entries()) {
      if (err) throw err;
      if (i === due.length) {
        result.pruned = Number((reply as Reply)[0]);
        continue;
      }
      const code = decodeReply(reply as Reply, { requestId: due[i] ?? "" });
      if (code === "TIMED_OUT") result.timedOut++;
      else if (code === "RESCHEDULED") result.rescheduled++;
      else if (code === "DROPPED") result.dropped++;
    }
    result.more = due.length === SWEEP_BATCH || result.pruned === SWEEP_BATCH;
    return result;
  }

  /**
   * Reads the event streams of some partitions after per-partition cursors (exclusive), at most
   * `count` per partition, together with the Redis server time (ms) of the read.
   */
  async readEvents(
    cursors: ReadonlyMap<number, string>,
    count: number,
  ): Promise<{ serverTimeMs: number; events: StreamEvent[]; full: Set<number> }> {
    const { keys, redis } = this.store;
    const parts = [...cursors.keys()];
    const streams = parts.map((p) => keys.events(p));
    const ids = parts.map((p) => cursors.get(p) as string);
    type Read = [[Error | null, [string, string]], [Error | null, [string, [string, string[]][]][] | null]];
    const readAt = (s: string[], i: string[]) =>
      redis
        .multi()
        .time()
        .xread("COUNT", count, "STREAMS", ...s, ...i)
        .exec() as Promise<Read>;
    // on a Cluster one read per stream (each on its partition's master), and the earliest of their clocks
    const reads = isCluster(redis)
      ? await Promise.all(streams.map((s, i) => readAt([s], [ids[i] as string])))
      : [await readAt(streams, ids)];
    let serverTimeMs = Number.POSITIVE_INFINITY;
    const read: [string, [string, string[]][]][] = [];
    for (const res of reads) {
      if (res[0][0]) throw res[0][0];
      if (res[1][0]) throw res[1][0];
      const [sec, micro] = res[0][1];
      serverTimeMs = Math.min(serverTimeMs, Number(sec) * 1000 + Math.floor(Number(micro) / 1000));
      read.push(...(res[1][1] ?? []));
    }
    const events: StreamEvent[] = [];
    const full = new Set<number>();
    for (const [stream, entries] of read) {
      const partition = parts[streams.indexOf(stream)] as number;
      if (entries.length >= count) full.add(partition);
      for (const [id, flat] of entries) events.push({ partition, id, fields: fieldsOf(flat) });
    }
    return { serverTimeMs, events, full };
  }
}

/** Compares two stream ids ("ms-seq") numerically. */
export function compareStreamIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  const d = BigInt(am) - BigInt(bm);
  if (d !== 0n) return d < 0n ? -1 : 1;
  const e = BigInt(as) - BigInt(bs);
  return e === 0n ? 0 : e < 0n ? -1 : 1;
}

/** The stream id just before `id`, so that an exclusive read from it includes `id` itself. */
export function previousStreamId(id: string): string {
  const [ms = "0", seq = "0"] = id.split("-");
  if (BigInt(seq) > 0n) return `${ms}-${BigInt(seq) - 1n}`;
  if (BigInt(ms) === 0n) return "0-0";
  return `${BigInt(ms) - 1n}-18446744073709551615`;
}

/** Entries of several streams as XREADGROUP replies them: [stream, [id, flat fields][]][]. */
export type GroupRead = [string, [string, string[]][]][];

/** How often a Cluster's streams are polled while they are idle. */
const CLUSTER_POLL_MS = 100;

/**
 * Reads new entries (">") of several streams through a consumer group, waiting up to blockMs when there
 * are none. On a single Redis one XREADGROUP BLOCK over all streams, on `blocking` (a connection of its
 * own, since BLOCK holds it). On a Cluster the streams of different partitions live in different slots,
 * which one command may not span: one non-blocking XREADGROUP per stream on the shared connection,
 * repeated every 100 ms until something comes or blockMs has passed. No connection per stream.
 */
export async function readGroup(
  redis: Redis,
  blocking: Redis,
  streams: readonly string[],
  group: string,
  consumer: string,
  count: number,
  blockMs: number,
): Promise<GroupRead> {
  if (!isCluster(redis)) {
    return (
      ((await blocking.xreadgroup(
        "GROUP",
        group,
        consumer,
        "COUNT",
        count,
        "BLOCK",
        blockMs,
        "STREAMS",
        ...streams,
        ...streams.map(() => ">"),
      )) as GroupRead | null) ?? []
    );
  }
  const until = Date.now() + blockMs;
  for (;;) {
    const replies = await Promise.all(
      streams.map(
        (s) =>
          redis.xreadgroup("GROUP", group, consumer, "COUNT", count, "STREAMS", s, ">") as Promise<GroupRead | null>,
      ),
    );
    const read = replies.flatMap((r) => r ?? []).filter(([, entries]) => entries.length > 0);
    if (read.length > 0 || Date.now() >= until) return read;
    await new Promise((r) => setTimeout(r, Math.min(CLUSTER_POLL_MS, Math.max(until - Date.now(), 0))));
  }
}
