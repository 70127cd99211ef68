import { newRequestId, useTestContext } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { REPLY } from "./codes.js";
import { SchedulerStore } from "./scheduler.js";

const ctx = useTestContext({ partitions: 1 });
const scheduler = new SchedulerStore(ctx.store);
const MIN = 60000;

const hkey = (id: string) => ctx.keys.request(0, id);
async function startAt(id: string, opts: { requestTimeout?: number; resumed?: boolean } = {}) {
  await ctx.store.register(id, `h-${id}`, opts);
  return Number(await ctx.redis.hget(hkey(id), "processStartTime"));
}
async function timedOutEvents(id: string) {
  const entries = await ctx.redis.xrange(ctx.keys.events(0), "-", "+");
  return entries
    .map(([, f]) => Object.fromEntries(f.flatMap((v, i) => (i % 2 ? [] : [[v, f[i + 1]]]))) as Record<string, string>)
    .filter((e) => e.requestId === id && e.event === "REQUEST_TIMED_OUT");
}
/** Sweeps "now" = t; other tests' requests may be due as well, so assertions are per request. */
const sweep = (t: number, policy: "mark" | "error" = "mark") => scheduler.sweepTimeouts(0, policy, t);

describe("requestTimeout", () => {
  it("registration arms the deadline set with processStartTime + requestTimeout; none without a timeout", async () => {
    const a = newRequestId();
    const b = newRequestId();
    const start = await startAt(a, { requestTimeout: 2 });
    await startAt(b);
    expect(Number(await ctx.redis.zscore(ctx.keys.deadlines(0), a))).toBe(start + 2 * MIN);
    expect(await ctx.redis.zscore(ctx.keys.deadlines(0), b)).toBeNull();
  });

  it("registration and its deadline are one script: a caller that dies after it leaves the request armed", async () => {
    const id = newRequestId();
    // the one call a registration makes; nothing after it
    const reply = await ctx.store.redis.ess_register(
      hkey(id),
      ctx.keys.history(0, id),
      ctx.keys.events(0),
      ctx.keys.deadlines(0),
      ctx.keys.requestIndex(0),
      "digest",
      1_000_000,
      "",
      3,
      "0",
      50,
      1000,
      id,
      "",
    );
    expect(Number(reply[0])).toBe(REPLY.CREATED);
    expect(Number(await ctx.redis.zscore(ctx.keys.deadlines(0), id))).toBe(1_000_000 + 3 * MIN);
    // re-armed without a timeout: out of the set in the same step
    await ctx.store.redis.hdel(hkey(id), "requestTimeout");
    await ctx.store.register(id, `h-${id}`, {});
    expect(await ctx.redis.zscore(ctx.keys.deadlines(0), id)).toBeNull();
  });

  it("marks the request isTimedOut and publishes REQUEST_TIMED_OUT once due, state unchanged (policy mark)", async () => {
    const id = newRequestId();
    const start = await startAt(id, { requestTimeout: 1 });
    await sweep(start + MIN - 1);
    expect(await ctx.redis.hget(hkey(id), "isTimedOut")).toBeNull();
    await sweep(start + MIN + 1);
    const f = await ctx.redis.hgetall(hkey(id));
    expect(f).toMatchObject({ state: "RUNNING", isTimedOut: "true", timedOutAt: String(start + MIN + 1) });
    expect(await timedOutEvents(id)).toEqual([
      expect.objectContaining({ state: "RUNNING", previousState: "RUNNING", isTimedOut: "true" }),
    ]);
    const hist = (await ctx.store.read(id))?.history[0];
    expect(hist).toMatchObject({ outcome: "timedOut", from: "RUNNING", to: "RUNNING" });
    // published once: it left the deadline set
    await sweep(start + 10 * MIN);
    expect(await timedOutEvents(id)).toHaveLength(1);
    expect(await ctx.redis.zscore(ctx.keys.deadlines(0), id)).toBeNull();
  });

  it("a check-in (or any applied callback) moves the deadline instead", async () => {
    const id = newRequestId();
    const start = await startAt(id, { requestTimeout: 1 });
    await ctx.redis.hset(hkey(id), "lastCheckInTime", start + 50000);
    const r = await sweep(start + MIN + 1);
    expect(r.rescheduled).toBeGreaterThanOrEqual(1);
    expect(Number(await ctx.redis.zscore(ctx.keys.deadlines(0), id))).toBe(start + 50000 + MIN);
    expect(await ctx.redis.hget(hkey(id), "isTimedOut")).toBeNull();
    await sweep(start + 50000 + MIN + 1);
    expect(await ctx.redis.hget(hkey(id), "isTimedOut")).toBe("true");
  });

  it("policy error ends the request in ERROR with errorType TIMEOUT and expires it", async () => {
    const id = newRequestId();
    const start = await startAt(id, { requestTimeout: 0.5 });
    await sweep(start + MIN, "error");
    const f = await ctx.redis.hgetall(hkey(id));
    expect(f).toMatchObject({ state: "ERROR", errorType: "TIMEOUT", isTimedOut: "true" });
    expect(f.processEndTime).toBe(String(start + MIN));
    expect(await timedOutEvents(id)).toEqual([expect.objectContaining({ state: "ERROR", errorType: "TIMEOUT" })]);
    expect(await ctx.redis.ttl(hkey(id))).toBeGreaterThan(0);
    await expect(ctx.store.admit(id, `h-${id}`, "SUCCESS")).rejects.toMatchObject({ code: "NOT_ACCEPTING_CALLBACKS" });
  });

  it("a request that ended or stopped taking callbacks is dropped from the set, not marked", async () => {
    const id = newRequestId();
    const start = await startAt(id, { requestTimeout: 1 });
    await ctx.redis.hset(hkey(id), "state", "SUCCEEDED");
    await sweep(start + 2 * MIN);
    expect(await ctx.redis.hget(hkey(id), "isTimedOut")).toBeNull();
    expect(await ctx.redis.zscore(ctx.keys.deadlines(0), id)).toBeNull();
  });

  it("a CANCELLING request times out as well", async () => {
    const id = newRequestId();
    const start = await startAt(id, { requestTimeout: 1 });
    await scheduler.cancel(id, start);
    await sweep(start + 2 * MIN);
    expect(await ctx.redis.hgetall(hkey(id))).toMatchObject({ state: "CANCELLING", isTimedOut: "true" });
  });

  it("re-registration clears isTimedOut and re-arms from the new start", async () => {
    const id = newRequestId();
    const start = await startAt(id, { requestTimeout: 1 });
    await sweep(start + 2 * MIN);
    const again = await startAt(id);
    expect(await ctx.redis.hget(hkey(id), "isTimedOut")).toBeNull();
    expect(Number(await ctx.redis.zscore(ctx.keys.deadlines(0), id))).toBe(again + MIN);
  });

  it("reads only the due members: requests not yet due are not touched", async () => {
    const c = new SchedulerStore(ctx.store);
    const ids = Array.from({ length: 30 }, () => newRequestId());
    for (const id of ids) await ctx.store.register(id, "h", { requestTimeout: 10000 });
    const due = newRequestId();
    const start = await startAt(due, { requestTimeout: 1 });
    // no earlier test left anything due before start + 1 min + 1 that is still in the set
    const r = await c.sweepTimeouts(0, "mark", start + MIN + 1);
    expect(r.timedOut + r.rescheduled + r.dropped).toBeLessThanOrEqual(2);
    expect(await ctx.redis.hget(hkey(due), "isTimedOut")).toBe("true");
    for (const id of ids) expect(await ctx.redis.zscore(ctx.keys.deadlines(0), id)).not.toBeNull();
  });

  it("several sweepers at once handle each request once", async () => {
    const ids = Array.from({ length: 40 }, () => newRequestId());
    let latest = 0;
    for (const id of ids) latest = Math.max(latest, await startAt(id, { requestTimeout: 0.1 }));
    const results = await Promise.all(Array.from({ length: 4 }, () => sweep(latest + MIN)));
    expect(results.reduce((n, r) => n + r.timedOut, 0)).toBeGreaterThanOrEqual(ids.length);
    for (const id of ids) expect(await timedOutEvents(id)).toHaveLength(1);
  });
});
