import { EssError, type RequestState } from "@ess/domain";
import type { RequestStore } from "./store.js";

/** Outcome of a cancel: the state the request left and the state it is now in. */
export interface CancelResult {
  from: RequestState;
  to: "CANCELLED" | "CANCELLING";
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

  private async cancelScript(requestId: string, op: "cancel" | "force", quietMs: number, now: number) {
    const { keys, limits, redis } = this.store;
    const p = keys.partition(requestId);
    return redis.ess_cancel(
      keys.request(p, requestId),
      keys.buffer(p, requestId),
      keys.history(p, requestId),
      keys.events(p),
      keys.skipped(p, requestId),
      keys.requestIndex(p),
      keys.requestIndexExpiry(p),
      op,
      now,
      limits.historyLimit,
      limits.eventsMaxLen,
      limits.retentionSeconds,
      quietMs,
      requestId,
    );
  }

  private static fail(requestId: string, code: number, state: string, op: string): never {
    if (code === -1) throw new EssError("REQUEST_NOT_FOUND", `request ${requestId} is not registered`);
    throw new EssError("UNSUPPORTED_STATE", `${op} is not possible while request ${requestId} is ${state}`);
  }

  /** ESS cancel: WAIT/READY/BLOCKED/HOLD → CANCELLED, RUNNING/COMPLETED → CANCELLING. */
  async cancel(requestId: string, now = Date.now()): Promise<CancelResult> {
    const reply = await this.cancelScript(requestId, "cancel", 0, now);
    const code = Number(reply[0]);
    const from = String(reply[1]) as RequestState;
    if (code < 0) SchedulerStore.fail(requestId, code, from, "cancel");
    return { from, to: code === 2 ? "CANCELLING" : "CANCELLED" };
  }

  /** ESS forceCancel: CANCELLING → CANCELLED once the request has been quiet for quietMs. */
  async forceCancel(requestId: string, quietMs: number, now = Date.now()): Promise<CancelResult> {
    const reply = await this.cancelScript(requestId, "force", quietMs, now);
    const code = Number(reply[0]);
    const from = String(reply[1]) as RequestState;
    if (code === -3) {
      const seconds = Math.ceil(Number(reply[2]) / 1000);
      throw new EssError(
        "FORCE_CANCEL_TOO_EARLY",
        `forceCancel is allowed once request ${requestId} has been quiet for ${Math.ceil(quietMs / 1000)} s since CANCELLING began or its last check-in; ${seconds} s to go`,
      );
    }
    if (code < 0) SchedulerStore.fail(requestId, code, from, "forceCancel");
    return { from, to: "CANCELLED" };
  }

  /**
   * Marks (or ends, policy 'error') the due requests of one partition and takes expired terminal
   * requests out of its request index; call again while `more`.
   */
  async sweepTimeouts(partition: number, policy: TimeoutPolicy, now = Date.now()): Promise<SweepResult> {
    const { keys, limits, redis } = this.store;
    const r = await redis.ess_sweepTimeouts(
      keys.deadlines(partition),
      keys.events(partition),
      keys.requestIndex(partition),
      keys.requestIndexExpiry(partition),
      now,
      SWEEP_BATCH,
      keys.requestPrefix(partition),
      policy,
      limits.historyLimit,
      limits.eventsMaxLen,
      limits.retentionSeconds,
    );
    return {
      timedOut: Number(r[0]),
      rescheduled: Number(r[1]),
      dropped: Number(r[2]),
      more: Number(r[3]) === 1,
      pruned: Number(r[4]),
    };
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
    const res = (await redis
      .multi()
      .time()
      .xread("COUNT", count, "STREAMS", ...streams, ...ids)
      .exec()) as [[Error | null, [string, string]], [Error | null, [string, [string, string[]][]][] | null]];
    if (res[0][0]) throw res[0][0];
    if (res[1][0]) throw res[1][0];
    const [sec, micro] = res[0][1];
    const serverTimeMs = Number(sec) * 1000 + Math.floor(Number(micro) / 1000);
    const events: StreamEvent[] = [];
    const full = new Set<number>();
    for (const [stream, entries] of res[1][1] ?? []) {
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
