import "@ess/testing/provided";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { CallbackQueues, createRedis, DeadLetters, Keys, masters, RequestStore } from "@ess/store";
import { eventually, ROOT, type RunningProcess, startApp, startLocalCluster } from "@ess/testing";
import { testRedis, testRedisEnv, uniquePrefix } from "@ess/testing/context";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { accountCalls, type ClientRun, driveClients, formatCalls } from "../support/clients.js";
import { callback, details, postJson, registerRequest } from "../support/http.js";
import { registerMany } from "../support/load.js";

// What only a Redis Cluster shows: partitions spread over the masters, every partition served,
// replica acknowledgement (WAIT), bounded connections, and a master killed under load.
const onCluster = inject("redisClusterNodes") !== "";
const run = promisify(execFile);
const running: RunningProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()));
});

async function start(app: "gateway" | "worker", env: Record<string, string>): Promise<RunningProcess> {
  const p = await startApp(app, env);
  running.push(p);
  return p;
}

/** One request id per partition (and more, round-robin): ids whose partition is p. */
function idsPerPartition(keys: Keys, first: number, perPartition: number): string[] {
  const out: string[][] = Array.from({ length: keys.partitions }, () => []);
  for (let id = first; out.some((l) => l.length < perPartition); id++) {
    const l = out[keys.partition(String(id))] as string[];
    if (l.length < perPartition) l.push(String(id));
  }
  return out.flat();
}

describe.skipIf(!onCluster)("on a Redis Cluster (3 masters, 3 replicas)", () => {
  const env = { ...testRedisEnv(), KEY_PREFIX: uniquePrefix(), PARTITIONS: "16" };
  let redis: Redis;
  beforeAll(() => {
    redis = testRedis("tool");
  });
  afterAll(async () => {
    await redis.quit();
  });

  it("the CLI prints partition -> slot -> master; 16 partitions spread 5, 5 and 6 over the 3 masters", async () => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", "apps/cli/src/main.ts", "partitions"], {
      cwd: ROOT,
      env: { ...process.env, ...env },
    });
    console.log(stdout);
    const lines = stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^partition\s+tag\s+slot\s+master$/);
    const rows = lines.slice(1, 17).map((l) => l.split(/\s+/));
    const keys = new Keys(env.KEY_PREFIX, 16);
    expect(rows.map((r) => Number(r[2]))).toEqual(Array.from({ length: 16 }, (_, p) => keys.slot(p)));
    const per = lines.slice(17).map((l) => Number(/: (\d+) partitions$/.exec(l)?.[1]));
    expect(per.sort()).toEqual([5, 5, 6]);
  });

  it.each([
    ["script", 810_000],
    ["queue", 815_000],
  ])(
    "ENQUEUE_MODE=%s: callbacks of every partition are applied in order (a gateway and a worker process on the cluster)",
    async (mode, firstId) => {
      const [gateway] = await Promise.all([start("gateway", { ...env, ENQUEUE_MODE: mode }), start("worker", env)]);
      const keys = new Keys(env.KEY_PREFIX, 16);
      const ids = idsPerPartition(keys, firstId, 2);
      await Promise.all(
        ids.map(async (id) => {
          const { requestHandle } = await registerRequest(gateway.url, id);
          for (const s of ["UPDATE", "UPDATE", "SUCCESS"])
            expect(await callback(gateway.url, id, requestHandle, s)).toBe(200);
        }),
      );
      for (const id of ids) {
        const d = await eventually(async () => {
          const r = await details(gateway.url, id);
          return r.state === "SUCCEEDED" && r;
        });
        const seqs = d.history.filter((h) => h.outcome === "applied").map((h) => h.seq);
        expect(seqs.reverse()).toEqual([1, 2, 3]);
      }
      expect(new Set(ids.map((id) => keys.partition(id))).size).toBe(16);
    },
  );

  it("ACK_REPLICAS: 200 once a replica has it; asking for 2 of 1 replica answers 503 ESS-50304, and the retry with the same Idempotency-Key is answered like the first and applied once", async () => {
    const [strict, one] = await Promise.all([
      start("gateway", { ...env, ACK_REPLICAS: "2", ACK_TIMEOUT_MS: "100" }),
      start("gateway", { ...env, ACK_REPLICAS: "1" }),
      start("worker", env),
    ]);
    const id = "820001";
    const { requestHandle } = await registerRequest(one.url, id);
    const url = (base: string) => `${base}/ess/rest/scheduler/v1/requests/${id}/executionStatus`;
    const body = { requestHandle, status: "UPDATE", statusMessage: "acked" };
    const headers = { "idempotency-key": "k-820001" };
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await postJson(url(strict.url), body, headers);
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("1");
      const problem = (await res.json()) as { errorCode: string; detail: string };
      expect(problem.errorCode).toBe("ESS-50304");
      expect(problem.detail).toMatch(/only 1 of the 2 replicas/);
    }
    const ok = await postJson(url(one.url), body, headers);
    expect(ok.status).toBe(200);
    expect(await callback(one.url, id, requestHandle, "SUCCESS")).toBe(200);
    const d = await eventually(async () => {
      const r = await details(one.url, id);
      return r.state === "SUCCEEDED" && r;
    });
    expect(d.history.filter((h) => h.message === "acked")).toHaveLength(1);
  });

  it("connections per worker process stay bounded: measured for 1, 16 and 64 partitions, and WORKER_PARTITIONS caps them", async () => {
    const nodes = masters(redis);
    const clients = async () => {
      let n = 0;
      for (const node of nodes) n += Number(/connected_clients:(\d+)/.exec(await node.info("clients"))?.[1] ?? 0);
      return n;
    };
    const measured: Record<string, number> = {};
    for (const [label, extra] of [
      ["P=1", { PARTITIONS: "1" }],
      ["P=16", { PARTITIONS: "16" }],
      ["P=64", { PARTITIONS: "64" }],
      ["P=64, WORKER_PARTITIONS=0-7", { PARTITIONS: "64", WORKER_PARTITIONS: "0-7" }],
    ] as const) {
      const before = await clients();
      const w = await start("worker", { ...env, KEY_PREFIX: uniquePrefix(), ...extra });
      // BullMQ opens its blocking connections as the workers start polling
      await new Promise((r) => setTimeout(r, 1500));
      measured[label] = (await clients()) - before;
      await w.stop();
      running.splice(running.indexOf(w), 1);
      await eventually(async () => (await clients()) <= before + 1, 10000, "the worker's connections closed");
    }
    console.log(`worker connections over the 3 masters: ${JSON.stringify(measured)}`);
    const served = (label: string) => measured[label] ?? Number.POSITIVE_INFINITY;
    // per served partition: BullMQ's blocking connection (a Cluster of its own: its master, and the
    // node it read the slot map from), plus a fixed set; so ~2 per served partition + 6, never P-fold more
    const bound = (served: number) => Math.ceil(2.5 * served) + 8;
    expect(served("P=1")).toBeLessThanOrEqual(bound(1));
    expect(served("P=16")).toBeLessThanOrEqual(bound(16));
    expect(served("P=64")).toBeLessThanOrEqual(bound(64));
    expect(served("P=64, WORKER_PARTITIONS=0-7")).toBeLessThanOrEqual(bound(8));
    expect(served("P=64, WORKER_PARTITIONS=0-7")).toBeLessThan(served("P=64"));
  });
});

describe.skipIf(!onCluster)("a master killed with SIGKILL under load (its own cluster)", () => {
  it("ACK_REPLICAS=1, clients retrying with one Idempotency-Key: a replica takes over, no acknowledged callback lost or applied twice", async () => {
    const started = await startLocalCluster();
    if (!started.cluster) throw new Error(started.reason);
    const cluster = started.cluster;
    try {
      const env = {
        REDIS_URL: cluster.url,
        REDIS_CLUSTER_NODES: cluster.seeds.join(","),
        KEY_PREFIX: uniquePrefix(),
        PARTITIONS: "16",
        ACK_REPLICAS: "1",
        ACK_TIMEOUT_MS: "1000",
        REDIS_COMMAND_TIMEOUT_MS: "1000",
        REDIS_CLUSTER_FAILOVER_MS: "10000",
        WORKER_CONCURRENCY: "16",
        WORKER_LOCK_MS: "3000",
        WORKER_STALLED_INTERVAL_MS: "1000",
        GAP_TIMEOUT_MS: "3000",
        DLQ_SWEEP_INTERVAL_MS: "1000",
        JOB_BACKOFF_MS: "100",
      };
      const [gateway, ...workers] = await Promise.all([
        start("gateway", env),
        start("worker", env),
        start("worker", env),
      ]);
      const redis = createRedis(cluster.url, "tool", { clusterNodes: cluster.seeds });
      const keys = new Keys(env.KEY_PREFIX, 16);
      const store = new RequestStore(redis, keys);
      const queues = new CallbackQueues(redis, keys, { attempts: 8, backoffMs: 100 });
      const deadLetters = new DeadLetters(redis, keys, (p, name) => queues.queue(p, name));
      const requests = 90;
      const runs: ClientRun[] = (await registerMany([gateway.url], 830_000, requests)).map((r) => ({
        id: r.id,
        handle: r.handle,
        calls: [],
      }));
      const total = requests * 7;
      const before = await cluster.masterPorts();
      const victim = before[0] as number;
      let killed = false;
      let crash: Promise<void> = Promise.resolve();
      const { dropped } = await driveClients(() => gateway.url, runs, {
        updates: 6,
        final: "SUCCESS",
        concurrency: 16,
        attempts: 60,
        dropRate: 0.05,
        onProgress: (n) => {
          if (!killed && n >= total * 0.3) {
            killed = true;
            crash = (async () => {
              await cluster.node(victim).kill();
              // the promoted replica has no replica of its own (ACK_REPLICAS=1 answers 503) until the
              // old master is back: it rejoins as the new master's replica
              await new Promise((r) => setTimeout(r, 3000));
              await cluster.node(victim).start();
            })();
          }
        },
      });
      await crash;
      // well inside the test's timeout, so that a stall is reported with its diagnosis
      const acc = await accountCalls(store, deadLetters, runs, dropped, 60000);
      const now = await cluster.masterPorts();
      console.log(
        formatCalls(`cluster master kill -9 (port ${victim}), ACK_REPLICAS=1`, acc) +
          `; masters (ports) before: ${before.join(",")}, after: ${now.join(",")}`,
      );
      if (acc.unsettled.length > 0 || acc.duplicates > 0 || acc.deadLettered > 0) {
        // where the unapplied calls' jobs are, why jobs were dead-lettered, and what the workers said
        for (const p of new Set(acc.unsettled.map((u) => keys.partition(u.split(" ")[0] as string)))) {
          console.log(`partition ${p} jobs: ${JSON.stringify(await queues.queue(p).getJobCounts())}`);
        }
        for (const d of (await deadLetters.list({}, { limit: 20 })).items) {
          console.log(`dead letter ${d.jobId}: ${d.reason} after ${d.attempts} attempts: ${d.error}`);
        }
        for (const w of workers) {
          const lines = w
            .output()
            .split("\n")
            .filter((l) => /"level":(40|50|60)/.test(l));
          console.log(`worker ${w.child.pid}: ${lines.length} warn/error lines\n${lines.slice(-30).join("\n")}`);
        }
      }
      expect(killed).toBe(true);
      expect(now).not.toContain(victim);
      expect(now).toHaveLength(3);
      expect(acc.calls).toBe(total);
      expect(acc.acknowledged).toBeGreaterThan(total * 0.9);
      expect(acc.duplicates).toBe(0);
      expect(acc.lost).toBe(0);
      expect(acc.applied).toBe(acc.acknowledged);
      expect(acc.unsettled).toEqual([]);
      await queues.close();
      redis.disconnect();
    } finally {
      await Promise.all(running.splice(0).map((p) => p.kill()));
      await cluster.stop();
    }
  }, 110_000);
});
