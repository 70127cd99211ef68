import "../support/provided.js";
import { CallbackQueues, createRedis, DeadLetters, Keys, RequestStore } from "@ess/store";
import { RedisServer } from "@ess/testing";
import { afterEach, describe, expect, it } from "vitest";
import { accountCalls, type ClientRun, driveClients, formatCalls } from "../support/clients.js";
import { uniquePrefix } from "../support/context.js";
import { drive, FAULT_LOAD, registerMany, type Sent } from "../support/load.js";
import { type RunningProcess, startApp } from "../support/processes.js";
import { requireRedisServer } from "../support/redis-binary.js";
import { account } from "../support/verify.js";

// Crash tests: real processes killed with SIGKILL mid-load. Each prints the counts it compared.
const FAST = {
  PARTITIONS: "4",
  WORKER_CONCURRENCY: "16",
  WORKER_LOCK_MS: "3000",
  WORKER_STALLED_INTERVAL_MS: "1000",
  GAP_TIMEOUT_MS: "1500",
  DLQ_SWEEP_INTERVAL_MS: "1000",
  JOB_BACKOFF_MS: "100",
  REDIS_COMMAND_TIMEOUT_MS: "500",
};
const running: RunningProcess[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.kill()));
  for (const c of cleanups.splice(0)) await c();
});

async function setup(redisUrl: string, extra: Record<string, string> = {}) {
  const env = { ...FAST, REDIS_URL: redisUrl, KEY_PREFIX: uniquePrefix(), ...extra };
  const redis = createRedis(redisUrl, "worker");
  redis.on("error", () => {}); // the Redis test restarts the server under it
  const keys = new Keys(env.KEY_PREFIX, 4);
  const queues = new CallbackQueues(redis, keys, { attempts: 1, backoffMs: 1 });
  const store = new RequestStore(redis, keys);
  const deadLetters = new DeadLetters(redis, keys, (p, n) => queues.queue(p, n));
  cleanups.push(async () => {
    await queues.close();
    redis.disconnect();
  });
  const start = async (app: "gateway" | "worker") => {
    const p = await startApp(app, env);
    running.push(p);
    return p;
  };
  return { env, store, deadLetters, start };
}

function report(name: string, sent: Sent[], acc: Awaited<ReturnType<typeof account>>) {
  const rejected = sent.reduce((n, s) => n + s.rejected.length, 0);
  console.log(
    `${name}: sent ${acc.accepted + rejected}, answered 200 ${acc.accepted}, not accepted ${rejected}; ` +
      `applied ${acc.applied}, late ${acc.late}, ignored ${acc.ignored}, dead-lettered ${acc.deadLettered}, ` +
      `applied twice ${acc.twice}, lost ${acc.missing}`,
  );
}

// without redis-server this fails in CI and is skipped, with a warning, on a developer's machine
const bin = requireRedisServer("crash suite");

describe.skipIf(!bin)("crashes", () => {
  it("a worker killed mid-load: the other finishes its work; every 200 ends applied, ignored or dead-lettered, none twice", async () => {
    const server = await new RedisServer(bin as string).start();
    cleanups.push(() => server.stop());
    const { store, deadLetters, start } = await setup(server.url);
    const [gateway, victim] = await Promise.all([start("gateway"), start("worker"), start("worker")]);
    const sent = await registerMany([gateway.url], 910_000, 150);
    let killed = false;
    await drive(() => [gateway.url], sent, {
      ...FAULT_LOAD,
      retries: 50, // a 503 under CPU pressure (REDIS_COMMAND_TIMEOUT_MS is short here) is retried, as clients do
      onProgress: (n) => {
        if (!killed && n >= 400) {
          killed = true;
          void victim?.kill();
        }
      },
    });
    expect(killed).toBe(true);
    const acc = await account(store, deadLetters, sent);
    report("worker kill -9", sent, acc);
    expect(acc.accepted).toBe(150 * 9);
    expect(acc.missing).toBe(0);
    expect(acc.twice).toBe(0);
    for (const s of sent) expect(await store.state(s.id)).toBe("SUCCEEDED");
  });

  it("the gateway killed mid-load: every callback it answered 200 is applied", async () => {
    const server = await new RedisServer(bin as string).start();
    cleanups.push(() => server.stop());
    const { store, deadLetters, start } = await setup(server.url);
    const [first] = await Promise.all([start("gateway"), start("worker")]);
    let bases = [first?.url ?? ""];
    const sent = await registerMany(bases, 920_000, 150);
    let killed = false;
    await drive(() => bases, sent, {
      ...FAULT_LOAD,
      retries: 50,
      onProgress: (n) => {
        if (!killed && n >= 400) {
          killed = true;
          void first?.kill().then(async () => {
            bases = [(await start("gateway")).url];
          });
        }
      },
    });
    const acc = await account(store, deadLetters, sent);
    report("gateway kill -9", sent, acc);
    expect(killed).toBe(true);
    expect(acc.accepted).toBeGreaterThan(1000);
    expect(acc.missing).toBe(0);
    expect(acc.twice).toBe(0);
    expect(acc.deadLettered).toBe(0);
  });

  it("Redis killed and restarted with AOF (appendfsync always): no acknowledged callback is lost", async () => {
    const server = await new RedisServer(bin as string, { appendonly: true, fsync: "always" }).start();
    cleanups.push(() => server.stop());
    const { store, deadLetters, start } = await setup(server.url);
    const [gateway] = await Promise.all([start("gateway"), start("worker")]);
    const sent = await registerMany([gateway?.url ?? ""], 930_000, 150);
    let restarted: Promise<unknown> | null = null;
    await drive(() => [gateway?.url ?? ""], sent, {
      ...FAULT_LOAD,
      retries: 50,
      onProgress: (n) => {
        if (!restarted && n >= 400) {
          restarted = server.kill().then(async () => {
            await new Promise((r) => setTimeout(r, 500));
            await server.start();
          });
        }
      },
    });
    await restarted;
    const acc = await account(store, deadLetters, sent);
    report("redis kill -9 + AOF restart", sent, acc);
    expect(sent.flatMap((s) => s.rejected)).toEqual([]); // 503 while Redis was away, then accepted on retry
    expect(acc.missing).toBe(0);
    expect(acc.twice).toBe(0);
  });

  // Jobs as packages/client runs them: every call retried with its one Idempotency-Key through 409,
  // 429, 5xx and dropped connections (some answers are thrown away after the gateway sent them), while
  // a gateway, a worker or Redis (AOF, appendfsync always) is killed with SIGKILL. Each acknowledged
  // call must be in its request's history exactly once, and no call twice.
  const scenarios = [
    { victim: "gateway", mode: "script" },
    { victim: "gateway", mode: "queue" },
    { victim: "worker", mode: "script" },
    { victim: "redis", mode: "script" },
  ] as const;
  it.each(scenarios)(
    "clients retrying with one Idempotency-Key, $victim kill -9 (ENQUEUE_MODE=$mode): every acknowledged call applied exactly once",
    async ({ victim, mode }) => {
      const server = await new RedisServer(bin as string, { appendonly: true, fsync: "always" }).start();
      cleanups.push(() => server.stop());
      const { store, deadLetters, start } = await setup(server.url, { ENQUEUE_MODE: mode });
      const [gateway, worker] = await Promise.all([start("gateway"), start("worker"), start("worker")]);
      let base = gateway?.url ?? "";
      const requests = 120;
      const firstId = 940_000 + scenarios.findIndex((s) => s.victim === victim && s.mode === mode) * 1000;
      const runs: ClientRun[] = (await registerMany([base], firstId, requests)).map((r) => ({
        id: r.id,
        handle: r.handle,
        calls: [],
      }));
      const total = requests * 9;
      // two kills, early and late in the run
      const at = [Math.floor(total * 0.25), Math.floor(total * 0.6)];
      let kills = 0;
      let gatewayNow = gateway;
      let workerNow = worker;
      const crash = async () => {
        if (victim === "gateway") {
          await gatewayNow?.kill();
          gatewayNow = await start("gateway");
          base = gatewayNow.url;
        } else if (victim === "worker") {
          // a fresh worker takes the killed one's place beside the survivor
          await workerNow?.kill();
          workerNow = await start("worker");
        } else {
          await server.kill();
          await new Promise((r) => setTimeout(r, 300));
          await server.start();
        }
      };
      // one crash after the other, each once the load reaches its mark
      let crashes: Promise<unknown> = Promise.resolve();
      const { dropped } = await driveClients(() => base, runs, {
        updates: 8,
        final: "SUCCESS",
        concurrency: 24,
        attempts: 40,
        dropRate: 0.05,
        onProgress: (n) => {
          if (kills < at.length && n >= (at[kills] ?? Infinity)) {
            kills++;
            crashes = crashes.then(crash);
          }
        },
      });
      await crashes;
      const acc = await accountCalls(store, deadLetters, runs, dropped);
      console.log(formatCalls(`clients, ${victim} kill -9 x${kills}, ENQUEUE_MODE=${mode}`, acc));
      expect(kills).toBe(2);
      expect(acc.calls).toBe(total);
      expect(acc.acknowledged).toBeGreaterThan(total * 0.9);
      expect(acc.dropped).toBeGreaterThan(0);
      expect(acc.duplicates).toBe(0);
      expect(acc.lost).toBe(0);
      expect(acc.applied).toBe(acc.acknowledged);
      expect(acc.unsettled).toEqual([]);
    },
    240_000,
  );
});
