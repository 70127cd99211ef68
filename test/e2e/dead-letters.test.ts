import "@ess/testing/provided";
import { CallbackQueues, DeadLetters, Keys } from "@ess/store";
import { eventually, type RunningProcess, startApp } from "@ess/testing";
import { dropPrefix, testRedis, testRedisEnv, uniquePrefix } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { details, registerRequest } from "../support/http.js";

let gateway: RunningProcess;
let worker: RunningProcess;
const env = { REDIS_URL: "", KEY_PREFIX: uniquePrefix(), PARTITIONS: "4" };
const redis = testRedis("tool");
const keys = new Keys(env.KEY_PREFIX, 4);
const queues = new CallbackQueues(redis, keys, { attempts: 2, backoffMs: 10 });
// polling reads the store directly; the CLI is run only for the operator's actions
const dlq = new DeadLetters(redis, keys, (p, name) => queues.queue(p, name));

const cli = (...args: string[]) => runCli(env, ...args);

beforeAll(async () => {
  Object.assign(env, testRedisEnv());
  [gateway, worker] = await Promise.all([startApp("gateway", env), startApp("worker", env)]);
});

afterAll(async () => {
  await Promise.all([gateway?.stop(), worker?.stop()]);
  await queues.close();
  await dropPrefix(redis, env.KEY_PREFIX);
  await redis.quit();
});

describe("dead letters across processes, operated with the CLI and the admin API", () => {
  it("a callback for a request that is gone is dead-lettered; once the request exists, a CLI replay applies it", async () => {
    const id = "880001";
    const p = keys.partition(id);
    await queues.add(p, { v: 1, requestId: id, seq: 1, execution: 1, status: "SUCCESS", acceptedAt: Date.now() });
    await eventually(async () => (await dlq.get(`${p}.${id}-1`)) !== null, 20000);

    const listed = await cli("dlq", "list", "--request", id, "--json");
    expect(listed.code).toBe(0);
    const page = JSON.parse(listed.out) as { items: { id: string; reason: string; payload: unknown }[] };
    expect(page.items[0]).toMatchObject({
      reason: "request-gone",
      payload: { requestId: id, seq: 1, status: "SUCCESS" },
    });
    const shown = await cli("dlq", "show", `${p}.${id}-1`);
    expect(JSON.parse(shown.out)).toMatchObject({ id: `${p}.${id}-1`, attempts: 1 });

    // the admin API sees the same entry
    const api = await fetch(`${gateway.adminUrl}/admin/dead-letters?requestId=${id}`);
    expect(((await api.json()) as { items: unknown[] }).items).toHaveLength(1);

    await registerRequest(gateway.url, id);
    const replay = await cli("dlq", "replay", `${p}.${id}-1`);
    expect(replay).toMatchObject({ code: 0 });
    expect(replay.out).toContain("replayed");
    await eventually(async () => (await details(gateway.url, id)).state === "SUCCEEDED", 20000);
    const d = await details(gateway.url, id);
    expect(d.history[0]).toMatchObject({ seq: 1, status: "SUCCESS", outcome: "applied" });
    expect((await cli("dlq", "count")).out.trim()).toBe("0");
  });

  it("bulk replay by filter with --wait, purge by filter and age, clear usage errors", async () => {
    for (const rid of ["880101", "880102", "880103"]) {
      await queues.add(keys.partition(rid), {
        v: 1,
        requestId: rid,
        seq: 1,
        execution: 1,
        status: "UPDATE",
        acceptedAt: 1,
      });
    }
    await eventually(async () => (await dlq.count()) === 3, 20000);
    for (const rid of ["880101", "880102"]) await registerRequest(gateway.url, rid);
    const bulk = await cli("dlq", "replay", "--status", "UPDATE", "--since", "1h", "--rate", "50", "--wait");
    expect(bulk.out).toMatch(/started: 3 dead letters/);
    expect(bulk.out).toMatch(/done 3\/3/);
    // 880103 is still unregistered: it comes back as a fresh dead letter
    await eventually(async () => (await dlq.count()) === 1, 20000);
    expect((await cli("dlq", "purge", "--request", "880103")).out).toContain("purged 1");
    expect((await cli("dlq", "purge", "--older-than", "1d")).out).toContain("purged 0");
    const bad = await cli("dlq", "replay");
    expect(bad.code).toBe(2);
    expect(bad.out).toMatch(/replay needs ids/);
    expect((await cli("dlq", "show", "0.none")).code).toBe(1);
  });
});
