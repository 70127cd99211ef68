import type { CallbackJob } from "@ess/contract";
import { newRequestId, useTestContext } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { HISTORY_HEAD_FIELD } from "./history-codec.js";
import { DEFAULT_LIMITS } from "./store.js";

const ctx = useTestContext();

/** MEMORY USAGE (exact: SAMPLES 0) summed over every key a request keeps. */
async function memoryOf(id: string): Promise<{ total: number; byKey: Record<string, number> }> {
  const p = ctx.keys.partition(id);
  const keys = {
    hash: ctx.keys.request(p, id),
    history: ctx.keys.history(p, id),
    buffer: ctx.keys.buffer(p, id),
    skipped: ctx.keys.skipped(p, id),
  };
  const byKey: Record<string, number> = {};
  let total = 0;
  for (const [name, key] of Object.entries(keys)) {
    byKey[name] = Number((await ctx.redis.call("MEMORY", "USAGE", key, "SAMPLES", "0")) ?? 0);
    total += byKey[name];
  }
  // nothing else under the request's own key names
  const others = await ctx.redis.keys(`${keys.hash}*`);
  expect(others.sort()).toEqual(
    Object.values(keys)
      .filter((k) => others.includes(k))
      .sort(),
  );
  return { total, byKey };
}

describe("a terminal request's memory", () => {
  it("stays within 2 KiB with the history full at its default cap", async () => {
    expect(ctx.store.limits.historyLimit).toBe(DEFAULT_LIMITS.historyLimit);
    const id = newRequestId();
    await ctx.store.register(id, "handle", {});
    const updates = DEFAULT_LIMITS.historyLimit + 5;
    let now = Date.now();
    const job = (seq: number, status: CallbackJob["status"], message?: string): CallbackJob => ({
      v: 1,
      requestId: id,
      seq,
      execution: 1,
      status,
      acceptedAt: now - 3,
      ...(message === undefined ? {} : { message }),
    });
    for (let seq = 1; seq <= updates; seq++) {
      now += 137;
      expect((await ctx.store.apply(id, "cb", job(seq, "UPDATE", `step ${seq} of ${updates}`), now)).result).toBe(
        "applied",
      );
    }
    now += 137;
    expect((await ctx.store.apply(id, "cb", job(updates + 1, "SUCCESS"), now)).result).toBe("applied");
    const stored = await ctx.store.read(id);
    expect(stored?.fields.state).toBe("SUCCEEDED");
    // the history's header is kept in the request hash, which expires with the rest
    const p = ctx.keys.partition(id);
    expect(await ctx.redis.hexists(ctx.keys.request(p, id), HISTORY_HEAD_FIELD)).toBe(1);
    expect(await ctx.redis.llen(ctx.keys.history(p, id))).toBe(DEFAULT_LIMITS.historyLimit);
    expect(stored?.history).toHaveLength(DEFAULT_LIMITS.historyLimit);
    const mem = await memoryOf(id);
    console.log(JSON.stringify(mem));
    expect(mem.total).toBeLessThanOrEqual(2048);
  });
});
