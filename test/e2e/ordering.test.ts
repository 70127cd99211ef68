import "@ess/testing/provided";
import { CallbackQueues, Keys, RequestStore } from "@ess/store";
import { eventually, type RunningProcess, startApp } from "@ess/testing";
import { dropPrefix, testRedis, testRedisEnv, uniquePrefix } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drive, FINAL_STATE, registerMany, type Sent } from "../support/load.js";

// two worker processes at concurrency 32: jobs of one request run in parallel and out of order,
// and the apply script's sequence numbers must still put every history in order. One job per
// callback (ADMIT_BATCH_MAX=1): a batch carries a request's concurrent UPDATEs in one job, applied in
// order, which would leave the reorder buffer this suite proves untested (batch order: batch.int.test.ts)
const env = {
  REDIS_URL: "",
  KEY_PREFIX: uniquePrefix(),
  PARTITIONS: "4",
  WORKER_CONCURRENCY: "32",
  ADMIT_BATCH_MAX: "1",
};
const procs: RunningProcess[] = [];
let store: RequestStore;
const FINALS = ["SUCCESS", "WARNING", "ERROR", "BUSINESS_ERROR", "CANCEL", "PAUSE", "SUSPEND"];

beforeAll(async () => {
  Object.assign(env, testRedisEnv());
  procs.push(...(await Promise.all([startApp("gateway", env), startApp("worker", env), startApp("worker", env)])));
  const redis = testRedis("tool");
  store = new RequestStore(redis, new Keys(env.KEY_PREFIX, 4));
});

afterAll(async () => {
  const codes = await Promise.all(procs.map((p) => p.stop()));
  expect(codes).toEqual([0, 0, 0]);
  await dropPrefix(store.redis, env.KEY_PREFIX);
  await store.redis.quit();
});

describe("ordering under concurrency", () => {
  it("300 requests × (12 UPDATEs at once, then a final status): every history in strict seq order, no gaps, right final state", async () => {
    const base = procs[0]?.url ?? "";
    const sent: Sent[] = await registerMany([base], 700_000, 300);
    const finalOf = (s: Sent) => FINALS[Number(s.id) % FINALS.length] ?? "SUCCESS";
    await drive(() => [base], sent, { updates: 12, final: finalOf, concurrency: 24, parallelUpdates: true });
    const total = sent.reduce((n, s) => n + s.accepted.length, 0);
    expect(sent.every((s) => s.rejected.length === 0)).toBe(true);

    let checked = 0;
    for (const s of sent) {
      const stored = await eventually(
        async () => {
          const r = await store.read(s.id);
          return r?.fields.applied === "13" && r;
        },
        60000,
        `request ${s.id} applied`,
      );
      const applied = stored.history.filter((h) => h.outcome !== "registered").reverse();
      expect(applied.map((h) => h.seq)).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
      expect(applied.every((h) => h.outcome === "applied")).toBe(true);
      expect(applied.map((h) => h.status)).toEqual([...Array.from({ length: 12 }, () => "UPDATE"), finalOf(s)]);
      expect(stored.fields.state).toBe(FINAL_STATE[finalOf(s)]);
      checked += applied.length;
    }
    // every early arrival schedules a gap check: proof that jobs really were taken out of order
    const queues = new CallbackQueues(store.redis, store.keys, { attempts: 1, backoffMs: 1 });
    let early = 0;
    for (const q of queues.all()) early += (await q.getJobs(["delayed"])).filter((j) => j.name === "gap").length;
    await queues.close();
    console.log(
      `ordering: ${total} callbacks answered 200, ${checked} applied in seq order across ${sent.length} requests; ` +
        `${early} callbacks arrived before their predecessor and waited in the reorder buffer`,
    );
    expect(checked).toBe(total);
    expect(early).toBeGreaterThan(0);
  });
});
