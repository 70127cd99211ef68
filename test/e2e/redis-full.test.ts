import "@ess/testing/provided";
import { createRedis, decodeHistory, HISTORY_HEAD_FIELD, Keys } from "@ess/store";
import { eventually, RedisServer, type RunningProcess, requireRedisServer, startApp } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Redis reaches maxmemory under noeviction: registrations and callbacks are answered 503 +
// Retry-After + ESS-50303 (script and queue enqueue modes), /readyz fails, nothing is half-written,
// and once memory is freed the same calls, retried, succeed and are applied.
const PARTITIONS = 2;
let redis: RedisServer;
let admin: Redis;
let keys: Keys;
let script: RunningProcess;
let queue: RunningProcess;
let env: Record<string, string>;

// its own redis-server (CONFIG SET maxmemory or a restart must not reach other suites)
const bin = requireRedisServer("Redis-full suite");

beforeAll(async () => {
  if (!bin) return;
  // a private server: CONFIG SET maxmemory must not reach any other suite
  redis = await new RedisServer(bin).start();
  admin = createRedis(redis.url, "tool");
  const prefix = uniquePrefix();
  keys = new Keys(prefix, PARTITIONS);
  env = {
    REDIS_URL: redis.url,
    KEY_PREFIX: prefix,
    PARTITIONS: String(PARTITIONS),
    ALLOW_ANONYMOUS: "true",
    RETRY_AFTER_SECONDS: "3",
    ACCESS_LOG: "false",
  };
  [script, queue] = await Promise.all([
    startApp("gateway", { ...env, ENQUEUE_MODE: "script" }),
    startApp("gateway", { ...env, ENQUEUE_MODE: "queue" }),
  ]);
});

afterAll(async () => {
  if (!bin) return;
  await Promise.all([script?.stop(), queue?.stop()]);
  await admin?.quit();
  await redis?.stop();
});

interface Answer {
  status: number;
  retryAfter: string | null;
  body: { errorCode?: string; requestHandle?: string };
}

async function call(url: string, path: string, body?: unknown, idempotencyKey?: string): Promise<Answer> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (idempotencyKey) headers["idempotency-key"] = idempotencyKey;
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: text ? JSON.parse(text) : {} };
}

const register = (url: string, id: string) => call(url, `/gateway/v1/requests/${id}/executions`);
const callback = (url: string, id: string, handle: string, n: number, key?: string) =>
  call(
    url,
    `/ess/rest/scheduler/v1/requests/${id}/executionStatus`,
    { requestHandle: handle, status: "UPDATE", statusMessage: `update ${n}` },
    key,
  );

/** Job ids of a partition's queue, waiting or delayed. */
async function queuedJobs(p: number): Promise<Set<string>> {
  const prefix = keys.jobPrefix(p);
  const [wait, delayed] = await Promise.all([
    admin.lrange(`${prefix}wait`, 0, -1),
    admin.zrange(`${prefix}delayed`, "0", "-1"),
  ]);
  return new Set([...wait, ...delayed]);
}

async function scrape(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1] ?? Number.NaN);
}

describe.skipIf(!bin)("Redis at maxmemory (noeviction)", () => {
  it("answers 503 + Retry-After + ESS-50303, fails readiness, writes nothing, and recovers", async () => {
    const gateways = [
      { name: "script", g: script },
      { name: "queue", g: queue },
    ];
    // requests registered and called back while Redis has room: 2 accepted callbacks each
    const targets: { id: string; handle: string; g: RunningProcess; accepted: number }[] = [];
    let nextId = 5000;
    for (const { g } of gateways) {
      for (let i = 0; i < 3; i++) {
        const id = String(++nextId);
        const reg = await register(g.url, id);
        expect(reg.status).toBe(201);
        const t = { id, handle: reg.body.requestHandle as string, g, accepted: 0 };
        for (let n = 1; n <= 2; n++) {
          const res = await callback(g.url, id, t.handle, n, `before-${id}-${n}`);
          expect(res.status).toBe(200);
          t.accepted++;
        }
        targets.push(t);
      }
    }
    for (const { g } of gateways) expect((await fetch(`${g.url}/readyz`)).status).toBe(200);

    // fill: any limit below the memory in use puts Redis in the state a growing data set reaches
    // keys in Redis, but for the readiness probe's own short-lived key
    const count = async () => (await admin.dbsize()) - (await admin.exists(keys.readinessProbe()));
    const before = await count();
    await admin.config("SET", "maxmemory", "1");

    const refused: { g: RunningProcess; kind: string; res: Answer }[] = [];
    const retries: (() => Promise<Answer>)[] = [];
    for (const t of targets) {
      for (let n = 3; n <= 5; n++) {
        const key = `full-${t.id}-${n}`;
        refused.push({ g: t.g, kind: "callback+key", res: await callback(t.g.url, t.id, t.handle, n, key) });
        retries.push(() => callback(t.g.url, t.id, t.handle, n, key));
      }
      refused.push({ g: t.g, kind: "callback", res: await callback(t.g.url, t.id, t.handle, 99) });
    }
    // a re-registration of a running request: its script's first write (HDEL) is one Redis allows at
    // maxmemory, so only the declared flags make Redis refuse it whole (the old handle stays valid,
    // which the retries below rely on)
    for (const t of [targets[0]!, targets[3]!]) {
      refused.push({ g: t.g, kind: "re-registration", res: await register(t.g.url, t.id) });
    }
    const fresh: { id: string; g: RunningProcess }[] = [];
    for (const { g } of gateways) {
      for (let i = 0; i < 3; i++) {
        const id = String(++nextId);
        refused.push({ g, kind: "registration", res: await register(g.url, id) });
        fresh.push({ id, g });
      }
    }
    for (const r of refused) {
      expect(r.res.status, r.kind).toBe(503);
      expect(r.res.retryAfter, r.kind).toBe("3");
      expect(r.res.body.errorCode, r.kind).toBe("ESS-50303");
    }
    // reads still work (the read script is declared no-writes)
    for (const t of targets) {
      expect((await fetch(`${t.g.url}/ess/rest/scheduler/v1/requests/${t.id}`)).status).toBe(200);
    }
    for (const { g } of gateways) {
      const ready = await fetch(`${g.url}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { checks: Record<string, string> };
      expect(body.checks.memory).toMatch(/^full/);
    }
    // counted, and logged once per refusal at warn, without a stack
    const perGateway = (g: RunningProcess) => refused.filter((r) => r.g === g).length;
    for (const { g } of gateways) {
      expect(await scrape(g.adminUrl, "ess_redis_out_of_memory_total")).toBe(perGateway(g));
      const lines = g
        .output()
        .split("\n")
        .filter((l) => l.includes("Redis is full"));
      expect(lines).toHaveLength(perGateway(g));
      for (const l of lines) {
        expect(JSON.parse(l).level).toBe(40);
        expect(l).not.toContain("stack");
      }
      expect(g.output()).not.toContain("unexpected error");
    }

    // nothing half-written: no key was added, each request's seq is the count of accepted callbacks
    // and every seq has its job, no idempotency record of a refused call, no refused registration
    expect(await count()).toBe(before);
    for (const t of targets) {
      const p = keys.partition(t.id);
      expect(Number(await admin.hget(keys.request(p, t.id), "seq"))).toBe(t.accepted);
      const jobs = await queuedJobs(p);
      for (let s = 1; s <= t.accepted; s++) expect(jobs.has(`${t.id}-${s}`)).toBe(true);
      for (let n = 3; n <= 5; n++) expect(await admin.exists(keys.idempotency(p, t.id, `full-${t.id}-${n}`))).toBe(0);
    }
    for (const f of fresh) expect(await admin.exists(keys.request(keys.partition(f.id), f.id))).toBe(0);

    // memory freed: ready again by itself, the retries (same Idempotency-Keys) succeed
    await admin.config("SET", "maxmemory", "0");
    for (const { g } of gateways) {
      await eventually(async () => (await fetch(`${g.url}/readyz`)).status === 200, 15000, "ready again");
    }
    for (const retry of retries) expect((await retry()).status).toBe(200);
    for (const f of fresh) expect((await register(f.g.url, f.id)).status).toBe(201);
    for (const t of targets) t.accepted += 3;

    // a worker applies everything: exactly the accepted callbacks, in order
    const worker = await startApp("worker", env);
    try {
      for (const t of targets) {
        const p = keys.partition(t.id);
        await eventually(
          async () => Number(await admin.hget(keys.request(p, t.id), "applied")) === t.accepted,
          30000,
          `request ${t.id} applied`,
        );
        const history = decodeHistory(
          await admin.lrange(keys.history(p, t.id), 0, -1),
          await admin.hget(keys.request(p, t.id), HISTORY_HEAD_FIELD),
        ).filter((h) => h.outcome !== "registered");
        expect(history.map((h) => h.seq).reverse()).toEqual(Array.from({ length: t.accepted }, (_, i) => i + 1));
      }
    } finally {
      await worker.stop();
    }
  });
});
