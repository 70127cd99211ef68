import { type CallbackJob, parseRequestQuery } from "@ess/contract";
import { CALLBACK_STATUSES, isTerminal, type RequestState } from "@ess/domain";
import { RedisServer, requireRedisServer } from "@ess/testing";
import { newRequestId, useTestContext } from "@ess/testing/context";
import { afterAll, describe, expect, it } from "vitest";
import { HISTORY_HEAD_FIELD } from "./history-codec.js";
import { Keys } from "./keys.js";
import { createRedis } from "./redis.js";
import { RequestIndex } from "./request-index.js";
import { SchedulerStore } from "./scheduler.js";

// terminal requests expire after 5 s: long enough that none expires before the checks that expect
// every request still there on a loaded machine, short enough to wait out below
const ctx = useTestContext({ partitions: 4, limits: { retentionSeconds: 5 } });
const scheduler = new SchedulerStore(ctx.store);
const index = new RequestIndex(ctx.redis, ctx.keys);
const US = "\x1f";
const t15 = (ms: string | number) => String(ms).padStart(15, "0");

/** The index members every live request hash calls for, per partition (the truth to compare with). */
async function expectedMembers(ids: Iterable<string>): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const id of ids) {
    const p = ctx.keys.partition(id);
    const f = await ctx.redis.hgetall(ctx.keys.request(p, id));
    if (!f.state) continue;
    const list = out.get(p) ?? [];
    list.push(`a${US}${t15(f.registeredAt as string)}${US}${id}`);
    list.push(`s${US}${f.state}${US}${t15(f.stateChangeTime as string)}${US}${id}`);
    if (f.jobDefinitionId) list.push(`j${US}${f.jobDefinitionId}${US}${t15(f.registeredAt as string)}${US}${id}`);
    out.set(p, list);
  }
  return out;
}

/** The index holds exactly the members the hashes of `ids` call for (other tests' requests aside). */
async function expectIndexExact(ids: string[]) {
  const expected = await expectedMembers(ids);
  const mine = new Set(ids);
  for (let p = 0; p < ctx.keys.partitions; p++) {
    const actual = (await index.members(p)).filter((m) => mine.has(m.slice(m.lastIndexOf(US) + 1)));
    expect(actual.sort(), `partition ${p}`).toEqual((expected.get(p) ?? []).sort());
  }
}

/** Every page of a query, ids in order. */
async function allPages(q: string, orderBy?: string, limit = 7): Promise<string[]> {
  const query = parseRequestQuery(q, orderBy);
  const ids: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 1000; i++) {
    const page = await index.query(query, { limit, cursor });
    ids.push(...page.items.map((r) => r.requestId));
    if (!page.nextCursor) return ids;
    cursor = page.nextCursor;
  }
  throw new Error("no end");
}

/** Applies the next callback of a request directly, as the worker would. */
const seqs = new Map<string, number>();
async function callback(id: string, status: CallbackJob["status"], now = Date.now()) {
  const execution = Number(await ctx.redis.hget(ctx.keys.request(ctx.keys.partition(id), id), "execution"));
  const seq = (seqs.get(id) ?? 0) + 1;
  seqs.set(id, seq);
  await ctx.redis.hset(ctx.keys.request(ctx.keys.partition(id), id), "seq", seq);
  return ctx.store.apply(id, "cb", { v: 1, requestId: id, seq, execution, status, acceptedAt: now }, now);
}

describe("request metadata and the request index", () => {
  it("registration stores ESS's descriptive fields and indexes the request by submission, job and state", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {
      metadata: {
        jobDefinitionId: "JobDefinition://oracle/apps/ess/custom/Report",
        application: "EssDemoApp",
        submitter: "alice",
        priority: 4,
        requestParameters: [{ name: "region", paramType: "STRING", value: "EMEA" }],
      },
    });
    const p = ctx.keys.partition(id);
    const f = await ctx.redis.hgetall(ctx.keys.request(p, id));
    expect(f).toMatchObject({
      jobDefinitionId: "JobDefinition://oracle/apps/ess/custom/Report",
      application: "EssDemoApp",
      submitter: "alice",
      priority: "4",
      stateChangeTime: f.registeredAt,
    });
    expect(JSON.parse(f.requestParameters as string)).toEqual([{ name: "region", paramType: "STRING", value: "EMEA" }]);
    await expectIndexExact([id]);
    expect(await allPages("jobDefinitionId=JobDefinition://oracle/apps/ess/custom/Report")).toEqual([id]);
  });

  it("stays exact under concurrent transitions, expiry of terminal requests and re-registration", async () => {
    const ids = Array.from({ length: 120 }, () => newRequestId());
    const jobs = ["JobDefinition://a", "JobDefinition://b", "JobDefinition://c;semi"];
    await Promise.all(
      ids.map((id, i) =>
        ctx.store.register(id, `h${id}`, {
          maxRetries: i % 5 === 0 ? 1 : 0,
          requestTimeout: i % 6 === 5 ? 1 : undefined,
          metadata: i % 4 === 0 ? {} : { jobDefinitionId: jobs[i % 3] as string, submitter: `u${i % 2}` },
        }),
      ),
    );
    await expectIndexExact(ids);
    // the timeout sweep ends the quiet ones with a requestTimeout in ERROR (policy error)
    await Promise.all([0, 1, 2, 3].map((p) => scheduler.sweepTimeouts(p, "error", Date.now() + 61000)));
    // concurrent transitions of every kind, several per request, interleaved over requests
    const statuses = CALLBACK_STATUSES;
    await Promise.all(
      ids.map(async (id, i) => {
        const kind = i % 6;
        if (kind === 0) await callback(id, statuses[i % statuses.length] as CallbackJob["status"]);
        if (kind === 1) {
          await scheduler.cancel(id);
          await callback(id, "UPDATE");
          if (i % 12 === 1) await callback(id, "CANCEL");
        }
        if (kind === 2) {
          await callback(id, "PAUSE");
          await ctx.store.register(id, `h2${id}`, {
            resumed: true,
            metadata: { jobDefinitionId: "JobDefinition://moved" },
          });
        }
        if (kind === 3) await callback(id, "UPDATE");
        if (kind === 4) await callback(id, "SUSPEND");
        await scheduler.sweepTimeouts(i % 4, "mark");
      }),
    );
    await expectIndexExact(ids);
    const byState = new Map<string, string[]>();
    for (const id of ids) {
      const s = (await ctx.store.state(id)) as string;
      byState.set(s, [...(byState.get(s) ?? []), id]);
    }
    expect(byState.get("ERROR")?.length).toBeGreaterThan(0);
    for (const [state, members] of byState) {
      const found = (await allPages(`state=${state}`)).filter((id) => ids.includes(id));
      expect(found.sort(), state).toEqual([...members].sort());
    }

    // terminal hashes expire (retention 5 s); until the sweep prunes them, queries skip their members
    const terminal = [];
    for (const id of ids) if (isTerminal((await ctx.store.state(id)) as RequestState)) terminal.push(id);
    expect(terminal.length).toBeGreaterThan(10);
    for (let i = 0; i < 200; i++) {
      if ((await Promise.all(terminal.map((id) => ctx.store.state(id)))).every((s) => s === null)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const ghosts = (await Promise.all([0, 1, 2, 3].map((p) => index.members(p)))).flat();
    expect(ghosts.length).toBeGreaterThan(0);
    // re-registration of expired ids before the prune: a new request under the same id
    const again = terminal.slice(0, 8);
    await Promise.all(
      again.map((id) => ctx.store.register(id, `h3${id}`, { metadata: { jobDefinitionId: "JobDefinition://a" } })),
    );
    for (const state of ["SUCCEEDED", "ERROR", "CANCELLED", "WARNING"]) {
      expect((await allPages(`state=${state}`)).filter((id) => ids.includes(id))).toEqual([]);
    }
    expect((await allPages("jobDefinitionId=JobDefinition://a")).filter((id) => again.includes(id)).sort()).toEqual(
      [...again].sort(),
    );
    // the sweep's prune takes the expired requests' members out, and only those (the timed-out ones were
    // filed under the sweep's "now", a minute ahead)
    let pruned = 0;
    for (const p of [0, 1, 2, 3]) pruned += (await scheduler.sweepTimeouts(p, "mark", Date.now() + 70000)).pruned;
    expect(pruned).toBe(terminal.length);
    await expectIndexExact(ids);
    for (let p = 0; p < 4; p++) expect(await ctx.redis.zcard(ctx.keys.requestIndexExpiry(p))).toBe(0);
  });

  it("pages merge the partitions in time order, either direction, with filters the index cannot serve", async () => {
    const ids = Array.from({ length: 30 }, () => newRequestId());
    for (const [i, id] of ids.entries()) {
      await ctx.store.register(id, "h", {
        metadata: { jobDefinitionId: "JobDefinition://paged", submitter: `s${i % 3}` },
      });
    }
    const t0 = Number(
      await ctx.redis.hget(ctx.keys.request(ctx.keys.partition(ids[0] as string), ids[0] as string), "registeredAt"),
    );
    const asc = await allPages("jobDefinitionId=JobDefinition://paged", "submissionTime:asc", 4);
    expect(asc).toEqual(ids);
    expect(await allPages("jobDefinitionId=JobDefinition://paged", "submissionTime:desc", 4)).toEqual(
      [...ids].reverse(),
    );
    expect(await allPages("jobDefinitionId=JobDefinition://paged;submitter=s1", "submissionTime:asc", 2)).toEqual(
      ids.filter((_, i) => i % 3 === 1),
    );
    expect(
      (await allPages(`state=RUNNING;submissionTime>=${t0};jobDefinitionId=JobDefinition://paged`, undefined, 5))
        .length,
    ).toBe(30);
    await expect(
      index.query(parseRequestQuery("state=RUNNING", undefined), { limit: 5, cursor: "nope" }),
    ).rejects.toThrow(/cursor/);
  });

  it("lists a request's descriptive fields without the history's header (kept in the same hash)", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", { metadata: { jobDefinitionId: "JobDefinition://header" } });
    const p = ctx.keys.partition(id);
    expect(await ctx.redis.hexists(ctx.keys.request(p, id), HISTORY_HEAD_FIELD)).toBe(1);
    const page = await index.query(parseRequestQuery("jobDefinitionId=JobDefinition://header", undefined), {
      limit: 5,
    });
    expect(page.items.map((i) => i.requestId)).toEqual([id]);
    expect(page.items[0]?.fields.state).toBe("RUNNING");
    expect(page.items[0]?.fields).not.toHaveProperty(HISTORY_HEAD_FIELD);
  });
});

describe("commands per page", () => {
  // its own redis-server: 100k requests stay out of the shared one
  const bin = requireRedisServer("request index commands-per-page suite");
  const server = bin ? new RedisServer(bin) : null;
  afterAll(async () => server?.stop());

  /** Seeds n requests in one partition layout as the scripts write them (a pipeline, fast). */
  async function seed(redis: ReturnType<typeof createRedis>, keys: Keys, from: number, n: number) {
    const base = 1_700_000_000_000;
    for (let start = from; start < from + n; start += 5000) {
      const pipe = redis.pipeline();
      for (let i = start; i < Math.min(from + n, start + 5000); i++) {
        const id = String(10_000_000 + i);
        const p = keys.partition(id);
        const t = base + i;
        const state = i % 10 === 0 ? "CANCELLING" : i % 3 === 0 ? "SUCCEEDED" : "RUNNING";
        const job = `JobDefinition://j${i % 50}`;
        pipe.hset(keys.request(p, id), { state, registeredAt: t, stateChangeTime: t, jobDefinitionId: job });
        pipe.zadd(
          keys.requestIndex(p),
          0,
          `a${US}${t15(t)}${US}${id}`,
          0,
          `s${US}${state}${US}${t15(t)}${US}${id}`,
          0,
          `j${US}${job}${US}${t15(t)}${US}${id}`,
        );
      }
      await pipe.exec();
    }
  }

  async function commandsFor(redis: ReturnType<typeof createRedis>, run: () => Promise<unknown>): Promise<number> {
    await redis.config("RESETSTAT");
    await run();
    const info = await redis.info("commandstats");
    let n = 0;
    for (const m of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm))
      if (m[1] !== "config" && m[1] !== "info") n += Number(m[2]);
    return n;
  }

  it.skipIf(!server)("stay bounded as the data grows from 10k to 100k requests", { timeout: 240_000 }, async () => {
    await (server as RedisServer).start();
    const redis = createRedis((server as RedisServer).url, "tool");
    const keys = new Keys("cnt", 16);
    const idx = new RequestIndex(redis, keys);
    const queries = [
      parseRequestQuery("state=CANCELLING", undefined),
      parseRequestQuery("state=RUNNING,CANCELLING", "stateChangeTime:asc"),
      parseRequestQuery("jobDefinitionId=JobDefinition://j7", undefined),
      parseRequestQuery(undefined, undefined),
      parseRequestQuery("state=SUCCEEDED;submitter=nobody", undefined),
    ];
    const measure = async () => {
      const out: number[] = [];
      for (const q of queries) {
        const first = await idx.query(q, { limit: 50 });
        out.push(await commandsFor(redis, () => idx.query(q, { limit: 50, cursor: first.nextCursor ?? undefined })));
      }
      return out;
    };
    await seed(redis, keys, 0, 10_000);
    const at10k = await measure();
    await seed(redis, keys, 10_000, 90_000);
    expect(await redis.zcard(keys.requestIndex(0))).toBeGreaterThan(100_000 / 16);
    const at100k = await measure();
    console.log(`commands per page (5 queries): 10k ${at10k.join(" ")} · 100k ${at100k.join(" ")}`);
    expect(at100k).toEqual(at10k);
    // one page: at most 4 rounds of (MULTI, one range read per partition and state, EXEC) and (MULTI, ≤ 50 HGETALL, EXEC)
    for (const n of at100k) expect(n).toBeLessThanOrEqual(4 * (2 + 16 * 2 + 2 + 50));
    await redis.quit();
  });
});
