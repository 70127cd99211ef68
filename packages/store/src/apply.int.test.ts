import type { CallbackJob } from "@ess/contract";
import {
  CALLBACK_STATES,
  CALLBACK_STATUSES,
  type CallbackStatus,
  type RequestState,
  STATE_NAMES,
  transition,
} from "@ess/domain";
import { describe, expect, it } from "vitest";
import { newRequestId, useTestContext } from "../../../test/support/context.js";

const ctx = useTestContext({ limits: { gapTimeoutMs: 200, historyLimit: 5 } });

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

describe("apply-5 applies the table from packages/domain, exactly as transition() does", () => {
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

  it("caps the history at the configured length", async () => {
    const id = await registered();
    for (let seq = 1; seq <= 8; seq++) await ctx.store.apply(id, "cb", job(id, seq, "UPDATE"));
    const stored = await ctx.store.read(id);
    expect(stored?.history.map((h) => h.seq)).toEqual([8, 7, 6, 5, 4]);
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
