import "@ess/testing/provided";
import { CallbackQueues, createRedis, DeadLetters, Keys, RequestStore } from "@ess/store";
import { eventually, RedisServer, type RunningProcess, requireRedisServer, startApp } from "@ess/testing";
import { dropPrefix, uniquePrefix } from "@ess/testing/context";
import { afterAll, describe, expect, inject, it } from "vitest";
import { drive, FAULT_LOAD, registerMany } from "../support/load.js";
import { account } from "../support/verify.js";

const env = {
  REDIS_URL: "",
  KEY_PREFIX: uniquePrefix(),
  PARTITIONS: "4",
  WORKER_CONCURRENCY: "16",
  SHUTDOWN_TIMEOUT_SECONDS: "10",
  GAP_TIMEOUT_MS: "1500",
};
/** the last test stops a Redis of its own */
const bin = requireRedisServer("shutdown suite");
const running: RunningProcess[] = [];
const redis = createRedis(inject("redisUrl"), "tool");
const keys = new Keys(env.KEY_PREFIX, 4);
const queues = new CallbackQueues(redis, keys, { attempts: 1, backoffMs: 1 });
const store = new RequestStore(redis, keys);
const deadLetters = new DeadLetters(redis, keys, (p, n) => queues.queue(p, n));

async function start(app: "gateway" | "worker") {
  env.REDIS_URL = inject("redisUrl");
  const p = await startApp(app, env);
  running.push(p);
  return p;
}

afterAll(async () => {
  await Promise.all(running.map((p) => p.kill()));
  await queues.close();
  await dropPrefix(redis, env.KEY_PREFIX);
  await redis.quit();
});

describe("graceful shutdown", () => {
  it("SIGTERM on a worker mid-load: it finishes or hands back its jobs, exits 0 in bounded time; nothing is lost", async () => {
    const gateway = await start("gateway");
    const [first, second] = await Promise.all([start("worker"), start("worker")]);
    const sent = await registerMany([gateway.url], 940_000, 120);
    let stopped: Promise<{ code: number | null; ms: number }> | null = null;
    await drive(() => [gateway.url], sent, {
      ...FAULT_LOAD,
      onProgress: (n) => {
        if (!stopped && n >= 300) {
          const t0 = Date.now();
          stopped = (first as RunningProcess).stop().then((code) => ({ code, ms: Date.now() - t0 }));
        }
      },
    });
    const result = await (stopped as unknown as Promise<{ code: number | null; ms: number }>);
    expect(result.code).toBe(0);
    expect(result.ms).toBeLessThan(15000);
    expect(first?.output()).toContain('"msg":"stopped"');
    const acc = await account(store, deadLetters, sent);
    console.log(
      `worker SIGTERM: exited ${result.code} after ${result.ms} ms; answered 200 ${acc.accepted}, applied ${acc.applied}, ` +
        `lost ${acc.missing}, twice ${acc.twice}`,
    );
    expect(acc.missing).toBe(0);
    expect(acc.twice).toBe(0);
    expect(second?.child.exitCode).toBeNull();
  });

  it("SIGTERM on the gateway mid-load: in-flight calls are answered, the process exits 0; every 200 is applied", async () => {
    const gateway = await start("gateway");
    const sent = await registerMany([gateway.url], 950_000, 120);
    let stopped: Promise<number | null> | null = null;
    await drive(() => [gateway.url], sent, {
      ...FAULT_LOAD,
      onProgress: (n) => {
        if (!stopped && n >= 300) stopped = gateway.stop();
      },
    });
    expect(await (stopped as unknown as Promise<number | null>)).toBe(0);
    expect(gateway.output()).toContain('"msg":"stopped"');
    const acc = await account(store, deadLetters, sent);
    const refused = sent.flatMap((s) => s.rejected);
    console.log(
      `gateway SIGTERM: answered 200 ${acc.accepted}, refused after close ${refused.length}, applied ${acc.applied}, lost ${acc.missing}`,
    );
    expect(acc.accepted).toBeGreaterThan(300);
    expect(acc.missing).toBe(0);
    // after close: connection refused/closed, never a 5xx answer
    expect(refused.filter((r) => /^5\d\d$/.test(r))).toEqual([]);
  });

  it.skipIf(!bin)(
    "SIGTERM on a worker whose Redis is down: it exits 1 at SHUTDOWN_TIMEOUT_SECONDS, logging the forced exit",
    async () => {
      const own = await new RedisServer(bin as string).start();
      try {
        const timeoutSeconds = 2;
        const worker = await startApp("worker", {
          ...env,
          REDIS_URL: own.url,
          SHUTDOWN_TIMEOUT_SECONDS: String(timeoutSeconds),
          // the webhook side too: its dispatcher and delivery workers hold connections of their own
          WEBHOOK_SECRET: "shutdown-test-secret-0123",
        });
        running.push(worker);
        await own.kill();
        await eventually(
          async () => worker.output().includes("redis connection error"),
          30000,
          "the worker to see Redis go",
        );
        const t0 = Date.now();
        const exited = worker.stop();
        // far above the deadline: only a shutdown that never ends reaches it
        const bound = (timeoutSeconds + 20) * 1000;
        const code = await Promise.race([exited, new Promise<"hung">((r) => setTimeout(() => r("hung"), bound))]);
        const ms = Date.now() - t0;
        console.log(
          `worker SIGTERM with Redis down: exit ${code} after ${ms} ms (SHUTDOWN_TIMEOUT_SECONDS=${timeoutSeconds})`,
        );
        expect(code).toBe(1);
        expect(ms).toBeGreaterThanOrEqual(timeoutSeconds * 1000 - 100);
        expect(worker.output()).toContain('"msg":"shutdown timed out: forcing exit"');
        expect(worker.output()).not.toContain('"msg":"stopped"');
      } finally {
        await own.stop();
      }
    },
  );
});
