import { callbackJobId, JOB_BATCH } from "@ess/store";
import { eventually } from "@ess/testing";
import { newRequestId, useTestContext } from "@ess/testing/context";
import type { Job } from "bullmq";
import { afterAll, describe, expect, it } from "vitest";
import { startTestWorker } from "./test-worker.js";

// Batch jobs (several callbacks of one batch group, one apply-batch call): each callback keeps the
// guarantees of a single job (order, exactly once, its own dead letter and replay, the gap rule). On a
// single Redis a batch spans partitions: each callback keeps them in its own partition.
const ctx = useTestContext({ partitions: 2, attempts: 3, backoffMs: 100, limits: { gapTimeoutMs: 300 } });

/** job id → how the next attempts behave */
const faults = new Map<string, { fail: number; holdMs?: number }>();
const attempts = new Map<string, number>();
/** job id → the queue (prefix and name) its last attempt ran from */
const ranIn = new Map<string, string>();
const { worker, deadLetters } = startTestWorker(ctx, {
  beforeApply: async (job: Job) => {
    const id = String(job.id);
    attempts.set(id, (attempts.get(id) ?? 0) + 1);
    ranIn.set(id, job.queueQualifiedName);
    const f = faults.get(id);
    if (f && f.fail > 0) {
      f.fail--;
      if (f.holdMs) await new Promise((r) => setTimeout(r, f.holdMs));
      throw new Error("Connection is closed.");
    }
  },
});
afterAll(() => worker.close(5000));

/** n registered requests of partition p */
async function registeredIn(p: number, n: number): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < n) {
    const id = newRequestId();
    if (ctx.keys.partition(id) === p) ids.push(id);
  }
  for (const id of ids) await ctx.store.register(id, "h", {});
  return ids;
}

/** Admits the callbacks in one batch, as the gateway does for one event-loop turn. */
async function acceptBatch(cbs: [string, "UPDATE" | "WARNING" | "SUCCESS" | "ERROR"][]) {
  const res = await ctx.store.admitAndEnqueueBatch(
    ctx.queues,
    cbs.map(([requestId, status]) => ({
      cb: { requestId, handle: "h", status, message: `${status} of ${requestId}`, acceptedAt: Date.now() },
    })),
  );
  for (const r of res) if (r instanceof Error) throw r;
  return res;
}

/** The queue (as BullMQ's queueQualifiedName) of partition p's callbacks. */
const queueOf = (p: number) => `${ctx.keys.tag(p)}:callbacks`;

async function history(id: string) {
  const stored = await ctx.store.read(id);
  return (stored?.history ?? []).filter((h) => h.outcome !== "registered").reverse();
}

describe("worker: batch jobs", () => {
  it("applies every callback of a batch in seq order, once, and clears their markers", async () => {
    const [a, b] = (await registeredIn(0, 2)) as [string, string];
    await acceptBatch([
      [a, "UPDATE"],
      [b, "UPDATE"],
      [a, "WARNING"],
      [b, "SUCCESS"],
    ]);
    expect(
      attempts.has(`b-${callbackJobId(a, 1)}`) || (await ctx.queues.queue(0).getJob(`b-${callbackJobId(a, 1)}`)),
    ).toBeTruthy();
    await eventually(
      async () => (await ctx.store.state(b)) === "SUCCEEDED" && (await ctx.store.state(a)) === "WARNING",
    );
    expect((await history(a)).map((h) => [h.seq, h.outcome])).toEqual([
      [1, "applied"],
      [2, "applied"],
    ]);
    expect((await history(b)).map((h) => [h.seq, h.outcome])).toEqual([
      [1, "applied"],
      [2, "applied"],
    ]);
    expect(await ctx.redis.hmget(ctx.keys.inflight(0), callbackJobId(a, 1), callbackJobId(b, 2))).toEqual([null, null]);
  });

  it.each([
    ["its own partition's queue", 1],
    ["another partition's queue", 0],
  ])("a seq queued inside a batch in %s that is being retried is never skipped as a gap", async (_, pBatch) => {
    const [x] = (await registeredIn(pBatch, 1)) as [string];
    const [a] = (await registeredIn(1, 1)) as [string];
    // the batch (in partition pBatch's queue, led by x) holding a's seq 1 fails twice, each attempt
    // taking longer than GAP_TIMEOUT_MS
    faults.set(`b-${callbackJobId(x, 1)}`, { fail: 2, holdMs: 400 });
    await acceptBatch([
      [x, "UPDATE"],
      [a, "UPDATE"],
    ]);
    // seq 2 comes as a job of a's own partition and is applied first: buffered, a gap check scheduled there
    await acceptBatch([[a, "WARNING"]]);
    await eventually(async () => (await history(a)).length === 2, 20000);
    expect((await history(a)).map((h) => [h.seq, h.outcome])).toEqual([
      [1, "applied"],
      [2, "applied"],
    ]);
    expect(attempts.get(`b-${callbackJobId(x, 1)}`)).toBe(3);
    expect(ranIn.get(callbackJobId(a, 2))).toBe(queueOf(1));
  });

  it("a callback whose request is gone is dead-lettered on its own; the others of its batch apply", async () => {
    const [a, gone] = (await registeredIn(0, 2)) as [string, string];
    faults.set(`b-${callbackJobId(a, 1)}`, { fail: 1, holdMs: 0 });
    await acceptBatch([
      [a, "UPDATE"],
      [gone, "SUCCESS"],
    ]);
    // the request disappears between the admit and the apply
    await ctx.redis.del(ctx.keys.request(0, gone));
    const dl = await eventually(async () => (await deadLetters.list({ requestId: gone })).items[0], 20000);
    expect(dl).toMatchObject({
      id: `0.${callbackJobId(gone, 1)}`,
      jobId: callbackJobId(gone, 1),
      name: "cb",
      reason: "request-gone",
      seq: 1,
      status: "SUCCESS",
      payload: { v: 1, requestId: gone, seq: 1, status: "SUCCESS" },
    });
    await eventually(async () => (await history(a)).length === 1);
    expect(await ctx.redis.hexists(ctx.keys.inflight(0), callbackJobId(gone, 1))).toBe(0);
    expect((await deadLetters.list({ requestId: a })).items).toEqual([]);
  });

  it("a batch out of attempts becomes one dead letter per callback, each replayable on its own", async () => {
    const [a, b] = (await registeredIn(1, 2)) as [string, string];
    const batchId = `b-${callbackJobId(a, 1)}`;
    faults.set(batchId, { fail: 3 }); // JOB_ATTEMPTS = 3
    await acceptBatch([
      [a, "WARNING"],
      [b, "SUCCESS"],
    ]);
    const both = await eventually(async () => {
      const items = [
        ...(await deadLetters.list({ requestId: a })).items,
        ...(await deadLetters.list({ requestId: b })).items,
      ];
      return items.length === 2 && items;
    }, 20000);
    expect(both.map((d) => [d.jobId, d.name, d.reason, d.attempts])).toEqual([
      [callbackJobId(a, 1), "cb", "attempts-exhausted", 3],
      [callbackJobId(b, 1), "cb", "attempts-exhausted", 3],
    ]);
    // the failed batch job goes once its dead letters are written (a later step than the listing sees)
    await eventually(
      async () => (await ctx.queues.queue(1).getJob(batchId)) === undefined,
      20000,
      "the batch job gone",
    );
    expect(await ctx.redis.hmget(ctx.keys.inflight(1), callbackJobId(a, 1), callbackJobId(b, 1))).toEqual([null, null]);
    // one replayed alone: a single job under its own id, applied; the other stays a dead letter
    expect(await deadLetters.replay(both[1]!.id)).toBe("replayed");
    await eventually(async () => (await ctx.store.state(b)) === "SUCCEEDED", 20000);
    expect(attempts.get(callbackJobId(b, 1))).toBe(1);
    expect(await ctx.store.state(a)).toBe("RUNNING");
    expect(await deadLetters.get(both[0]!.id)).not.toBeNull();
  });

  it.each([
    ["of one partition", 0, 0],
    ["spanning partitions", 0, 1],
  ])("a batch job %s that ran again (its worker stalled) applies nothing twice", async (_, pa, pb) => {
    const [a] = (await registeredIn(pa, 1)) as [string];
    const [b] = (await registeredIn(pb, 1)) as [string];
    await acceptBatch([
      [a, "UPDATE"],
      [b, "UPDATE"],
    ]);
    await eventually(async () => (await history(a)).length === 1 && (await history(b)).length === 1);
    // the same batch job again, as a stalled job handed to another worker would run it
    const again = await ctx.queues.queue(pb).add(
      JOB_BATCH,
      {
        v: 1,
        callbacks: [
          { v: 1, requestId: a, seq: 1, execution: 1, status: "UPDATE", acceptedAt: 1 },
          { v: 1, requestId: b, seq: 1, execution: 1, status: "UPDATE", acceptedAt: 1 },
        ],
      },
      { jobId: `again-${a}` },
    );
    await eventually(async () => (await again.getState()) === "completed" || (await again.getState()) === "unknown");
    expect((await history(a)).map((h) => h.outcome)).toEqual(["applied"]);
    expect((await history(b)).map((h) => h.outcome)).toEqual(["applied"]);
  });
});

describe("worker: a batch job spanning partitions (a single Redis)", () => {
  it("applies the callbacks of every partition in seq order, once, and clears each marker in its partition", async () => {
    const [a] = (await registeredIn(0, 1)) as [string];
    const [b] = (await registeredIn(1, 1)) as [string];
    await acceptBatch([
      [b, "UPDATE"],
      [a, "UPDATE"],
      [b, "WARNING"],
      [a, "SUCCESS"],
    ]);
    await eventually(
      async () => (await ctx.store.state(a)) === "SUCCEEDED" && (await ctx.store.state(b)) === "WARNING",
    );
    // one job, in the first callback's partition's queue
    expect(ranIn.get(`b-${callbackJobId(b, 1)}`)).toBe(queueOf(1));
    expect((await history(a)).map((h) => [h.seq, h.outcome])).toEqual([
      [1, "applied"],
      [2, "applied"],
    ]);
    expect((await history(b)).map((h) => [h.seq, h.outcome])).toEqual([
      [1, "applied"],
      [2, "applied"],
    ]);
    expect(await ctx.redis.hmget(ctx.keys.inflight(0), callbackJobId(a, 1), callbackJobId(a, 2))).toEqual([null, null]);
    expect(await ctx.redis.hmget(ctx.keys.inflight(1), callbackJobId(b, 1), callbackJobId(b, 2))).toEqual([null, null]);
  });

  it("a callback whose request is gone becomes a dead letter of its own partition, replayable alone", async () => {
    const [a] = (await registeredIn(0, 1)) as [string];
    const [gone] = (await registeredIn(1, 1)) as [string];
    faults.set(`b-${callbackJobId(a, 1)}`, { fail: 1, holdMs: 0 });
    await acceptBatch([
      [a, "UPDATE"],
      [gone, "SUCCESS"],
    ]);
    await ctx.redis.del(ctx.keys.request(1, gone));
    const dl = await eventually(async () => (await deadLetters.list({ requestId: gone })).items[0], 20000);
    expect(dl).toMatchObject({
      id: `1.${callbackJobId(gone, 1)}`,
      partition: 1,
      jobId: callbackJobId(gone, 1),
      name: "cb",
      reason: "request-gone",
      payload: { v: 1, requestId: gone, seq: 1, status: "SUCCESS" },
    });
    expect((await deadLetters.list({ partition: 0, requestId: gone })).items).toEqual([]);
    await eventually(async () => (await history(a)).length === 1);
    expect(await ctx.redis.hexists(ctx.keys.inflight(1), callbackJobId(gone, 1))).toBe(0);
    // the request comes back (registered again): the dead letter replays alone, in its own partition's queue
    await ctx.store.register(gone, "h", {});
    expect(await deadLetters.replay(dl.id)).toBe("replayed");
    await eventually(async () => (await ctx.store.state(gone)) === "SUCCEEDED", 20000);
    expect(ranIn.get(callbackJobId(gone, 1))).toBe(queueOf(1));
    expect((await history(a)).map((h) => h.outcome)).toEqual(["applied"]);
  });

  it("a batch out of attempts becomes one dead letter per callback, each in its own partition and replayable alone", async () => {
    const [a] = (await registeredIn(0, 1)) as [string];
    const [b] = (await registeredIn(1, 1)) as [string];
    const batchId = `b-${callbackJobId(a, 1)}`;
    faults.set(batchId, { fail: 3 }); // JOB_ATTEMPTS = 3
    await acceptBatch([
      [a, "WARNING"],
      [b, "SUCCESS"],
    ]);
    const both = await eventually(async () => {
      const items = [
        ...(await deadLetters.list({ requestId: a })).items,
        ...(await deadLetters.list({ requestId: b })).items,
      ];
      return items.length === 2 && items;
    }, 20000);
    expect(both.map((d) => [d.id, d.partition, d.jobId, d.name, d.reason, d.attempts])).toEqual([
      [`0.${callbackJobId(a, 1)}`, 0, callbackJobId(a, 1), "cb", "attempts-exhausted", 3],
      [`1.${callbackJobId(b, 1)}`, 1, callbackJobId(b, 1), "cb", "attempts-exhausted", 3],
    ]);
    await eventually(
      async () => (await ctx.queues.queue(0).getJob(batchId)) === undefined,
      20000,
      "the batch job gone",
    );
    expect(await ctx.redis.hexists(ctx.keys.inflight(0), callbackJobId(a, 1))).toBe(0);
    expect(await ctx.redis.hexists(ctx.keys.inflight(1), callbackJobId(b, 1))).toBe(0);
    expect(await deadLetters.replay(both[1]!.id)).toBe("replayed");
    await eventually(async () => (await ctx.store.state(b)) === "SUCCEEDED", 20000);
    expect(ranIn.get(callbackJobId(b, 1))).toBe(queueOf(1));
    expect(await ctx.store.state(a)).toBe("RUNNING");
    expect(await deadLetters.get(both[0]!.id)).not.toBeNull();
  });

  it("a later seq buffered behind a callback of a batch that runs out of attempts is released by the gap check its dead letter brings", async () => {
    const [x] = (await registeredIn(0, 1)) as [string];
    const [a] = (await registeredIn(1, 1)) as [string];
    const batchId = `b-${callbackJobId(x, 1)}`;
    // a's seq 1 rides in a batch of partition 0's queue that fails for good, slowly enough for seq 2 to go first
    faults.set(batchId, { fail: 3, holdMs: 300 });
    await acceptBatch([
      [x, "UPDATE"],
      [a, "UPDATE"],
    ]);
    await acceptBatch([[a, "WARNING"]]);
    // seq 2 waits in the buffer; its apply asked for no gap check (seq 1 is held by the batch)
    await eventually(async () => (await ctx.redis.zcard(ctx.keys.buffer(1, a))) === 1, 20000);
    expect(await ctx.queues.queue(1).getJob(`gap-${a}-1`)).toBeUndefined();
    const dl = await eventually(async () => (await deadLetters.list({ requestId: a })).items[0], 20000);
    expect(dl.id).toBe(`1.${callbackJobId(a, 1)}`);
    // the gap check scheduled with the dead letter skips seq 1, and seq 2 applies
    await eventually(async () => (await ctx.store.state(a)) === "WARNING", 20000);
    expect((await history(a)).map((h) => [h.seq, h.outcome])).toEqual([
      [1, "skipped"],
      [2, "applied"],
    ]);
    // replayed, seq 1 is applied late, alone
    expect(await deadLetters.replay(dl.id)).toBe("replayed");
    await eventually(async () => (await history(a)).length === 3, 20000);
    // (an UPDATE after the request moved to WARNING: through the state machine late, and ignored there)
    expect((await history(a))[2]).toMatchObject({ seq: 1, outcome: "ignored" });
  });
});
