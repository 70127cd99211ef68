import { describe, expect, it } from "vitest";
import { CLUSTER_RETRY_DELAY_MS, clusterOptions, fanOut } from "./redis.js";

describe("Redis Cluster client settings", () => {
  it("worker and tool: retry delay x redirections outlasts the failover time", () => {
    for (const failoverMs of [1000, 5000, 35000]) {
      for (const role of ["worker", "tool"] as const) {
        const o = clusterOptions(role, {}, failoverMs);
        expect(o.retryDelayOnFailover).toBe(CLUSTER_RETRY_DELAY_MS);
        expect((o.retryDelayOnFailover ?? 0) * (o.maxRedirections ?? 0)).toBeGreaterThan(failoverMs);
        expect(o.enableOfflineQueue).toBe(true);
      }
    }
  });

  it("gateway: a command on a closed node is never re-sent, nothing queues offline", () => {
    const o = clusterOptions("gateway", {});
    expect(o.retryDelayOnFailover).toBe(0);
    expect(o.enableOfflineQueue).toBe(false);
  });

  it("every role: no auto-pipelining, reads from masters", () => {
    for (const role of ["gateway", "worker", "tool"] as const) {
      const o = clusterOptions(role, {});
      expect(o.enableAutoPipelining).toBe(false);
      expect(o.scaleReads).toBe("master");
    }
  });
});

describe("fanOut", () => {
  it("answers in item order, an error in its own place", async () => {
    const res = await fanOut([1, 2, 3], async (n) => {
      if (n === 2) throw new Error("two");
      await new Promise((r) => setTimeout(r, 10 - n * 3));
      return n * 10;
    });
    expect(res.map(([err, v]) => (err ? err.message : v))).toEqual([10, "two", 30]);
  });
});
