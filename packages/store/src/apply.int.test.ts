import type { CallbackJob } from "@ess/contract";
import {
  CALLBACK_STATES,
  CALLBACK_STATUSES,
  type CallbackStatus,
  type RequestState,
  type SchedulerOp,
  type SchedulerOutcome,
  type SchedulerRefusal,
  STATE_NAMES,
  schedulerTransition,
  transition,
} from "@ess/domain";
import { newRequestId, useTestContext } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { HISTORY_HEAD_FIELD } from "./history-codec.js";
import { SchedulerStore } from "./scheduler.js";

const ctx = useTestContext({ limits: { gapTimeoutMs: 200, historyLimit: 5 } });
const scheduler = new SchedulerStore(ctx.store);

function job(id: string, seq: number, status: CallbackStatus, extra: Partial<CallbackJob> = {}): CallbackJob {
  return { v: 1, requestId: id, seq, execution: 1, status, acceptedAt: 1_700_000_000_000 + seq, ...extra };
}

async function registered(opts: { maxRetries?: number; state?: RequestState; retriedCount?: number } = {}) {
  const id = newRequestId();
  await ctx.store.register(id, "handle", { maxRetries: opts.maxRetries });
  const key = ctx.keys.request(ctx.keys.partition(id), id);
  if (opts.state) await ctx.redis.hset(key, "state", opts.state);
  if (opts.retriedCount) await ctx.redis.hset(key, "retriedCount", opts.retriedCount);
  return id;
}

async function fields(id: string) {
  return ctx.redis.hgetall(ctx.keys.request(ctx.keys.partition(id), id));
}

async function history(id: string) {
  const stored = await ctx.store.read(id);
  return (stored?.history ?? []).filter((h) => h.outcome !== "registered").reverse();
}

async function events(id: string) {
  const entries = await ctx.redis.xrange(ctx.keys.events(ctx.keys.partition(id)), "-", "+");
  return entries
    .map(([, kv]) => Object.fromEntries(kv.flatMap((_, i) => (i % 2 ? [] : [[kv[i], kv[i + 1]]]))))
    .filter((e) => e.requestId === id);
}

describe("apply-8 applies the table from packages/domain, exactly as transition() does", () => {
  const cases: [RequestState, CallbackStatus, number, number][] = [];
  for (const state of STATE_NAMES) {
    for (const status of CALLBACK_STATUSES) cases.push([state, status, 0, 0]);
  }
  for (const state of CALLBACK_STATES) cases.push([state, "ERROR", 0, 2], [state, "ERROR", 2, 2]);

  it.each(cases)("%s + %s (retried %i of %i)", async (state, status, retriedCount, maxRetries) => {
    const id = await registered({ state, retriedCount, maxRetries });
    const now = 1_800_000_000_000;
    const expected = transition(
      { state, execution: 1, retriedCount, maxRetries },
      { status, execution: 1, message: "m" },
      now,
    );
    const res = await ctx.store.apply(id, "cb", job(id, 1, status, { message: "m" }), now);
    const f = await fields(id);
    const [entry] = await history(id);
    if (expected.kind === "ignored") {
      expect(res.result).toBe("ignored");
      expect(f.state).toBe(state);
      expect(entry).toMatchObject({ outcome: "ignored", reason: expected.reason, from: state, seq: 1 });
      return;
    }
    expect(res.result).toBe("applied");
    for (const [k, v] of Object.entries(expected.changes)) {
      if (v === null) expect(f[k], k).toBeUndefined();
      else expect(f[k], k).toBe(String(v));
    }
    expect(entry).toMatchObject({ outcome: "applied", from: state, to: expected.to, status, seq: 1 });
    const evs = await events(id);
    const last = evs[evs.length - 1];
    if (expected.event) expect(last).toMatchObject({ event: expected.event, state: expected.to, previousState: state });
    else expect(last?.event).toBe("REQUEST_RUNNING"); // only the registration's
  });
});

/** The EssError code each refusal of schedulerTransition() surfaces as. */
const REFUSAL_ERRORS: Record<SchedulerRefusal, string> = {
  NOT_FOUND: "REQUEST_NOT_FOUND",
  ALREADY_TERMINAL: "ALREADY_TERMINAL",
  NOT_PAUSED: "UNSUPPORTED_STATE",
  UNSUPPORTED_STATE: "UNSUPPORTED_STATE",
  TOO_EARLY: "FORCE_CANCEL_TOO_EARLY",
};

describe("register, cancel and sweepTimeouts apply the scheduler rules from packages/domain, as schedulerTransition() does", () => {
  type Case =
    | "register"
    | "register resumed"
    | "cancel"
    | "forceCancel"
    | "forceCancel early"
    | "timeout mark"
    | "timeout error";
  const OPS: Case[] = [
    "register",
    "register resumed",
    "cancel",
    "forceCancel",
    "forceCancel early",
    "timeout mark",
    "timeout error",
  ];
  const cases: [RequestState | null, Case][] = [];
  for (const state of [null, ...STATE_NAMES]) for (const op of OPS) cases.push([state, op]);
  const QUIET = 60_000;
  const TIMEOUT_MIN = 1;

  /** Runs the case against Redis; returns the `now` it ran at and the outcome as schedulerTransition() names it. */
  async function run(
    id: string,
    op: Case,
    start: number,
  ): Promise<{ now: number; got: "applied" | "dropped" | string }> {
    try {
      switch (op) {
        case "register":
        case "register resumed": {
          await ctx.store.register(id, "handle2", { resumed: op === "register resumed" });
          const f = await fields(id);
          return { now: Number(f.processStartTime), got: "applied" };
        }
        case "cancel":
          await scheduler.cancel(id, start + 1);
          return { now: start + 1, got: "applied" };
        case "forceCancel":
        case "forceCancel early": {
          const now = op === "forceCancel" ? start + QUIET + 1 : start + 1;
          await scheduler.forceCancel(id, QUIET, now);
          return { now, got: "applied" };
        }
        case "timeout mark":
        case "timeout error": {
          const now = start + 2 * TIMEOUT_MIN * 60_000;
          await scheduler.sweepTimeouts(ctx.keys.partition(id), op === "timeout mark" ? "mark" : "error", now);
          const deadline = await ctx.redis.zscore(ctx.keys.deadlines(ctx.keys.partition(id)), id);
          const timedOut = (await fields(id)).isTimedOut === "true";
          return { now, got: timedOut ? "applied" : deadline === null ? "dropped" : "untouched" };
        }
      }
    } catch (err) {
      return { now: 0, got: String((err as { code?: string }).code ?? err) };
    }
  }

  function domainOp(op: Case, start: number): SchedulerOp {
    switch (op) {
      case "register":
        return { kind: "register", resumed: false };
      case "register resumed":
        return { kind: "register", resumed: true };
      case "cancel":
        return { kind: "cancel" };
      case "forceCancel":
      case "forceCancel early":
        return { kind: "forceCancel", quietUntil: start + QUIET };
      case "timeout mark":
      case "timeout error":
        return { kind: "timeout", policy: op === "timeout mark" ? "mark" : "error", requestTimeout: TIMEOUT_MIN };
    }
  }

  it.each(cases)("%s + %s", async (state, op) => {
    const id = newRequestId();
    let start = 1_800_000_000_000;
    if (state) {
      await ctx.store.register(id, "handle", { requestTimeout: TIMEOUT_MIN });
      const key = ctx.keys.request(ctx.keys.partition(id), id);
      start = Number((await fields(id)).processStartTime);
      // quiet since `start`: cancellingSince is when CANCELLING began
      await ctx.redis.hset(key, "state", state, "cancellingSince", start);
    }
    const before = await fields(id);
    const { now, got } = await run(id, op, start);
    const expected: SchedulerOutcome = schedulerTransition(state, domainOp(op, start), now);
    if (expected.kind === "refused") {
      expect(got).toBe(REFUSAL_ERRORS[expected.refusal]);
      expect(await fields(id)).toEqual(before);
      return;
    }
    expect(got).toBe(expected.kind);
    if (expected.kind === "dropped") {
      expect((await fields(id)).state).toBe(state ?? undefined);
      return;
    }
    const f = await fields(id);
    for (const [k, v] of Object.entries(expected.changes)) {
      if (v === null) expect(f[k], k).toBeUndefined();
      else expect(f[k], k).toBe(String(v));
    }
    const evs = await events(id);
    expect(evs[evs.length - 1]).toMatchObject({
      event: expected.event,
      state: expected.to,
      ...(expected.from ? { previousState: expected.from } : {}),
    });
    const stored = await ctx.store.read(id);
    expect(stored?.history[0]).toMatchObject({ to: expected.to, ...(expected.from ? { from: expected.from } : {}) });
  });
});

describe("ordering, duplicates, gaps", () => {
  it("applies by seq, not arrival: early callbacks wait in the buffer and drain in order", async () => {
    const id = await registered();
    expect((await ctx.store.apply(id, "cb", job(id, 3, "SUCCESS"))).result).toBe("buffered");
    expect((await ctx.store.apply(id, "cb", job(id, 2, "UPDATE"))).result).toBe("buffered");
    const res = await ctx.store.apply(id, "cb", job(id, 1, "UPDATE"));
    expect(res).toEqual({ result: "applied", missing: 0, n: 2 });
    expect((await history(id)).map((h) => [h.seq, h.outcome])).toEqual([
      [1, "applied"],
      [2, "applied"],
      [3, "applied"],
    ]);
    expect((await fields(id)).state).toBe("SUCCEEDED");
  });

  it("a redelivered job changes nothing the second time", async () => {
    const id = await registered();
    await ctx.store.apply(id, "cb", job(id, 1, "UPDATE"));
    expect((await ctx.store.apply(id, "cb", job(id, 1, "UPDATE"))).result).toBe("duplicate");
    expect((await ctx.store.apply(id, "cb", job(id, 3, "SUCCESS"))).result).toBe("buffered");
    expect((await ctx.store.apply(id, "cb", job(id, 3, "SUCCESS"))).result).toBe("buffered");
    await ctx.store.apply(id, "cb", job(id, 2, "UPDATE"));
    expect((await history(id)).map((h) => h.seq)).toEqual([1, 2, 3]);
  });

  it("a callback admitted before an earlier one ended the request is recorded as ignored", async () => {
    const id = await registered();
    await ctx.store.apply(id, "cb", job(id, 1, "CANCEL"));
    expect((await ctx.store.apply(id, "cb", job(id, 2, "SUCCESS"))).result).toBe("ignored");
    expect((await history(id))[1]).toMatchObject({ seq: 2, outcome: "ignored", reason: "request is CANCELLED" });
    expect((await fields(id)).state).toBe("CANCELLED");
  });

  it("a callback of an earlier execution applied after a re-registration is ignored as stale", async () => {
    const id = await registered();
    await ctx.store.register(id, "handle2", {});
    expect((await ctx.store.apply(id, "cb", job(id, 1, "SUCCESS"))).result).toBe("ignored");
    expect((await history(id))[0]).toMatchObject({ outcome: "ignored", reason: "stale execution 1 (current 2)" });
  });

  it("a gap is not skipped before its timeout, then skipped and recorded; the late callback goes through the state machine", async () => {
    const id = await registered();
    const t0 = Date.now();
    expect(await ctx.store.apply(id, "cb", job(id, 2, "UPDATE"), t0)).toMatchObject({ result: "buffered", missing: 1 });
    expect((await ctx.store.apply(id, "gap", 1, t0 + 100)).result).toBe("wait");
    const skipped = await ctx.store.apply(id, "gap", 1, t0 + 250);
    expect(skipped).toEqual({ result: "skipped", missing: 0, n: 1 });
    const late = await ctx.store.apply(id, "cb", job(id, 1, "WARNING", { message: "late" }), t0 + 300);
    expect(late.result).toBe("late");
    expect((await ctx.store.apply(id, "cb", job(id, 1, "WARNING"), t0 + 301)).result).toBe("duplicate");
    expect((await history(id)).map((h) => [h.seq, h.outcome])).toEqual([
      [1, "skipped"],
      [2, "applied"],
      [1, "late"],
    ]);
    expect((await fields(id)).state).toBe("WARNING");
  });

  it("a buffer or skip set created after the request turned terminal expires with the request", async () => {
    const id = await registered();
    const p = ctx.keys.partition(id);
    const [req, buf, , , skip] = ctx.keys.applyKeys(p, id) as string[];
    const t0 = Date.now();
    expect((await ctx.store.apply(id, "cb", job(id, 1, "SUCCESS"), t0)).result).toBe("applied");
    const ttl = await ctx.redis.pttl(req as string);
    expect(ttl).toBeGreaterThan(0);
    // seq 3 arrives while seq 2 (admitted before the close) is still missing
    expect((await ctx.store.apply(id, "cb", job(id, 3, "UPDATE"), t0 + 1)).result).toBe("buffered");
    const bufTtl = await ctx.redis.pttl(buf as string);
    expect(bufTtl).toBeGreaterThan(0);
    expect(bufTtl).toBeLessThanOrEqual(ttl);
    expect((await ctx.store.apply(id, "gap", 2, t0 + 250)).result).toBe("skipped");
    const skipTtl = await ctx.redis.pttl(skip as string);
    expect(skipTtl).toBeGreaterThan(0);
    expect(skipTtl).toBeLessThanOrEqual(ttl);
  });

  it("a gap whose callback job still exists (being retried) is not skipped", async () => {
    const id = await registered();
    const t0 = Date.now();
    await ctx.store.apply(id, "cb", job(id, 2, "UPDATE"), t0);
    const p = ctx.keys.partition(id);
    await ctx.queues.queue(p).add("cb", job(id, 1, "UPDATE"), { jobId: `${id}-1`, delay: 60000 });
    expect((await ctx.store.apply(id, "gap", 1, t0 + 10000)).result).toBe("wait");
    await ctx.queues.queue(p).remove(`${id}-1`);
    expect((await ctx.store.apply(id, "gap", 1, t0 + 10000)).result).toBe("skipped");
  });

  it("a gap check whose job keys do not cover the gap as it is now skips nothing (the caller reads it again)", async () => {
    const id = await registered();
    const t0 = Date.now();
    await ctx.store.apply(id, "cb", job(id, 3, "UPDATE"), t0);
    const p = ctx.keys.partition(id);
    const { limits } = ctx.store;
    // the caller saw a gap of one seq (2), but 1 and 2 are missing: only seq 2's job key comes in
    const reply = await ctx.store.redis.ess_apply(
      9,
      ctx.keys.request(p, id),
      ctx.keys.buffer(p, id),
      ctx.keys.history(p, id),
      ctx.keys.events(p),
      ctx.keys.skipped(p, id),
      ctx.keys.requestIndex(p),
      ctx.keys.requestIndexExpiry(p),
      ctx.keys.inflight(p),
      ctx.keys.callbackJob(p, id, 2),
      "gap",
      1,
      t0 + 10_000,
      limits.historyLimit,
      limits.eventsMaxLen,
      limits.retentionSeconds,
      limits.gapTimeoutMs,
      2,
      id,
    );
    expect(reply).toEqual(["wait", 1, 0]);
    expect(await ctx.redis.scard(ctx.keys.skipped(p, id))).toBe(0);
    // read by the store itself, the gap is skipped
    expect((await ctx.store.apply(id, "gap", 1, t0 + 10_000)).result).toBe("skipped");
  });

  it("caps the history at the configured length", async () => {
    const id = await registered();
    for (let seq = 1; seq <= 8; seq++) await ctx.store.apply(id, "cb", job(id, seq, "UPDATE"));
    const stored = await ctx.store.read(id);
    expect(stored?.history.map((h) => h.seq)).toEqual([8, 7, 6, 5, 4]);
  });

  it("applies to a request whose history list ends in its header (stored before the header moved into the hash)", async () => {
    const id = await registered();
    const p = ctx.keys.partition(id);
    const req = ctx.keys.request(p, id);
    const hist = ctx.keys.history(p, id);
    const t0 = 1_800_000_000_000;
    await ctx.store.apply(id, "cb", job(id, 1, "UPDATE"), t0);
    await ctx.store.apply(id, "cb", job(id, 2, "UPDATE"), t0 + 50);
    // the layout as written before: the header '#<appliedAt>,<seq>' is the list's last element
    const head = (await ctx.redis.hget(req, HISTORY_HEAD_FIELD)) as string;
    await ctx.redis.hdel(req, HISTORY_HEAD_FIELD);
    await ctx.redis.rpush(hist, `#${head}`);
    const old = await history(id);
    expect(old.map((h) => [h.seq, h.appliedAt])).toEqual([
      [1, t0],
      [2, t0 + 50],
    ]);
    for (let seq = 3; seq <= 8; seq++) await ctx.store.apply(id, "cb", job(id, seq, "UPDATE"), t0 + 50 * seq);
    const stored = await ctx.store.read(id);
    expect(stored?.fields).not.toHaveProperty(HISTORY_HEAD_FIELD);
    expect(stored?.history.map((h) => [h.seq, h.appliedAt])).toEqual(
      [8, 7, 6, 5, 4].map((seq) => [seq, t0 + 50 * seq]),
    );
    expect(await ctx.redis.llen(hist)).toBe(5);
    expect((await ctx.redis.lrange(hist, 0, -1)).some((e) => e.startsWith("#"))).toBe(false);
    expect(await ctx.redis.hget(req, HISTORY_HEAD_FIELD)).toBe(`${(t0 + 400).toString(36)},8`);
  });

  it("a terminal request's keys expire after the retention period", async () => {
    const id = await registered();
    await ctx.store.apply(id, "cb", job(id, 1, "SUCCESS"));
    const ttl = await ctx.redis.ttl(ctx.keys.request(ctx.keys.partition(id), id));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(7 * 86400);
  });

  it("reports 'gone' for a request that no longer exists", async () => {
    expect((await ctx.store.apply("424242424", "cb", job("424242424", 1, "SUCCESS"))).result).toBe("gone");
  });
});
