/**
 * `npm run bench:cluster`: the cost of cluster mode, in one run. Interleaved rounds of the same load
 * (register, then per request UPDATEs at once and a final SUCCESS, end to end through a gateway and a
 * worker process until the backlog is drained) on a single Redis and on a local Redis Cluster of 3
 * masters + 3 replicas. Reports the end-to-end rate of each (and their ratio), the Redis CPU per
 * callback, and on the cluster each master's CPU per callback with the max/mean balance.
 *
 *   npm run bench:cluster -- [--requests N] [--updates K] [--rounds R] [--out DIR]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createRedis, Keys } from "@ess/store";
import { findRedisServer, RedisServer, type RunningProcess, startApp, startLocalCluster } from "@ess/testing";
import { drive, registerMany, type Sent } from "../test/support/load.js";
import { cpuSeconds, waitDrained } from "./measure.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "1500" },
    updates: { type: "string", default: "5" },
    rounds: { type: "string", default: "2" },
    out: { type: "string", default: "bench-results" },
  },
});
const REQUESTS = Number(values.requests);
const UPDATES = Number(values.updates);
const ROUNDS = Number(values.rounds);
const PARTITIONS = 16;
const log = (m: string) => console.error(`[bench:cluster] ${m}`);

interface Backend {
  url: string;
  env: Record<string, string>;
  /** pid of each master, by "port" */
  masters: Map<number, number | undefined>;
  stop(): Promise<void>;
}

async function single(bin: string): Promise<Backend> {
  const s = await new RedisServer(bin).start();
  return { url: s.url, env: { REDIS_URL: s.url }, masters: new Map([[s.port, s.pid]]), stop: () => s.stop() };
}

async function cluster(): Promise<Backend> {
  const started = await startLocalCluster();
  if (!started.cluster) throw new Error(started.reason);
  const c = started.cluster;
  const masters = new Map((await c.masterPorts()).map((p) => [p, c.node(p).pid] as const));
  return {
    url: c.url,
    env: { REDIS_URL: c.url, REDIS_CLUSTER_NODES: c.seeds.join(",") },
    masters,
    stop: () => c.stop(),
  };
}

async function measure(kind: "single" | "cluster", backend: Backend, round: number) {
  const prefix = `bc${round}${kind[0]}`;
  const env = {
    ...backend.env,
    KEY_PREFIX: prefix,
    PARTITIONS: String(PARTITIONS),
    LOG_LEVEL: "warn",
    ACCESS_LOG: "false",
  };
  const procs: RunningProcess[] = await Promise.all([
    startApp("gateway", { ...env, LOG_LEVEL: "info" }),
    startApp("worker", { ...env, LOG_LEVEL: "info", WORKER_CONCURRENCY: "64" }),
  ]);
  const base = procs[0]?.url ?? "";
  const redis = createRedis(
    backend.url,
    "tool",
    backend.env.REDIS_CLUSTER_NODES ? { clusterNodes: backend.env.REDIS_CLUSTER_NODES.split(",") } : {},
  );
  try {
    const sent: Sent[] = await registerMany([base], 1_000_000 + round * 100_000, REQUESTS);
    const cpu0 = new Map([...backend.masters].map(([port, pid]) => [port, cpuSeconds(pid)]));
    const t0 = Date.now();
    await drive(() => [base], sent, {
      updates: UPDATES,
      final: () => "SUCCESS",
      concurrency: 64,
      parallelUpdates: true,
      retries: 5,
    });
    if (!(await waitDrained(redis, new Keys(prefix, PARTITIONS), 120_000))) throw new Error("backlog not drained");
    const seconds = (Date.now() - t0) / 1000;
    const callbacks = sent.reduce((n, s) => n + s.accepted.length, 0);
    const rejected = sent.reduce((n, s) => n + s.rejected.length, 0);
    const keys = new Keys(prefix, PARTITIONS);
    // callbacks per master: by the partition of each request and the master serving its slot
    const slots = backend.env.REDIS_CLUSTER_NODES
      ? ((await redis.cluster("SLOTS")) as unknown as [number, number, [string, number]][])
      : undefined;
    const masterOf = (id: string) => {
      if (!slots) return [...backend.masters.keys()][0] as number;
      const slot = keys.slot(keys.partition(id));
      return (slots.find(([lo, hi]) => slot >= lo && slot <= hi)?.[2][1] ?? 0) as number;
    };
    const perMasterCallbacks = new Map<number, number>();
    for (const s of sent)
      perMasterCallbacks.set(masterOf(s.id), (perMasterCallbacks.get(masterOf(s.id)) ?? 0) + s.accepted.length);
    const masters = [...backend.masters].map(([port, pid]) => {
      const cpu = cpuSeconds(pid) - (cpu0.get(port) ?? 0);
      const n = perMasterCallbacks.get(port) ?? 0;
      return {
        port,
        cpuSeconds: Math.round(cpu * 100) / 100,
        callbacks: n,
        cpuUsPerCallback: n ? Math.round((cpu / n) * 1e6) : 0,
      };
    });
    const cpus = masters.map((m) => m.cpuSeconds);
    const mean = cpus.reduce((a, b) => a + b, 0) / cpus.length;
    const result = {
      kind,
      round,
      callbacks,
      rejected,
      seconds: Math.round(seconds * 100) / 100,
      rate: Math.round(callbacks / seconds),
      redisCpuUsPerCallback: Math.round((cpus.reduce((a, b) => a + b, 0) / callbacks) * 1e6),
      masters,
      cpuMaxOverMean: Math.round((Math.max(...cpus) / mean) * 100) / 100,
    };
    log(JSON.stringify(result));
    return result;
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    redis.disconnect();
  }
}

const bin = findRedisServer();
if (!bin) throw new Error("redis-server is not on PATH");
const results: Awaited<ReturnType<typeof measure>>[] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const kind of ["single", "cluster"] as const) {
    const backend = kind === "single" ? await single(bin) : await cluster();
    try {
      results.push(await measure(kind, backend, round));
    } finally {
      await backend.stop();
    }
  }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const rate = (k: string) => med(results.filter((r) => r.kind === k).map((r) => r.rate));
const summary = {
  requests: REQUESTS,
  updates: UPDATES,
  rounds: ROUNDS,
  singleRate: rate("single"),
  clusterRate: rate("cluster"),
  clusterOverSingle: Math.round((rate("cluster") / rate("single")) * 100) / 100,
  clusterCpuMaxOverMean: Math.max(...results.filter((r) => r.kind === "cluster").map((r) => r.cpuMaxOverMean)),
  results,
};
mkdirSync(values.out ?? "bench-results", { recursive: true });
const file = `${values.out}/cluster-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
writeFileSync(file, JSON.stringify(summary, null, 2));
console.log(JSON.stringify({ ...summary, results: undefined }, null, 2));
log(`written to ${file}`);
process.exit(0);
