import { type CallbackJob, callbackBatchJobSchema } from "@ess/contract";
import { type AdmitResult, callbackJobId, JOB_BATCH, JOB_CALLBACK } from "@ess/store";
import { newRequestId } from "@ess/testing/context";
import { afterEach, describe, expect, it, vi } from "vitest";
import { UNOBSERVED } from "./accept-observer.js";
import { AdmitBatcher } from "./admit-batch.js";
import { BacklogMonitor } from "./backlog.js";
import { useGatewayTestContext } from "./test-context.js";

// Callbacks of one batch group (every partition on a single Redis) that reach the admit in the same
// event-loop turn share one script call and one batch job (ADMIT_BATCH_MAX, default 64); each HTTP call
// still gets its own answer.
const ctx = await useGatewayTestContext({ partitions: 1 });
const multi = await useGatewayTestContext({ partitions: 4 });

function post(id: string, body: Record<string, unknown>, key?: string, app = ctx.app) {
  return app.request(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
    body: JSON.stringify(body),
  });
}

async function registered(): Promise<string> {
  const id = newRequestId();
  await ctx.store.register(id, "h", {});
  return id;
}

async function errorCode(res: Response): Promise<string | undefined> {
  if (res.status === 200) return undefined;
  return ((await res.json()) as { errorCode?: string }).errorCode;
}

describe("admit batching", () => {
  it("concurrent callbacks: one answer each, one job per seq whatever the batches, keys decided once", async () => {
    const [a, b] = [await registered(), await registered()];
    const unknown = newRequestId();
    const calls = [
      post(a, { requestHandle: "h", status: "UPDATE", statusMessage: "1" }, "k-a"),
      post(b, { requestHandle: "h", status: "UPDATE" }),
      post(unknown, { requestHandle: "h", status: "UPDATE" }),
      post(b, { requestHandle: "stale", status: "UPDATE" }),
      // the same key again, in the same turn: the first call's answer, not a second seq
      post(a, { requestHandle: "h", status: "UPDATE", statusMessage: "1" }, "k-a"),
      // the same key with other content: refused
      post(a, { requestHandle: "h", status: "UPDATE", statusMessage: "2" }, "k-a"),
      post(a, { requestHandle: "h", status: "WARNING" }),
    ];
    const answers = await Promise.all(calls);
    expect(answers.map((r) => r.status)).toEqual([200, 200, 404, 403, 200, 422, 200]);
    expect(await Promise.all(answers.map(errorCode))).toEqual([
      undefined,
      undefined,
      "ESS-40401",
      "ESS-40301",
      undefined,
      "ESS-42201",
      undefined,
    ]);
    const jobs = await ctx.queues.queue(0).getJobs(["waiting"]);
    const callbacks = jobs.flatMap((j) =>
      j.name === JOB_BATCH
        ? callbackBatchJobSchema.parse(j.data).callbacks
        : [j.data as { requestId: string; seq: number }],
    );
    // a: seq 1 (k-a) and seq 2 (WARNING); b: seq 1: each once, whatever the batches were
    expect(
      callbacks
        .filter((c) => c.requestId === a || c.requestId === b)
        .map((c) => `${c.requestId}-${c.seq}`)
        .sort(),
    ).toEqual([callbackJobId(a, 1), callbackJobId(a, 2), callbackJobId(b, 1)].sort());
    // which of them share a batch depends on the order their bodies are read in (a call with a key that
    // repeats one in the open batch sends that batch first); that concurrent calls do share batch jobs
    // is asserted with calls without keys below
    expect(Number(await ctx.redis.hget(ctx.keys.request(0, a), "seq"))).toBe(2);
  });

  it("a callback alone in its turn is exactly the single job of before", async () => {
    const id = await registered();
    expect((await post(id, { requestHandle: "h", status: "UPDATE" })).status).toBe(200);
    const job = await ctx.queues.queue(0).getJob(callbackJobId(id, 1));
    expect(job?.name).toBe(JOB_CALLBACK);
    expect(job?.data).toMatchObject({ v: 1, requestId: id, seq: 1, execution: 1, status: "UPDATE" });
    expect(await ctx.redis.hexists(ctx.keys.inflight(0), callbackJobId(id, 1))).toBe(0);
  });

  it("the backlog counts the callbacks inside batch jobs (backpressure in callbacks, not jobs)", async () => {
    const before = await ctx.queues.queue(0).getWaitingCount();
    const ids = [await registered(), await registered()];
    const answers = await Promise.all([...ids, ...ids].map((id) => post(id, { requestHandle: "h", status: "UPDATE" })));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const waiting = (await ctx.queues.queue(0).getWaitingCount()) - before;
    const marked = await ctx.redis.hlen(ctx.keys.inflight(0));
    expect(marked).toBeGreaterThanOrEqual(2);
    const backlog = new BacklogMonitor(ctx.redis, ctx.keys, 1, 60000);
    await backlog.refresh();
    // every waiting job once, and each callback inside a batch job once more
    expect(backlog.backlog(0)).toBe(before + waiting + marked);
    expect(backlog.backlog(0)).toBeGreaterThanOrEqual(before + 4);
  });
});

describe("admit batching under load: the window", () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  const cb = (requestId: string) => ({ requestId, handle: "h", status: "UPDATE" as const, acceptedAt: Date.now() });
  /** the callbacks of each admitted batch job of queue 0, by job */
  async function batchesOf(ids: string[]): Promise<string[][]> {
    const jobs = await ctx.queues.queue(0).getJobs(["waiting"]);
    return jobs
      .map((j) =>
        (j.name === JOB_BATCH ? callbackBatchJobSchema.parse(j.data).callbacks : [j.data as CallbackJob])
          .filter((c) => ids.includes(c.requestId))
          .map((c) => c.requestId),
      )
      .filter((c) => c.length > 0);
  }
  /** a callback's answer, and whether its batch has been admitted yet */
  function tracked(answer: Promise<AdmitResult>) {
    let sent = false;
    return {
      answer: answer.then((r) => {
        sent = true;
        return r;
      }),
      sent: () => sent,
    };
  }
  /** a few event-loop turns and Redis round trips: long enough for a batch that does not wait to be admitted */
  async function settle(): Promise<void> {
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setImmediate(r));
      await ctx.redis.ping();
    }
  }

  it("a callback without load waits for no window; after a batch of several the next waits until it is full", async () => {
    // a window no test waits out: whatever is admitted was not held for it
    const sizes: number[] = [];
    const batcher = new AdmitBatcher(
      { ...ctx.deps, observe: { ...UNOBSERVED, batch: (n) => sizes.push(n) } },
      3,
      600_000,
    );
    const ids = await Promise.all([1, 2, 3, 4, 5, 6].map(() => registered()));
    const [a, b, c, d, e, f] = ids as [string, string, string, string, string, string];
    // no load: a lone callback goes at its turn's end
    expect((await batcher.submit(cb(a))).kind).toBe("admitted");
    // two in one turn: one batch, sent at the turn's end (the last batch held one)
    const two = await Promise.all([batcher.submit(cb(b)), batcher.submit(cb(c))]);
    expect(two.map((r) => r.kind)).toEqual(["admitted", "admitted"]);
    // under load now: the next batch waits for others, and goes once it holds ADMIT_BATCH_MAX
    const held = tracked(batcher.submit(cb(d)));
    await settle();
    expect(held.sent()).toBe(false);
    const rest = await Promise.all([held.answer, batcher.submit(cb(e)), batcher.submit(cb(f))]);
    expect(rest.map((r) => r.kind)).toEqual(["admitted", "admitted", "admitted"]);
    expect((await batchesOf(ids)).map((x) => x.sort())).toEqual(
      expect.arrayContaining([[a], [b, c].sort(), [d, e, f].sort()]),
    );
    // the batches as the metrics see them (ess_admit_batch_callbacks)
    expect(sizes).toEqual([1, 2, 3]);
  });

  it("a window that runs out sends what it holds; a batch of one ends the waiting", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const batcher = new AdmitBatcher(ctx.deps, 64, 50);
    const ids = await Promise.all([1, 2, 3, 4].map(() => registered()));
    const [a, b, c, d] = ids as [string, string, string, string];
    await Promise.all([batcher.submit(cb(a)), batcher.submit(cb(b))]);
    const held = tracked(batcher.submit(cb(c)));
    await settle();
    expect(held.sent()).toBe(false);
    // the window runs out: the batch goes with the one callback it holds
    vi.advanceTimersByTime(50);
    expect((await held.answer).kind).toBe("admitted");
    // that batch held one: no load, so the next lone callback waits for nothing
    expect((await batcher.submit(cb(d))).kind).toBe("admitted");
    expect((await batchesOf(ids)).map((x) => x.sort())).toEqual(expect.arrayContaining([[a, b].sort(), [c], [d]]));
  });

  it("no batch waits while every connection waits for an answer: a client calling as fast as it is answered is not held back", async () => {
    let idle = 1;
    const batcher = new AdmitBatcher({ ...ctx.deps, idleConnections: () => idle }, 64, 600_000);
    const ids = await Promise.all([1, 2, 3, 4, 5].map(() => registered()));
    const [a, b, c, d, e] = ids as [string, string, string, string, string];
    await Promise.all([batcher.submit(cb(a)), batcher.submit(cb(b))]);
    // under load, with a connection that could still send: the next batch waits
    const held = tracked(batcher.submit(cb(c)));
    await settle();
    expect(held.sent()).toBe(false);
    // that connection's callback joins, and now every connection waits: the batch goes
    idle = 0;
    const joined = batcher.submit(cb(d));
    expect([(await held.answer).kind, (await joined).kind]).toEqual(["admitted", "admitted"]);
    // still under load (the last batch held two), but no connection can send more: no wait
    expect((await batcher.submit(cb(e))).kind).toBe("admitted");
    expect((await batchesOf(ids)).map((x) => x.sort())).toEqual(expect.arrayContaining([[c, d].sort(), [e]]));
  });

  it("ADMIT_BATCH_WINDOW_MS reaches the gateway's batcher (default 2 ms)", () => {
    expect(ctx.deps.admitBatchWindowMs).toBe(2);
  });
});

describe("admit batching across partitions (a single Redis)", () => {
  /** one registered request in each partition */
  async function onePerPartition(): Promise<string[]> {
    const ids: string[] = [];
    while (ids.length < multi.keys.partitions) {
      const id = newRequestId();
      if (multi.keys.partition(id) === ids.length) ids.push(id);
    }
    for (const id of ids) await multi.store.register(id, "h", {});
    return ids;
  }

  it("callbacks of every partition share one script call and one job, each answered and decided once", async () => {
    const ids = await onePerPartition();
    const first = ids[0] as string;
    const body = { requestHandle: "h", status: "UPDATE" };
    const answers = await Promise.all([
      ...ids.map((id) => post(id, body, "k", multi.app)),
      // the same request and key in the same turn: the first call's answer, not a second seq
      post(first, body, "k", multi.app),
      ...ids.map((id) => post(id, { requestHandle: "h", status: "WARNING" }, undefined, multi.app)),
    ]);
    expect(answers.map((r) => r.status)).toEqual(new Array(2 * ids.length + 1).fill(200));
    const jobs = (await Promise.all(ids.map((_, p) => multi.queues.queue(p).getJobs(["waiting"])))).flat();
    const batches = jobs.filter((j) => j.name === JOB_BATCH);
    const callbacks = jobs.flatMap((j) =>
      j.name === JOB_BATCH ? callbackBatchJobSchema.parse(j.data).callbacks : [j.data as CallbackJob],
    );
    // every request: seq 1 (its key) and seq 2 (WARNING), each once, whatever the batches were
    expect(callbacks.map((c) => `${c.requestId}-${c.seq}`).sort()).toEqual(
      ids.flatMap((id) => [callbackJobId(id, 1), callbackJobId(id, 2)]).sort(),
    );
    // a batch job carries callbacks of several partitions, each marked in its own partition
    const spanning = batches.find(
      (j) =>
        new Set(callbackBatchJobSchema.parse(j.data).callbacks.map((c) => multi.keys.partition(c.requestId))).size > 1,
    );
    expect(spanning).toBeDefined();
    for (const c of callbackBatchJobSchema.parse(spanning?.data).callbacks) {
      const p = multi.keys.partition(c.requestId);
      expect(await multi.redis.hget(multi.keys.inflight(p), callbackJobId(c.requestId, c.seq))).toBe(spanning?.id);
    }
    expect(jobs.length).toBeLessThan(callbacks.length);
  });

  it("the backlog counts each callback in its own partition, wherever its batch job is queued", async () => {
    const ids = await onePerPartition();
    const backlog = new BacklogMonitor(multi.redis, multi.keys, 1, 60000);
    await backlog.refresh();
    const before = ids.map((_, p) => backlog.backlog(p));
    const answers = await Promise.all(
      ids.map((id) => post(id, { requestHandle: "h", status: "UPDATE" }, undefined, multi.app)),
    );
    expect(answers.map((r) => r.status)).toEqual(ids.map(() => 200));
    await backlog.refresh();
    // the batch jobs that carry these callbacks, per queue
    const batchesIn = await Promise.all(
      ids.map(async (_, p) =>
        (await multi.queues.queue(p).getJobs(["waiting"])).filter(
          (j) =>
            j.name === JOB_BATCH &&
            callbackBatchJobSchema.parse(j.data).callbacks.some((c) => ids.includes(c.requestId)),
        ),
      ),
    );
    expect(batchesIn.flat().length).toBeGreaterThan(0);
    // each partition: its own callback once (a marker, or a single job of its queue), plus the batch jobs its
    // queue holds (a batch job counts once more than its callbacks)
    for (let p = 0; p < ids.length; p++) {
      expect(backlog.backlog(p) - (before[p] as number)).toBe(1 + (batchesIn[p] as unknown[]).length);
    }
  });
});
