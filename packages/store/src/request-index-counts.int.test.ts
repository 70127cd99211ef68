import { parseRequestQuery } from "@ess/contract";
import { newRequestId, useTestContext } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { RequestIndex } from "./request-index.js";
import { SchedulerStore } from "./scheduler.js";

// each test file has its own key prefix: the counts are this file's requests alone
const ctx = useTestContext({ partitions: 4 });
const index = new RequestIndex(ctx.redis, ctx.keys);

describe("request index: counts per state and partition narrowing", () => {
  it("counts every partition's requests per state, moving with their state", async () => {
    const ids = Array.from({ length: 9 }, () => newRequestId());
    for (const id of ids) await ctx.store.register(id, "h", {});
    expect((await index.countByState()).RUNNING).toBe(9);
    const scheduler = new SchedulerStore(ctx.store);
    for (const id of ids.slice(0, 4)) await scheduler.cancel(id, Date.now());
    const counts = await index.countByState();
    expect(counts.RUNNING).toBe(5);
    expect(counts.CANCELLING).toBe(4);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(9);
    // a state whose name starts another's (ERROR, ERROR_AUTO_RETRY) counts only its own
    expect(counts.ERROR).toBe(0);
  });

  it("reads only the partitions asked for", async () => {
    const ids = Array.from({ length: 12 }, () => newRequestId());
    for (const id of ids) await ctx.store.register(id, "h", { metadata: { application: "narrow" } });
    const q = parseRequestQuery("application=narrow", undefined);
    for (let p = 0; p < 4; p++) {
      const page = await index.query(q, { limit: 100, partitions: [p] });
      expect(page.items.map((r) => r.requestId).sort()).toEqual(
        ids.filter((id) => ctx.keys.partition(id) === p).sort(),
      );
    }
  });
});
