// Where accept latency goes at a paced rate: the same phase (the paced load generator in its own process,
// the bench's mix of callbacks) under several conditions, interleaved over rounds, with each process's
// time waiting for a core. Conditions:
//   worker          the compiled gateway, one compiled worker applying as it goes, Redis (the bench's 50 % phase)
//   stopped         the same, the worker stopped (SIGSTOP) for the phase and resumed after it to drain
//   bare            the bare Hono server (bench/bare.ts) at the same rate, gateway, Redis and worker idle
//   bare+burn:C     the bare server while burner processes spend C cores in bursts of at most 1 ms (the
//                   CPU the gateway's other processes spend at this rate, without their hops)
//   env:K=V[,K=V]   the "worker" condition through a gateway of its own started with these settings
//   nice:P=N[;P=N]  the "worker" condition with process P (redis, gateway, worker) at nice N for the phase
//   cpus:P=L[;P=L]  the "worker" condition with every thread of process P (redis, gateway, worker, driver)
//                   allowed only on CPU list L (taskset's syntax: "0", "1", "0-1") for the phase
// Per phase: accept p50/p99, callbacks per job, Redis's busiest commands, and for Redis, the gateway, the
// worker, the load generator and the bare server their CPU, their run-queue wait
// (/proc/<pid>/task/*/schedstat: the time their runnable threads waited for a core) and their involuntary
// context switches, over the phase; RSS; the burners' cores.
// One JSON line per phase, then the medians per condition.
// Usage: NODE_OPTIONS=--conditions=ess-source tsx bench/p99-probe.ts --rate 3500 [--seconds 6]
//   [--rounds 3] [--conditions worker,stopped,bare] [--cpu-prof DIR] [--worker-env K=V[,K=V]]
// --worker-env starts the one worker with these settings (every condition shares it).
import { type ChildProcess, fork, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Keys } from "@ess/store";
import { discardOutput, findRedisServer, RedisServer, ROOT, type RunningProcess, startApp } from "@ess/testing";
import { Redis } from "ioredis";
import { buildMix, type Call, drive, makeTargets, registrationCalls, statusCounts } from "./load.js";
import {
  backlog,
  commandStats,
  cpuSeconds,
  jobsAdded,
  median,
  pct,
  redisStalls,
  redisStallsReset,
  round,
  rssMiB,
  waitDrained,
} from "./measure.js";
import type { PacedAnswer, PacedRequest } from "./paced-driver.js";

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "3500" },
    seconds: { type: "string", default: "6" },
    rounds: { type: "string", default: "3" },
    conditions: { type: "string", default: "worker,stopped,bare" },
    connections: { type: "string", default: "100" },
    "cpu-prof": { type: "string" },
    "worker-env": { type: "string" },
  },
});
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const conditions = (values.conditions ?? "").split(",");
const connections = Number(values.connections);
const PARTITIONS = 16;
/** --cpu-prof DIR: the gateways and the worker write CPU profiles there when they exit */
const prof = (name: string) =>
  values["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${values["cpu-prof"]}/${name}`] : [];
const PREFIX = "p99";
const keys = new Keys(PREFIX, PARTITIONS);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run-queue wait (ms) and involuntary switches of all of a process's threads, and of its main thread. */
function sched(pid: number | undefined) {
  let waitNs = 0;
  let mainWaitNs = 0;
  let preempted = 0;
  if (!pid) return { waitMs: 0, mainWaitMs: 0, preempted: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ").map(Number);
      waitNs += wait ?? 0;
      if (tid === String(pid)) mainWaitNs = wait ?? 0;
      const m = /nonvoluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8"));
      preempted += Number(m?.[1] ?? 0);
    } catch {
      // a thread that ended meanwhile
    }
  }
  return { waitMs: waitNs / 1e6, mainWaitMs: mainWaitNs / 1e6, preempted };
}

function stealMs(): number {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.split(/\s+/).map(Number);
  return ((cpu[8] ?? 0) * 1000) / 100;
}

// the load generator's process, forked once: every phase runs in it (and a condition can renice or pin it)
const driver = fork(new URL("./paced-driver.ts", import.meta.url).pathname, { serialization: "advanced" });
function paced(url: string, calls: Call[]): Promise<PacedAnswer> {
  return new Promise((resolve) => {
    driver.once("message", (a) => resolve(a as PacedAnswer));
    const req: PacedRequest = { driver: "raw", url, calls, rate, connections };
    driver.send(req);
  });
}

const server = new RedisServer(findRedisServer() ?? "redis-server");
await server.start();
const redis = new Redis(server.url, { maxRetriesPerRequest: 2 });
const redisPid = Number(/process_id:(\d+)/.exec(await redis.info("server"))?.[1]);
const env = { REDIS_URL: server.url, KEY_PREFIX: PREFIX, PARTITIONS: String(PARTITIONS), LOG_LEVEL: "info" };
/** A condition's settings after its prefix: pairs("nice:worker=5;gateway=-5", "nice:", ";") → [["worker","5"],…]. */
function pairs(cond: string, prefix: string, separator: string): [string, string][] {
  if (!cond.startsWith(prefix)) return [];
  return cond
    .slice(prefix.length)
    .split(separator)
    .filter(Boolean)
    .map((kv) => kv.split("=") as [string, string]);
}
// "env:ADMIT_BATCH_MAX=16,ACCESS_LOG=false": a gateway of its own per distinct set of settings
const envOf = (cond: string): Record<string, string> => Object.fromEntries(pairs(cond, "env:", ","));
const gateways = new Map<string, RunningProcess>();
for (const cond of conditions) {
  const k = JSON.stringify(envOf(cond));
  if (!gateways.has(k))
    gateways.set(
      k,
      await startApp("gateway", { ...env, ...envOf(cond) }, prof(`gateway-${gateways.size}`), ROOT, true),
    );
}
const gatewayOf = (cond: string) => gateways.get(JSON.stringify(envOf(cond))) as RunningProcess;
const gateway = gatewayOf(conditions[0] ?? "");
const workerEnv = Object.fromEntries(pairs(values["worker-env"] ?? "", "", ","));
const worker = await startApp("worker", { ...env, ...workerEnv }, prof("worker"), ROOT, true);
discardOutput(...gateways.values(), worker);
const bare = spawn(process.execPath, ["--import", "tsx", "bench/bare.ts"], {
  cwd: ROOT,
  env: { ...process.env, PORT: "0" },
  stdio: ["ignore", "pipe", "inherit"],
});
const bareUrl = await new Promise<string>((resolve) => {
  let out = "";
  bare.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
    const m = /"port":(\d+)/.exec(out);
    if (m) resolve(`http://127.0.0.1:${m[1]}`);
  });
});

// A burner: spins in bursts of at most 1 ms whenever its CPU time is behind its share of the wall time,
// and sleeps 1 ms between bursts, so it competes for a core in short runs, as the worker and Redis do.
const BURNER = `const duty = Number(process.argv[1]); const t0 = performance.now(); const c0 = process.cpuUsage();
const tick = () => {
  const u = process.cpuUsage(c0);
  if ((u.user + u.system) / 1000 < duty * (performance.now() - t0)) { const end = performance.now() + 1; while (performance.now() < end); }
  setTimeout(tick, 1);
};
tick();`;
/** Burners that together spend `cores` of CPU, each at most 0.45 (a 1 ms burst, then a 1 ms timer). */
function burners(cores: number): ChildProcess[] {
  const n = Math.ceil(cores / 0.45);
  return Array.from({ length: n }, () =>
    spawn(process.execPath, ["-e", BURNER, String(cores / n)], { stdio: "ignore" }),
  );
}

/** "bare+burn:1.25" → 1.25: the cores its burners spend; 0 for any other condition. */
const burnOf = (cond: string) => (cond.startsWith("bare+burn:") ? Number(cond.slice("bare+burn:".length)) : 0);
const isBare = (cond: string) => cond === "bare" || burnOf(cond) > 0;

let base = 10_000_000;
async function targets(n: number) {
  const t = makeTargets(base, n);
  base += n + 1000;
  const res = await drive(gateway.url, registrationCalls(t), { connections: 20 });
  if (statusCounts(res)["201"] !== n) throw new Error(`registration: ${JSON.stringify(statusCounts(res))}`);
  return t;
}

const UPDATES = 4;
const perPhase = Math.ceil((rate * seconds) / (UPDATES + 1));
// warm-up: JIT, connections, the worker's first batches
for (const g of gateways.values()) {
  await drive(g.url, buildMix(await targets(perPhase), UPDATES, 20), { connections });
  await waitDrained(redis, keys, 120_000);
}

const procs = (gateway: { child: ChildProcess }) => ({
  redis: redisPid,
  gateway: gateway.child.pid,
  worker: worker.child.pid,
  driver: driver.pid,
  bare: bare.pid,
});
/** The CPUs a process may run on now, as taskset lists them ("0,1", "0-3"). */
function cpusOf(pid: number | undefined): string {
  const out = spawnSync("taskset", ["-p", "-c", String(pid)], { encoding: "utf8" }).stdout;
  return out.slice(out.lastIndexOf(":") + 1).trim();
}
/** A condition's per-process settings: "nice:worker=5;gateway=-5" → [["worker","5"],["gateway","-5"]]. */
const settings = (cond: string, prefix: string) =>
  pairs(cond, prefix, ";") as [keyof ReturnType<typeof procs>, string][];
const rows: { condition: string; p50: number; p99: number; cpuMicros: number; perJob: number; redisWaitMs: number }[] =
  [];
for (let r = 1; r <= rounds; r++) {
  for (const cond of conditions) {
    const t = await targets(perPhase);
    const calls = buildMix(t, UPDATES, 20);
    const g = gatewayOf(cond);
    const url = isBare(cond) ? bareUrl : g.url;
    const burning = burners(burnOf(cond));
    if (cond === "stopped") worker.child.kill("SIGSTOP");
    // "nice:worker=5;gateway=-5": those processes at that nice value for the phase
    const niced = settings(cond, "nice:");
    for (const [who, n] of niced) spawnSync("renice", ["-n", n, "-p", String(procs(g)[who])]);
    // "cpus:redis=0;worker=1": those processes pinned to those CPUs for the phase
    const pinned = settings(cond, "cpus:").map(([who, list]) => {
      const pid = procs(g)[who];
      const before = cpusOf(pid);
      spawnSync("taskset", ["-a", "-p", "-c", list, String(pid)]);
      return { pid, before };
    });
    await sleep(300);
    await redisStallsReset(redis);
    const pids = procs(g);
    const s0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, { ...sched(pid), cpu: cpuSeconds(pid) }]));
    const burn0 = burning.reduce((sum, b) => sum + cpuSeconds(b.pid), 0);
    const steal0 = stealMs();
    const cmd0 = await commandStats(redis);
    const jobs0 = await jobsAdded(redis, keys);
    const wall0 = performance.now();
    const answer = await paced(url, calls);
    const wallSeconds = (performance.now() - wall0) / 1000;
    const steal = stealMs() - steal0;
    const burnCores = round((burning.reduce((sum, b) => sum + cpuSeconds(b.pid), 0) - burn0) / wallSeconds, 2);
    for (const b of burning) b.kill();
    const pidsAfter = procs(g);
    const delta = Object.fromEntries(
      Object.entries(pidsAfter).map(([k, pid]) => {
        const a = s0[k] ?? { waitMs: 0, mainWaitMs: 0, preempted: 0, cpu: 0 };
        const b = { ...sched(pid), cpu: cpuSeconds(pid) };
        return [
          k,
          {
            cpuMs: Math.round((b.cpu - a.cpu) * 1000),
            waitMs: Math.round(b.waitMs - a.waitMs),
            mainWaitMs: Math.round(b.mainWaitMs - a.mainWaitMs),
            preempted: b.preempted - a.preempted,
          },
        ];
      }),
    );
    const slow = await redisStalls(redis);
    const jobs = (await jobsAdded(redis, keys)) - jobs0;
    const cmd1 = await commandStats(redis);
    // Redis's busiest commands of the phase: calls and ms (a script's time includes the commands it runs)
    const commands = Object.entries(cmd1)
      .map(([k, v]) => ({ k, calls: v.calls - (cmd0[k]?.calls ?? 0), ms: (v.usec - (cmd0[k]?.usec ?? 0)) / 1000 }))
      .filter((c) => c.calls > 0)
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 8)
      .map((c) => `${c.k} ${c.calls}x ${Math.round(c.ms)}ms`);
    if (cond === "stopped") worker.child.kill("SIGCONT");
    for (const [who] of niced) spawnSync("renice", ["-n", "0", "-p", String(procs(g)[who])]);
    for (const { pid, before } of pinned) spawnSync("taskset", ["-a", "-p", "-c", before, String(pid)]);
    const l = answer.result.latencies;
    const row = {
      round: r,
      condition: cond,
      accepted: answer.result.statusCounts["200"] ?? 0,
      p50: round(pct(l, 50), 2),
      p99: round(pct(l, 99), 2),
      p99_9: round(pct(l, 99.9), 2),
      stealMs: steal,
      ...(burning.length ? { burnCores } : {}),
      redisSlow: slow.slowlog.count,
      jobs,
      commands,
      ...delta,
      backlogAtEnd: await backlog(redis, keys),
      // MiB at the phase's end, and the high-water mark since start
      rss: { gateway: rssMiB(g.child.pid), worker: rssMiB(worker.child.pid) },
      rssPeak: { gateway: rssMiB(g.child.pid, true), worker: rssMiB(worker.child.pid, true) },
    };
    console.log(JSON.stringify(row));
    const cpu = ["redis", "gateway", "worker"].reduce((sum, k) => sum + (delta[k]?.cpuMs ?? 0), 0);
    rows.push({
      condition: cond,
      p50: row.p50,
      p99: row.p99,
      cpuMicros: Math.round((cpu * 1000) / Math.max(1, row.accepted)),
      perJob: round(row.accepted / Math.max(1, jobs), 1),
      redisWaitMs: delta.redis?.waitMs ?? 0,
    });
    await waitDrained(redis, keys, 120_000);
  }
}
console.log(
  "\nmedians per condition: accept p50 / p99 ms · CPU µs per accepted callback (Redis + gateway + worker) · callbacks per job · Redis's run-queue wait ms",
);
for (const cond of conditions) {
  const of = rows.filter((x) => x.condition === cond);
  const m = (k: keyof (typeof rows)[number]) => round(median(of.map((x) => x[k] as number)), 1);
  const rest = isBare(cond) ? "" : ` · ${m("cpuMicros")} · ${m("perJob")} · ${m("redisWaitMs")}`;
  console.log(`  ${cond.padEnd(32)} ${m("p50")} / ${m("p99")}${rest}`);
}
for (const g of gateways.values()) await g.stop();
await worker.stop();
bare.kill();
driver.kill();
await redis.quit();
await server.kill();
