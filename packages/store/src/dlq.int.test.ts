import { failedJob as baseJob } from "@ess/testing";
import { useTestContext } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { type DeadLetter, DeadLetters } from "./dlq.js";
import { DEAD_LETTER_QUEUE } from "./keys.js";

const failedJob = (rid: string, seq: number, status: string, failedReason: string) =>
  baseJob(rid, seq, status, { failedReason });

const ctx = useTestContext({ partitions: 8 });
const dlq = new DeadLetters(ctx.redis, ctx.keys, (p, name) => ctx.queues.queue(p, name));
const STATUSES = ["SUCCESS", "UPDATE", "ERROR"];

async function all(q: Parameters<DeadLetters["list"]>[0], limit: number): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 10000; i++) {
    const page = await dlq.list(q, { limit, cursor });
    out.push(...page.items);
    if (!page.nextCursor) return out;
    cursor = page.nextCursor;
  }
  throw new Error("paging did not end");
}

describe("dead letters", () => {
  const base = 1_750_000_000_000;
  const entries: DeadLetter[] = [];

  it("records with reason, attempts, payload and options; parses the reason prefix", async () => {
    const [e] = (await dlq.record(
      ctx.keys.partition("77"),
      failedJob("77", 4, "ERROR", "[invalid-payload] bad seq"),
      base,
    )) as [DeadLetter];
    expect(e).toMatchObject({
      requestId: "77",
      seq: 4,
      status: "ERROR",
      reason: "invalid-payload",
      error: "bad seq",
      attempts: 3,
      payload: { requestId: "77", seq: 4 },
      opts: { attempts: 3 },
      deadAt: base,
    });
    expect(await dlq.get(e.id)).toEqual(e);
    const [plain] = (await dlq.record(
      ctx.keys.partition("78"),
      failedJob("78", 1, "SUCCESS", "Connection is closed."),
      base,
    )) as [DeadLetter];
    expect(plain).toMatchObject({ reason: "attempts-exhausted", error: "Connection is closed." });
    entries.push(e, plain);
  });

  it("pages through everything oldest first, with no duplicates and nothing missed, ties included", async () => {
    // 600 entries over 8 partitions, many sharing a millisecond
    for (let i = 0; i < 600; i++) {
      const rid = String(10_000 + (i % 150));
      const status = STATUSES[i % 3] ?? "UPDATE";
      const reason = i % 5 === 0 ? "[permanent-error] x" : "timeout";
      entries.push(
        ...(await dlq.record(
          ctx.keys.partition(rid),
          failedJob(rid, i + 1, status, reason),
          base + 1000 + Math.floor(i / 7),
        )),
      );
    }
    for (const limit of [1, 7, 100, 1000]) {
      const got = await all({}, limit);
      expect(got.length).toBe(entries.length);
      expect(new Set(got.map((e) => e.id)).size).toBe(entries.length);
      for (let i = 1; i < got.length; i++) expect(got[i]?.deadAt).toBeGreaterThanOrEqual(got[i - 1]?.deadAt ?? 0);
    }
    expect(await dlq.count()).toBe(entries.length);
  });

  it("filters by request, status, reason, partition and time range", async () => {
    const rid = "10007";
    expect((await all({ requestId: rid }, 3)).map((e) => e.id).sort()).toEqual(
      entries
        .filter((e) => e.requestId === rid)
        .map((e) => e.id)
        .sort(),
    );
    const errors = await all({ status: "ERROR", reason: "permanent-error" }, 10);
    expect(errors.length).toBe(entries.filter((e) => e.status === "ERROR" && e.reason === "permanent-error").length);
    expect(errors.every((e) => e.status === "ERROR" && e.reason === "permanent-error")).toBe(true);
    const p3 = await all({ partition: 3 }, 50);
    expect(p3.length).toBe(entries.filter((e) => e.partition === 3).length);
    const window = await all({ from: base + 1010, to: base + 1019 }, 13);
    expect(window.length).toBe(entries.filter((e) => e.deadAt >= base + 1010 && e.deadAt <= base + 1019).length);
    expect(await dlq.countMatching({ from: base + 1010, to: base + 1019 })).toBe(window.length);
  });

  it("rejects a cursor it did not issue", async () => {
    await expect(dlq.list({}, { cursor: "garbage" })).rejects.toThrow(/cursor/);
  });

  it("replay re-enqueues the original job (same id, data, options) and removes the entry", async () => {
    const e = entries[0] as DeadLetter;
    // the dashboard's mirror of the entry (a queue nothing consumes) goes with it
    const mirror = ctx.queues.queue(e.partition, DEAD_LETTER_QUEUE);
    expect((await mirror.getJob(e.id))?.data).toMatchObject({ id: e.id, reason: e.reason });
    expect(await dlq.replay(e.id)).toBe("replayed");
    const job = await ctx.queues.queue(e.partition).getJob(e.jobId);
    expect(job?.data).toEqual(e.payload);
    expect(job?.opts.attempts).toBe(3);
    expect(await dlq.get(e.id)).toBeNull();
    expect(await mirror.getJob(e.id)).toBeUndefined();
    expect(await dlq.replay(e.id)).toBe("not-found");
    expect((await all({ requestId: "77" }, 10)).length).toBe(0);
  });

  it("purges by filter", async () => {
    const before = await dlq.count();
    const n = await dlq.purgeMatching({ status: "UPDATE" });
    expect(n).toBe(entries.filter((e) => e.status === "UPDATE").length);
    expect(await dlq.count()).toBe(before - n);
    expect((await all({ status: "UPDATE" }, 100)).length).toBe(0);
  });

  it("a page costs a bounded number of Redis commands at 100k dead letters", async () => {
    const big = new DeadLetters(ctx.redis, ctx.keys, (p, name) => ctx.queues.queue(p, name));
    // 100k entries, written directly in pipelines (what record() writes, without the job removal)
    for (let start = 0; start < 100_000; start += 5000) {
      const m = ctx.redis.pipeline();
      for (let i = start; i < start + 5000; i++) {
        const rid = String(1_000_000 + i);
        const p = ctx.keys.partition(rid);
        const id = `${p}.${rid}-1`;
        const e = {
          id,
          partition: p,
          requestId: rid,
          seq: 1,
          status: "UPDATE",
          reason: "attempts-exhausted",
          deadAt: base + 5000 + i,
        };
        m.hset(ctx.keys.deadLetters(p), id, JSON.stringify(e));
        m.zadd(ctx.keys.deadLetterIndex(p), e.deadAt, id);
      }
      await m.exec();
    }
    let commands = 0;
    const original = ctx.redis.sendCommand.bind(ctx.redis);
    ctx.redis.sendCommand = ((...args: Parameters<typeof original>) => {
      commands++;
      return original(...args);
    }) as typeof original;
    try {
      const first = await big.list({}, { limit: 100 });
      expect(first.items.length).toBe(100);
      commands = 0;
      const second = await big.list({}, { limit: 100, cursor: first.nextCursor ?? undefined });
      expect(second.items.length).toBe(100);
      // one range read per partition and one read per entry, in two round trips (MULTI/EXEC framing)
      expect(commands).toBeLessThanOrEqual(2 * (8 + 2) + 100);
      expect(second.items[0]?.deadAt).toBeGreaterThanOrEqual(first.items[99]?.deadAt ?? 0);
    } finally {
      ctx.redis.sendCommand = original;
    }
  });
});
