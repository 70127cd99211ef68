import { type CallbackJob, callbackBatchJobSchema, callbackJobSchema } from "@ess/contract";
import type { CallbackStatus } from "@ess/domain";
import { newRequestId, useTestContext } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { callbackJobId } from "./keys.js";
import { JOB_BATCH, JOB_CALLBACK } from "./queues.js";
import { type AdmitCallback, type ApplyResult, needsGapCheck } from "./store.js";

// admit-enqueue-batch and apply-batch: several callbacks of one partition in one script call each,
// every callback answered and applied as it would be on its own.
const ctx = useTestContext({ partitions: 2, limits: { gapTimeoutMs: 200 } });

/** n registered requests of partition p. */
async function registeredIn(p: number, n: number): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < n) {
    const id = newRequestId();
    if (ctx.keys.partition(id) === p) ids.push(id);
  }
  for (const id of ids) await ctx.store.register(id, "handle", {});
  return ids;
}

function cb(requestId: string, status: CallbackStatus = "UPDATE", extra: Partial<AdmitCallback> = {}): AdmitCallback {
  return { requestId, handle: "handle", status, acceptedAt: 1_700_000_000_000, ...extra };
}

async function waitingJobs(p: number) {
  return ctx.queues.queue(p).getJobs(["waiting"]);
}

describe("admit-enqueue-batch", () => {
  it("one admitted callback becomes exactly the single job admit-enqueue-11 adds", async () => {
    const [a, b] = (await registeredIn(0, 2)) as [string, string];
    await ctx.store.admitAndEnqueue(ctx.queues, cb(a, "WARNING", { message: "m" }));
    const [res] = await ctx.store.admitAndEnqueueBatch(ctx.queues, [{ cb: cb(b, "WARNING", { message: "m" }) }]);
    expect(res).toMatchObject({ kind: "admitted", seq: 1, execution: 1 });
    const one = await ctx.redis.hgetall(ctx.keys.callbackJob(0, a, 1));
    const other = await ctx.redis.hgetall(ctx.keys.callbackJob(0, b, 1));
    expect(Object.keys(other).sort()).toEqual(Object.keys(one).sort());
    expect(other.name).toBe(JOB_CALLBACK);
    expect(JSON.parse(other.data!)).toEqual({ ...JSON.parse(one.data!), requestId: b });
    expect(JSON.parse(other.opts!)).toEqual({ ...JSON.parse(one.opts!), jobId: callbackJobId(b, 1) });
    expect(await ctx.redis.hexists(ctx.keys.inflight(0), callbackJobId(b, 1))).toBe(0);
  });

  it("answers each callback on its own and enqueues the admitted ones as one marked batch job", async () => {
    const [a, b] = (await registeredIn(1, 2)) as [string, string];
    const unknown = (() => {
      for (;;) {
        const id = newRequestId();
        if (ctx.keys.partition(id) === 1) return id;
      }
    })();
    const replies = await ctx.store.admitAndEnqueueBatch(ctx.queues, [
      { cb: cb(a), idempotency: { key: "k1", fingerprint: "f1" } },
      { cb: cb(unknown) },
      { cb: cb(b, "UPDATE", { handle: "wrong" }) },
      { cb: cb(a, "SUCCESS", { message: 'with "quotes"' }) },
      { cb: cb(b) },
    ]);
    expect(replies[0]).toMatchObject({ kind: "admitted", seq: 1 });
    expect(replies[1]).toMatchObject({ code: "REQUEST_NOT_FOUND" });
    expect(replies[2]).toMatchObject({ code: "STALE_HANDLE" });
    expect(replies[3]).toMatchObject({ kind: "admitted", seq: 2 });
    expect(replies[4]).toMatchObject({ kind: "admitted", seq: 1 });

    const jobs = await waitingJobs(1);
    const batch = jobs.find((j) => j.name === JOB_BATCH);
    expect(batch?.id).toBe(`b-${callbackJobId(a, 1)}`);
    const data = callbackBatchJobSchema.parse(batch?.data);
    expect(data.callbacks.map((c) => [c.requestId, c.seq, c.status])).toEqual([
      [a, 1, "UPDATE"],
      [a, 2, "SUCCESS"],
      [b, 1, "UPDATE"],
    ]);
    expect(data.callbacks[1]?.message).toBe('with "quotes"');
    // no single job for them, a marker each instead
    expect(await ctx.redis.exists(ctx.keys.callbackJob(1, a, 1))).toBe(0);
    expect(await ctx.redis.hgetall(ctx.keys.inflight(1))).toEqual({
      [callbackJobId(a, 1)]: batch?.id,
      [callbackJobId(a, 2)]: batch?.id,
      [callbackJobId(b, 1)]: batch?.id,
    });
    // the Idempotency-Key's record is final: a repeat is answered 200 and enqueues nothing
    const [again] = await ctx.store.admitAndEnqueueBatch(ctx.queues, [
      { cb: cb(a), idempotency: { key: "k1", fingerprint: "f1" } },
    ]);
    expect(again).toMatchObject({ kind: "repeat" });
    expect((await waitingJobs(1)).length).toBe(jobs.length);
  });

  it("a call resumed under its first seq gets its own single job, as admit-enqueue-11 gives it", async () => {
    const [a, b] = (await registeredIn(0, 2)) as [string, string];
    // ENQUEUE_MODE=queue left a pending record whose lease ran out (its gateway died)
    const first = await ctx.store.admit(a, "handle", "UPDATE", { key: "k", fingerprint: "f" }, 1);
    expect(first).toMatchObject({ kind: "admitted", seq: 1 });
    await new Promise((r) => setTimeout(r, 5));
    const replies = await ctx.store.admitAndEnqueueBatch(ctx.queues, [
      { cb: cb(a), idempotency: { key: "k", fingerprint: "f" } },
      { cb: cb(b) },
      { cb: cb(b) },
    ]);
    expect(replies[0]).toMatchObject({ kind: "admitted", seq: 1, resumed: true });
    const single = await ctx.queues.queue(0).getJob(callbackJobId(a, 1));
    expect(single?.name).toBe(JOB_CALLBACK);
    expect(callbackJobSchema.parse(single?.data)).toMatchObject({ requestId: a, seq: 1 });
    const batch = await ctx.queues.queue(0).getJob(`b-${callbackJobId(b, 1)}`);
    expect(callbackBatchJobSchema.parse(batch?.data).callbacks.map((c) => c.seq)).toEqual([1, 2]);
  });
});

/** A callback job as the gateway enqueues it. */
const job = (id: string, seq: number, status: CallbackStatus = "UPDATE"): CallbackJob => ({
  v: 1,
  requestId: id,
  seq,
  execution: 1,
  status,
  acceptedAt: 1_700_000_000_000 + seq,
});

describe("apply-batch", () => {
  it("applies each callback as apply would, clears its marker, and applies nothing twice when run again", async () => {
    const [a, b] = (await registeredIn(0, 2)) as [string, string];
    const inflight = ctx.keys.inflight(0);
    await ctx.redis.hset(inflight, callbackJobId(a, 1), "x", callbackJobId(a, 2), "x", callbackJobId(b, 2), "x");
    const jobs = [job(a, 1), job(a, 2, "SUCCESS"), job(b, 2)];
    const first = await ctx.store.applyBatch(jobs);
    expect(first).toEqual([
      { result: "applied", missing: 0, n: 0 },
      { result: "applied", missing: 0, n: 0 },
      { result: "buffered", missing: 1, n: 0 },
    ]);
    expect(await ctx.redis.hmget(inflight, callbackJobId(a, 1), callbackJobId(a, 2), callbackJobId(b, 2))).toEqual([
      null,
      null,
      null,
    ]);
    expect(await ctx.store.state(a)).toBe("SUCCEEDED");
    const historyOf = async (id: string) => (await ctx.store.read(id))?.history.length;
    const before = [await historyOf(a), await historyOf(b)];
    // a re-run (stalled or killed worker): duplicates, nothing changes
    const again = await ctx.store.applyBatch(jobs);
    expect(again.map((r) => r.result)).toEqual(["duplicate", "duplicate", "buffered"]);
    expect([await historyOf(a), await historyOf(b)]).toEqual(before);
  });

  it("reports 'gone' for a callback whose request no longer exists, and applies the others", async () => {
    const [a, gone] = (await registeredIn(1, 2)) as [string, string];
    await ctx.redis.del(ctx.keys.request(1, gone));
    const res = await ctx.store.applyBatch([job(gone, 1), job(a, 1)]);
    expect(res.map((r) => r.result)).toEqual(["gone", "applied"]);
  });

  it("the gap check never skips a seq still queued inside a batch job (its marker)", async () => {
    const [a] = (await registeredIn(0, 1)) as [string];
    const t0 = Date.now();
    await ctx.store.apply(a, "cb", job(a, 2), t0);
    await ctx.redis.hset(ctx.keys.inflight(0), callbackJobId(a, 1), "b-x");
    expect((await ctx.store.apply(a, "gap", 1, t0 + 10_000)).result).toBe("wait");
    await ctx.store.applyBatch([job(a, 1)]);
    expect(await ctx.redis.hexists(ctx.keys.inflight(0), callbackJobId(a, 1))).toBe(0);
    expect((await ctx.store.read(a))?.fields.applied).toBe("2");
  });
});

// On a single Redis a batch group spans every partition: one script call and one job for callbacks of
// several partitions, each applied and marked with its own partition's keys.
describe("across partitions (a single Redis: one batch group)", () => {
  /** the request ids an event stream names, with the state each event left */
  async function events(p: number): Promise<string[]> {
    const entries = (await ctx.redis.xrange(ctx.keys.events(p), "-", "+")) as [string, string[]][];
    return entries.map(([, f]) => `${f[f.indexOf("requestId") + 1]}:${f[f.indexOf("state") + 1]}`);
  }

  it("every partition is in one batch group", () => {
    expect(ctx.store.clustered).toBe(false);
    expect([ctx.store.batchGroup(0), ctx.store.batchGroup(1)]).toEqual([0, 0]);
  });

  it("callbacks of several partitions share one script call and one job in the first one's queue, each marked in its own partition", async () => {
    const [a] = (await registeredIn(0, 1)) as [string];
    const [b, c] = (await registeredIn(1, 2)) as [string, string];
    const batchesBefore = (await waitingJobs(1)).filter((j) => j.name === JOB_BATCH).length;
    const replies = await ctx.store.admitAndEnqueueBatch(ctx.queues, [
      { cb: cb(a) },
      { cb: cb(b), idempotency: { key: "k", fingerprint: "f" } },
      { cb: cb(c, "WARNING") },
    ]);
    expect(replies.map((r) => (r instanceof Error ? r : [r.kind, r.kind === "admitted" && r.partition]))).toEqual([
      ["admitted", 0],
      ["admitted", 1],
      ["admitted", 1],
    ]);
    const batchId = `b-${callbackJobId(a, 1)}`;
    const batch = await ctx.queues.queue(0).getJob(batchId);
    expect(batch?.name).toBe(JOB_BATCH);
    expect(callbackBatchJobSchema.parse(batch?.data).callbacks.map((x) => [x.requestId, x.seq])).toEqual([
      [a, 1],
      [b, 1],
      [c, 1],
    ]);
    // no job in partition 1's queue: its callbacks are in the batch, marked in partition 1
    expect((await waitingJobs(1)).filter((j) => j.name === JOB_BATCH).length).toBe(batchesBefore);
    expect(await ctx.redis.exists(ctx.keys.callbackJob(1, b, 1), ctx.keys.callbackJob(0, b, 1))).toBe(0);
    expect(await ctx.redis.hget(ctx.keys.inflight(0), callbackJobId(a, 1))).toBe(batchId);
    expect(await ctx.redis.hmget(ctx.keys.inflight(1), callbackJobId(b, 1), callbackJobId(c, 1))).toEqual([
      batchId,
      batchId,
    ]);
    expect(await ctx.redis.hexists(ctx.keys.inflight(0), callbackJobId(b, 1))).toBe(0);
    // b's Idempotency-Key is decided, in b's partition
    const [again] = await ctx.store.admitAndEnqueueBatch(ctx.queues, [
      { cb: cb(a) },
      { cb: cb(b), idempotency: { key: "k", fingerprint: "f" } },
    ]);
    expect(again).toMatchObject({ kind: "admitted", seq: 2 });
  });

  it("a lone admitted callback of another partition than the queue's is carried by a batch job of one", async () => {
    const unknown = (() => {
      for (;;) {
        const id = newRequestId();
        if (ctx.keys.partition(id) === 0) return id;
      }
    })();
    const [b] = (await registeredIn(1, 1)) as [string];
    const replies = await ctx.store.admitAndEnqueueBatch(ctx.queues, [{ cb: cb(unknown) }, { cb: cb(b) }]);
    expect(replies[0]).toMatchObject({ code: "REQUEST_NOT_FOUND" });
    expect(replies[1]).toMatchObject({ kind: "admitted", partition: 1, seq: 1 });
    const batch = await ctx.queues.queue(0).getJob(`b-${callbackJobId(b, 1)}`);
    expect(callbackBatchJobSchema.parse(batch?.data).callbacks.map((x) => x.requestId)).toEqual([b]);
    expect(await ctx.redis.hget(ctx.keys.inflight(1), callbackJobId(b, 1))).toBe(`b-${callbackJobId(b, 1)}`);
  });

  it("applies each callback with its own partition's keys, clears its marker there, and applies nothing twice when run again", async () => {
    const [a] = (await registeredIn(0, 1)) as [string];
    const [b] = (await registeredIn(1, 1)) as [string];
    await ctx.redis.hset(ctx.keys.inflight(0), callbackJobId(a, 1), "x", callbackJobId(a, 2), "x");
    await ctx.redis.hset(ctx.keys.inflight(1), callbackJobId(b, 1), "x");
    const jobs = [job(b, 1), job(a, 1), job(b, 2, "SUCCESS"), job(a, 2, "ERROR")];
    const first = await ctx.store.applyBatch(jobs);
    expect(first.map((r) => r.result)).toEqual(["applied", "applied", "applied", "applied"]);
    expect(await ctx.store.state(a)).toBe("ERROR");
    expect(await ctx.store.state(b)).toBe("SUCCEEDED");
    expect(await ctx.redis.hmget(ctx.keys.inflight(0), callbackJobId(a, 1), callbackJobId(a, 2))).toEqual([null, null]);
    expect(await ctx.redis.hexists(ctx.keys.inflight(1), callbackJobId(b, 1))).toBe(0);
    // each request's events in its own partition's stream
    expect(await events(0)).toContain(`${a}:ERROR`);
    expect(await events(1)).toContain(`${b}:SUCCEEDED`);
    expect((await events(0)).some((e) => e.startsWith(`${b}:`))).toBe(false);
    expect((await events(1)).some((e) => e.startsWith(`${a}:`))).toBe(false);
    const history = async (id: string) => (await ctx.store.read(id))?.history;
    const before = [await history(a), await history(b)];
    const again = await ctx.store.applyBatch(jobs);
    expect(again.map((r) => r.result)).toEqual(["duplicate", "duplicate", "duplicate", "duplicate"]);
    expect([await history(a), await history(b)]).toEqual(before);
  });

  it("the gap check never skips a seq queued in a batch job held in another partition's queue", async () => {
    const [x] = (await registeredIn(0, 1)) as [string];
    const [a] = (await registeredIn(1, 1)) as [string];
    // a's seq 1 rides in a batch job of partition 0's queue; its seq 2 is a single job of its own queue
    await ctx.store.admitAndEnqueueBatch(ctx.queues, [{ cb: cb(x) }, { cb: cb(a) }]);
    const batch = await ctx.queues.queue(0).getJob(`b-${callbackJobId(x, 1)}`);
    const carried = callbackBatchJobSchema.parse(batch?.data).callbacks;
    expect(await ctx.store.admitAndEnqueue(ctx.queues, cb(a, "WARNING"))).toMatchObject({ seq: 2 });
    const second = await ctx.queues.queue(1).getJob(callbackJobId(a, 2));
    const t0 = Date.now();
    // buffered; the missing seq is held by the batch job, so the apply asks for no gap check
    expect(await ctx.store.apply(a, "cb", callbackJobSchema.parse(second?.data), t0)).toEqual({
      result: "buffered",
      missing: 1,
      n: 0,
      held: true,
    });
    // long after the gap timeout, partition 1's gap check still waits for the marked seq
    expect((await ctx.store.apply(a, "gap", 1, t0 + 10_000)).result).toBe("wait");
    expect((await ctx.store.applyBatch(carried)).map((r) => r.result)).toEqual(["applied", "applied"]);
    expect((await ctx.store.read(a))?.fields.applied).toBe("2");
    expect(await ctx.store.state(a)).toBe("WARNING");
  });
});

describe("held: the missing seq is queued inside a batch job", () => {
  const job = (id: string, seq: number): CallbackJob => ({
    v: 1,
    requestId: id,
    seq,
    execution: 1,
    status: "UPDATE",
    acceptedAt: 1_700_000_000_000 + seq,
  });

  it("is reported when the missing seq has an in-flight marker, and only then", async () => {
    const [a, b] = (await registeredIn(1, 2)) as [string, string];
    await ctx.redis.hset(ctx.keys.inflight(1), callbackJobId(a, 1), "b-x");
    expect(await ctx.store.apply(a, "cb", job(a, 2))).toEqual({ result: "buffered", missing: 1, n: 0, held: true });
    expect(await ctx.store.apply(b, "cb", job(b, 2))).toEqual({ result: "buffered", missing: 1, n: 0 });
    const [forA, forB] = await ctx.store.applyBatch([job(a, 3), job(b, 3)]);
    expect(forA).toEqual({ result: "buffered", missing: 1, n: 0, held: true });
    expect(forB).toEqual({ result: "buffered", missing: 1, n: 0 });
    expect(needsGapCheck(forA as ApplyResult)).toBe(false);
    expect(needsGapCheck(forB as ApplyResult)).toBe(true);
  });
});
