// `npm run bench`: the reproducible benchmark (see BENCHMARKS.md for the method and every option).
// Starts its own redis-server, the bare-Hono ceiling, gateways and workers as real processes, drives
// them with autocannon on 127.0.0.1, prints a markdown table and writes JSON under bench-results/.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { findRedisServer, RedisServer } from "@ess/testing";
import type { Result } from "autocannon";
import { Redis } from "ioredis";
import { ROOT, type RunningProcess, startApp } from "../test/support/processes.js";
import {
  buildMix,
  type Call,
  drive,
  drivePaced,
  expectedCounts,
  makeTargets,
  registrationCalls,
  statusCounts,
  type Target,
} from "./load.js";
import { backlog as backlogOf, cpuSeconds, rssMiB, waitDrained as waitDrainedOf } from "./measure.js";

const HELP = `npm run bench -- [options]

  --quick              small run (about 25-40 s here): profile A, 1500 requests, one round, short phases
  --profiles A,B       Redis profiles: A = AOF off, B = appendonly yes + appendfsync everysec (default A,B)
  --requests N         requests registered for the max-rate phase, split over the rounds (default 6000; quick 1500)
  --updates K          UPDATE callbacks per request before its final status (default 4)
  --bad-every M        one 4xx call (403/404/400 in turn) every M calls; 0 = none (default 20)
  --connections C      keep-alive connections of the load generator (default 100)
  --ceiling-seconds S  length of each round's bare-Hono ceiling measurement (default 2; quick 1.5)
  --rounds R           interleaved rounds of ceiling / gateway / variants at max rate (default 3; quick 1)
  --paced-seconds S    length of the 50 % and 90 % paced phases (default 4; quick 1.5)
  --no-scaling         skip the 2-gateway and 2-worker phases (first profile only; quick skips them)
  --no-compare         skip the gateway variants (ENQUEUE_MODE=queue, REDIS_AUTO_PIPELINING=true, ACCESS_LOG=false),
                       measured at max rate on the first profile (quick skips them)
  --variants I,J       only these gateway variants (0-based, in the order above and in BENCHMARKS.md; default all:
                       0 ENQUEUE_MODE=queue, 1 REDIS_AUTO_PIPELINING, 2 ACCESS_LOG=false, 3 tracing on
                       but sampling nothing, 4 tracing on, every callback exported)
  --baseline DIR,...   also measure the default gateway of other checkouts (npm ci done there), as variants:
                       e.g. the commit before a change, to show the change's cost in the same rounds, and a
                       copy of this one (an A/A pair shows what the order within a round alone does)
  --out DIR            where the JSON goes (default bench-results/)
  --cpu-prof           run gateways and workers with node --cpu-prof (profiles in <out>/profiles/)
  --help               this text`;

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    profiles: { type: "string" },
    requests: { type: "string" },
    updates: { type: "string", default: "4" },
    "bad-every": { type: "string", default: "20" },
    connections: { type: "string", default: "100" },
    "ceiling-seconds": { type: "string" },
    "paced-seconds": { type: "string" },
    "no-scaling": { type: "boolean", default: false },
    "no-compare": { type: "boolean", default: false },
    rounds: { type: "string" },
    out: { type: "string", default: "bench-results" },
    "cpu-prof": { type: "boolean", default: false },
    variants: { type: "string" },
    baseline: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(HELP);
  process.exit(0);
}

const quick = args.quick;
const opts = {
  profiles: (args.profiles ?? (quick ? "A" : "A,B")).split(",").map((s) => s.trim().toUpperCase()),
  requests: Number(args.requests ?? (quick ? 1500 : 6000)),
  updates: Number(args.updates),
  badEvery: Number(args["bad-every"]),
  connections: Number(args.connections),
  ceilingSeconds: Number(args["ceiling-seconds"] ?? (quick ? 1.5 : 2)),
  pacedSeconds: Number(args["paced-seconds"] ?? (quick ? 1.5 : 4)),
  scaling: !args["no-scaling"] && !quick,
  compare: !args["no-compare"] && !quick,
  rounds: Math.max(1, Number(args.rounds ?? (quick ? 1 : 3))),
  out: args.out,
  cpuProf: args["cpu-prof"],
  variants: args.variants?.split(",").map((x) => Number(x.trim())),
  baseline: args.baseline?.split(",").map((x) => x.trim()),
};
for (const [k, v] of Object.entries(opts)) {
  if (typeof v === "number" && !(Number.isFinite(v) && v >= 0)) throw new Error(`bad --${k}: ${v}`);
}
if (opts.profiles.some((p) => p !== "A" && p !== "B")) throw new Error("--profiles takes A and/or B");

/** Every child the bench started, killed on Ctrl-C so nothing outlives an interrupted run. */
const children = new Set<ChildProcess>();
const servers = new Set<RedisServer>();
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    void Promise.all([...servers].map((s) => s.kill())).finally(() => process.exit(130));
  });
}

const PARTITIONS = 16;
const KEY_PREFIX = "bench";
const started = Date.now();
const log = (msg: string) => console.error(`[bench +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- process and Redis measurements

interface RedisSample {
  calls: number;
  byCommand: Record<string, number>;
  cpu: number;
}

async function redisSample(redis: Redis): Promise<RedisSample> {
  const stats = await redis.info("commandstats");
  const cpu = await redis.info("cpu");
  const byCommand: Record<string, number> = {};
  let calls = 0;
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    // the bench's own probes are not the system's work
    if (m[1] === "info" || m[1] === "llen" || m[1] === "zcard" || m[1] === "lrange" || m[1] === "memory") continue;
    byCommand[m[1]!] = Number(m[2]);
    calls += Number(m[2]);
  }
  const num = (k: string) => Number(new RegExp(`^${k}:([0-9.]+)`, "m").exec(cpu)?.[1] ?? 0);
  return { calls, byCommand, cpu: num("used_cpu_sys") + num("used_cpu_user") };
}

function redisDelta(a: RedisSample, b: RedisSample, per: number) {
  const byCommand: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.byCommand)) {
    const d = v - (a.byCommand[k] ?? 0);
    if (d > 0) byCommand[k] = round(d / per, 3);
  }
  const scripts =
    (b.byCommand.evalsha ?? 0) + (b.byCommand.eval ?? 0) - (a.byCommand.evalsha ?? 0) - (a.byCommand.eval ?? 0);
  return {
    // a script call is one round trip; the commands it runs inside Redis are counted in commandsPerCallback
    scriptCallsPerCallback: round(scripts / per, 3),
    commandsPerCallback: round((b.calls - a.calls) / per, 3),
    byCommandPerCallback: byCommand,
    cpuMicrosPerCallback: round(((b.cpu - a.cpu) * 1e6) / per, 1),
  };
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const backlog = (redis: Redis) => backlogOf(redis, KEY_PREFIX, PARTITIONS);
const waitDrained = (redis: Redis, timeoutMs: number) => waitDrainedOf(redis, KEY_PREFIX, PARTITIONS, timeoutMs);

function partitionOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % PARTITIONS;
}
const reqKey = (id: string) => `${KEY_PREFIX}:{p${partitionOf(id)}}:req:${id}`;

interface HistoryStats {
  entries: number;
  applied: number;
  ignored: number;
  firstApplied: number;
  lastApplied: number;
  lags: number[];
  terminal: number;
}

/** Reads the histories of the targets (acceptedAt/appliedAt of every callback applied or ignored). */
async function histories(redis: Redis, targets: Target[]): Promise<HistoryStats> {
  const out: HistoryStats = {
    entries: 0,
    applied: 0,
    ignored: 0,
    firstApplied: Number.POSITIVE_INFINITY,
    lastApplied: 0,
    lags: [],
    terminal: 0,
  };
  for (let i = 0; i < targets.length; i += 500) {
    const pipe = redis.pipeline();
    for (const t of targets.slice(i, i + 500)) pipe.lrange(`${reqKey(t.id)}:hist`, 0, -1).hget(reqKey(t.id), "state");
    const res = (await pipe.exec()) ?? [];
    for (let j = 0; j < res.length; j += 2) {
      const list = (res[j]?.[1] as string[]) ?? [];
      const state = res[j + 1]?.[1] as string | null;
      if (state && state !== "RUNNING" && state !== "CANCELLING") out.terminal++;
      for (const raw of list) {
        const e = JSON.parse(raw) as { outcome?: string; acceptedAt?: number; appliedAt?: number };
        if (e.outcome === "registered" || e.acceptedAt === undefined || e.appliedAt === undefined) continue;
        out.entries++;
        if (e.outcome === "ignored") out.ignored++;
        else out.applied++;
        out.lags.push(e.appliedAt - e.acceptedAt);
        out.firstApplied = Math.min(out.firstApplied, e.appliedAt);
        out.lastApplied = Math.max(out.lastApplied, e.appliedAt);
      }
    }
  }
  out.lags.sort((a, b) => a - b);
  return out;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Average MEMORY USAGE of a request's keys (hash, history, buffer, skip set). */
async function memoryPerRequest(redis: Redis, targets: Target[]): Promise<{ bytes: number; sample: number }> {
  let total = 0;
  for (const t of targets) {
    for (const k of [reqKey(t.id), `${reqKey(t.id)}:hist`, `${reqKey(t.id)}:buf`, `${reqKey(t.id)}:skip`]) {
      total += Number((await redis.call("MEMORY", "USAGE", k, "SAMPLES", "0")) ?? 0);
    }
  }
  return { bytes: Math.round(total / Math.max(1, targets.length)), sample: targets.length };
}

// ---------------------------------------------------------------- processes

function redisEnv(url: string, extra: Record<string, string> = {}): Record<string, string> {
  return { REDIS_URL: url, KEY_PREFIX, PARTITIONS: String(PARTITIONS), LOG_LEVEL: "warn", ...extra };
}

/** Replaced by the URL of traceSink() in a variant's environment. */
const TRACE_SINK = "@trace-sink";
/** Gateway variants measured against the default in the same run (--no-compare skips them). */
const ALL_VARIANTS: { name: string; env: Record<string, string> }[] = [
  { name: "ENQUEUE_MODE=queue (admit script, then BullMQ Queue.add)", env: { ENQUEUE_MODE: "queue" } },
  { name: "REDIS_AUTO_PIPELINING=true", env: { REDIS_AUTO_PIPELINING: "true" } },
  { name: "ACCESS_LOG=false (no log line per request)", env: { ACCESS_LOG: "false" } },
  // the default gateway has tracing off (no OTEL_* variables): these two show what turning it on costs
  {
    name: "OTEL tracing on, OTEL_TRACES_SAMPLER=always_off (SDK and instrumentation loaded, nothing recorded)",
    env: { OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_ENDPOINT: TRACE_SINK, OTEL_TRACES_SAMPLER: "always_off" },
  },
  {
    name: "OTEL tracing on, every callback traced and exported (OTLP/HTTP to a local sink)",
    env: { OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_ENDPOINT: TRACE_SINK },
  },
];
/** --variants picks some of them by index (default all); --baseline adds another checkout's gateway. */
const VARIANTS: { name: string; env: Record<string, string>; root?: string }[] = [
  ...(opts.variants ? opts.variants.map((i) => ALL_VARIANTS[i]).filter((v) => v !== undefined) : ALL_VARIANTS),
  // the default gateway of another checkout (with its own node_modules), in the same rounds
  ...(opts.baseline ?? []).map((root) => ({ name: `baseline: the gateway of ${root}`, env: {}, root })),
];

let sinkUrl: Promise<string> | undefined;
/** An OTLP/HTTP endpoint that takes every export and keeps nothing (started on first use). */
function traceSink(): Promise<string> {
  sinkUrl ??= new Promise((resolve) => {
    const server = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.end());
    });
    server.listen(0, "127.0.0.1", () => {
      server.unref();
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });
  });
  return sinkUrl;
}

async function variantEnv(env: Record<string, string>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) out[k] = v === TRACE_SINK ? await traceSink() : v;
  return out;
}

async function startGateway(
  url: string,
  name: string,
  extraEnv: Record<string, string> = {},
  root?: string,
): Promise<RunningProcess> {
  // startApp waits for the "gateway listening" info line: keep LOG_LEVEL at info for the gateway
  const env = redisEnv(url, { LOG_LEVEL: "info", ...extraEnv });
  const nodeArgs = opts.cpuProf
    ? ["--cpu-prof", `--cpu-prof-dir=${opts.out}/profiles/${name.replace(/[^A-Za-z0-9-]+/g, "_")}`]
    : [];
  return tracked(await startApp("gateway", env, nodeArgs, root));
}

let workerCount = 0;
async function startWorker(url: string): Promise<RunningProcess> {
  const nodeArgs = opts.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${opts.out}/profiles/worker-${++workerCount}`] : [];
  return tracked(await startApp("worker", redisEnv(url, { LOG_LEVEL: "info" }), nodeArgs));
}

function tracked(p: RunningProcess): RunningProcess {
  children.add(p.child);
  return p;
}

async function startBare(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "bench/bare.ts"], {
    cwd: ROOT,
    env: { ...process.env, PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.add(child);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const deadline = Date.now() + 20000;
  for (;;) {
    const m = /"port":(\d+)/.exec(out);
    if (m) return { child, url: `http://127.0.0.1:${m[1]}` };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`bare server did not start: ${out}`);
    await sleep(50);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

// ---------------------------------------------------------------- phases

let idBase = 1_000_000;
function freshTargets(n: number): Target[] {
  const t = makeTargets(idBase, n);
  idBase += n + 1000;
  return t;
}

async function register(url: string, targets: Target[]): Promise<void> {
  const calls = registrationCalls(targets);
  const res = await drive(url, calls, { connections: 20 });
  const counts = statusCounts(res);
  if (counts["201"] !== targets.length)
    throw new Error(`registration: expected ${targets.length} x 201, got ${JSON.stringify(counts)}`);
}

function latency(result: Result) {
  return { p50: result.latency.p50, p99: result.latency.p99, p99_9: result.latency.p99_9, max: result.latency.max };
}

/** The bare-Hono ceiling: as fast as it goes for --ceiling-seconds, with its CPU and the load generator's. */
async function measureCeiling(bare: { child: ChildProcess; url: string }, calls: Call[]) {
  const bareCpu0 = cpuSeconds(bare.child.pid);
  const loadCpu0 = process.cpuUsage();
  const res = await drive(bare.url, calls, { connections: opts.connections, duration: opts.ceilingSeconds });
  const total = Math.max(1, res.requests.total);
  const loadCpu = process.cpuUsage(loadCpu0);
  return {
    requestsPerSecond: round(res.requests.total / res.seconds, 0),
    latencyMs: latency(res),
    errors: res.errors + res.timeouts,
    cpuMicrosPerRequest: round(((cpuSeconds(bare.child.pid) - bareCpu0) * 1e6) / total, 1),
    loadGeneratorCpuMicrosPerRequest: round((loadCpu.user + loadCpu.system) / total, 1),
  };
}

/** Max-rate phase: gateways without workers, the backlog stays for a drain phase. */
interface Prepared {
  targets: Target[];
  mixes: Call[][];
}

/** Registers n fresh requests, split over the gateways, and builds their callback mixes. */
async function prepare(gateways: RunningProcess[], n: number): Promise<Prepared> {
  const targets = freshTargets(n);
  const halves = gateways.map((_, i) => targets.filter((_, j) => j % gateways.length === i));
  await Promise.all(gateways.map((g, i) => register(g.url, halves[i]!)));
  return { targets, mixes: halves.map((h) => buildMix(h, opts.updates, opts.badEvery)) };
}

/** Max-rate phase: the gateways as fast as they go, without workers (the backlog stays for a drain). */
async function maxPhase(redis: Redis, gateways: RunningProcess[], prepared: Prepared) {
  const { mixes } = prepared;
  const expected = expectedCounts(mixes.flat());
  const before = await redisSample(redis);
  const cpu0 = gateways.map((g) => cpuSeconds(g.child.pid));
  const results = await Promise.all(
    gateways.map((g, i) =>
      drive(g.url, mixes[i]!, { connections: Math.max(1, Math.round(opts.connections / gateways.length)) }),
    ),
  );
  // first send to last answer (of the slowest load generator when there are two)
  const elapsed = Math.max(...results.map((r) => r.seconds));
  const after = await redisSample(redis);
  const counts: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(statusCounts(r))) counts[k] = (counts[k] ?? 0) + v;
  const accepted = counts["200"] ?? 0;
  const gatewayCpu = gateways.map((g, i) => cpuSeconds(g.child.pid) - cpu0[i]!);
  return {
    gateways: gateways.length,
    calls: mixes.reduce((s, m) => s + m.length, 0),
    seconds: round(elapsed, 2),
    acceptedPerSecond: round(accepted / elapsed, 0),
    allPerSecond: round(mixes.reduce((s, m) => s + m.length, 0) / elapsed, 0),
    statusCounts: counts,
    expectedCounts: expected,
    errors: results.reduce((s, r) => s + r.errors + r.timeouts, 0),
    latencyMs: latency(results[0]!),
    redis: redisDelta(before, after, Math.max(1, accepted)),
    gatewayCpuMicrosPerCallback: round((gatewayCpu.reduce((a, b) => a + b, 0) * 1e6) / Math.max(1, accepted), 1),
    gatewayCpuUtilisation: gatewayCpu.map((c) => round(c / elapsed, 2)),
    gatewayRssMiB: gateways.map((g) => rssMiB(g.child.pid)),
  };
}
type MaxResult = Awaited<ReturnType<typeof maxPhase>>;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Per-round numbers of one contender, summarised: median, min, max. */
function spread(xs: number[]) {
  return { median: round(median(xs), 3), min: round(Math.min(...xs), 3), max: round(Math.max(...xs), 3), all: xs };
}

/** Drain phase: start workers on the backlog, measure applied transitions/s from the histories. */
async function drainPhase(redis: Redis, url: string, targets: Target[], workerCount: number) {
  const before = await redisSample(redis);
  const pending = await backlog(redis);
  const workers = await Promise.all(Array.from({ length: workerCount }, () => startWorker(url)));
  const cpu0 = workers.map((w) => cpuSeconds(w.child.pid));
  const drained = await waitDrained(redis, 120000);
  const after = await redisSample(redis);
  const workerCpu = workers.reduce((s, w, i) => s + cpuSeconds(w.child.pid) - cpu0[i]!, 0);
  const h = await histories(redis, targets);
  const seconds = (h.lastApplied - h.firstApplied) / 1000;
  const result = {
    workers: workerCount,
    backlog: pending,
    drained,
    applied: h.applied,
    ignored: h.ignored,
    terminalRequests: h.terminal,
    requests: targets.length,
    seconds: round(seconds, 2),
    appliedPerSecond: round(h.entries / Math.max(0.001, seconds), 0),
    redis: redisDelta(before, after, Math.max(1, h.entries)),
    workerCpuMicrosPerCallback: round((workerCpu * 1e6) / Math.max(1, h.entries), 1),
    workerRssMiB: workers.map((w) => rssMiB(w.child.pid)),
  };
  return { workers, result };
}

/** Paced phase: gateway and worker together at a fixed offered rate; accept latency and lag. */
async function pacedPhase(redis: Redis, gateway: RunningProcess, offered: number, label: string) {
  const perRequest = opts.updates + 1;
  const n = Math.max(10, Math.ceil((offered * opts.pacedSeconds) / perRequest));
  const targets = freshTargets(n);
  await register(gateway.url, targets);
  const calls = buildMix(targets, opts.updates, opts.badEvery);
  let maxBacklog = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      maxBacklog = Math.max(maxBacklog, await backlog(redis));
      await sleep(100);
    }
  })();
  const res = await drivePaced(gateway.url, calls, offered, opts.connections);
  sampling = false;
  await sampler;
  const backlogAtEnd = await backlog(redis);
  await waitDrained(redis, 60000);
  const h = await histories(redis, targets);
  const accepted = res.statusCounts["200"] ?? 0;
  const l = res.latencies;
  return {
    label,
    offeredPerSecond: Math.round(offered),
    achievedPerSecond: round(calls.length / res.seconds, 0),
    acceptedPerSecond: round(accepted / res.seconds, 0),
    statusCounts: res.statusCounts,
    expectedCounts: expectedCounts(calls),
    errors: res.errors,
    latencyMs: {
      p50: round(pct(l, 50), 2),
      p99: round(pct(l, 99), 2),
      p99_9: round(pct(l, 99.9), 2),
      max: round(l.at(-1) ?? Number.NaN, 2),
    },
    lagMs: { p50: pct(h.lags, 50), p99: pct(h.lags, 99), max: h.lags.at(-1) ?? Number.NaN },
    appliedPerSecond: round(h.entries / Math.max(0.001, (h.lastApplied - h.firstApplied) / 1000), 0),
    maxBacklog,
    backlogAtEnd,
  };
}

/** A few requests driven past the history cap, to measure a retained terminal request at its largest. */
async function fullHistoryMemory(redis: Redis, gateway: RunningProcess) {
  const targets = freshTargets(20);
  await register(gateway.url, targets);
  const calls: Call[] = buildMix(targets, 55, 0);
  await drive(gateway.url, calls, { connections: 20 });
  await waitDrained(redis, 60000);
  const hist = await redis.llen(`${reqKey(targets[0]!.id)}:hist`);
  return { ...(await memoryPerRequest(redis, targets)), historyEntries: hist };
}

async function runProfile(profile: "A" | "B", bin: string) {
  const server = new RedisServer(bin, profile === "A" ? {} : { appendonly: true, fsync: "everysec" });
  servers.add(server);
  await server.start();
  const redis = new Redis(server.url, { maxRetriesPerRequest: 2 });
  const started: RunningProcess[] = [];
  let bareChild: ChildProcess | undefined;
  try {
    log(`profile ${profile}: redis on ${server.url} (${profile === "A" ? "AOF off" : "appendfsync everysec"})`);

    // the ceiling: same calls, bare Hono, as fast as it goes; measured right before and right after
    // the gateway's max-rate phase (the machine is noisy: the ratio uses their mean)
    const bare = await startBare();
    bareChild = bare.child;
    const probeMix = buildMix(makeTargets(500_000_000, 2000), opts.updates, opts.badEvery);
    await drive(bare.url, probeMix, { connections: opts.connections, duration: quick ? 0.5 : 1 });

    const g1 = await startGateway(server.url, `gateway-${profile}`);
    started.push(g1);
    // warm-up: JIT and connections, not measured (its backlog is drained by the first drain phase)
    const warm = freshTargets(Math.min(quick ? 300 : 1000, opts.requests));
    await register(g1.url, warm);
    await drive(g1.url, buildMix(warm, opts.updates, opts.badEvery), { connections: opts.connections });

    // gateway variants, each on its own key prefix (no worker serves it, so its backlog needs no drain)
    const variantGateways: RunningProcess[] = [];
    for (const [i, v] of (opts.compare && profile === opts.profiles[0] ? VARIANTS : []).entries()) {
      const gv = await startGateway(
        server.url,
        `gateway-v${i}-${profile}`,
        { ...(await variantEnv(v.env)), KEY_PREFIX: `benchv${i}` },
        v.root,
      );
      started.push(gv);
      variantGateways.push(gv);
      const vw = freshTargets(Math.min(quick ? 300 : 1000, opts.requests));
      await register(gv.url, vw);
      await drive(gv.url, buildMix(vw, opts.updates, opts.badEvery), { connections: opts.connections });
    }

    // interleaved rounds: ceiling, gateway, variants, ceiling, gateway, ... so that the machine's noise
    // hits all of them alike; each ratio compares with the ceiling measured in the same round
    const perRound = Math.max(50, Math.round(opts.requests / opts.rounds));
    const rounds: { ceiling: Awaited<ReturnType<typeof measureCeiling>>; gateway: MaxResult; variants: MaxResult[] }[] =
      [];
    const max1Targets: Target[] = [];
    for (let r = 0; r < opts.rounds; r++) {
      const prepared = await prepare([g1], perRound);
      max1Targets.push(...prepared.targets);
      const variantPrepared = [];
      for (const gv of variantGateways) variantPrepared.push(await prepare([gv], perRound));
      const ceilingRound = await measureCeiling(bare, probeMix);
      const gateway = await maxPhase(redis, [g1], prepared);
      const variantResults: MaxResult[] = [];
      for (const [i, gv] of variantGateways.entries())
        variantResults.push(await maxPhase(redis, [gv], variantPrepared[i]!));
      rounds.push({ ceiling: ceilingRound, gateway, variants: variantResults });
      log(
        `round ${r + 1}: ceiling ${ceilingRound.requestsPerSecond}/s, gateway ${gateway.acceptedPerSecond} accepted/s` +
          variantResults.map((v, i) => `, variant ${i} ${v.acceptedPerSecond}/s`).join(""),
      );
    }
    for (const gv of variantGateways) await gv.stop();
    const ceiling = round(median(rounds.map((x) => x.ceiling.requestsPerSecond)), 0);
    const ratio = spread(rounds.map((x) => x.gateway.acceptedPerSecond / x.ceiling.requestsPerSecond));
    // the round with the median gateway rate stands for the phase (its CPU, Redis and latency figures)
    const byRate = [...rounds].sort((a, b) => a.gateway.acceptedPerSecond - b.gateway.acceptedPerSecond);
    const mid = byRate[Math.floor(byRate.length / 2)]!;
    const max1 = { result: mid.gateway, targets: max1Targets };
    const variants = VARIANTS.slice(0, variantGateways.length).map((v, i) => ({
      name: v.name,
      acceptedPerSecond: spread(rounds.map((x) => x.variants[i]!.acceptedPerSecond)),
      ratio: spread(rounds.map((x) => x.variants[i]!.acceptedPerSecond / x.ceiling.requestsPerSecond)),
      // variant / default gateway, same round
      relative: spread(rounds.map((x) => x.variants[i]!.acceptedPerSecond / x.gateway.acceptedPerSecond)),
      gatewayCpuMicrosPerCallback: spread(rounds.map((x) => x.variants[i]!.gatewayCpuMicrosPerCallback)),
      redisCpuMicrosPerCallback: spread(rounds.map((x) => x.variants[i]!.redis.cpuMicrosPerCallback)),
    }));
    log(`gateway/ceiling ratio median ${ratio.median} (${ratio.min}-${ratio.max})`);
    const bareRss = rssMiB(bare.child.pid);
    const drainTargets = [...warm, ...max1Targets];
    const d1 = await drainPhase(redis, server.url, drainTargets, 1);
    log(`1 worker: ${d1.result.appliedPerSecond} applied/s`);

    // memory of retained terminal requests (the drained max-rate phase's requests)
    const memSample = max1.targets.slice(0, 200);
    const memory = {
      typical: await memoryPerRequest(redis, memSample),
      fullHistory: await fullHistoryMemory(redis, g1),
    };
    // SIGKILL: the backlog is drained, and a graceful worker stop waits for its blocking reads
    for (const w of d1.workers) await (opts.cpuProf ? w.stop() : w.kill());

    let max2: MaxResult | null = null;
    let scaling: {
      ceiling: number;
      oneGateway: number;
      twoGateways: number;
      ratioOne: number;
      ratioTwo: number;
      speedup: number;
    } | null = null;
    let d2: Awaited<ReturnType<typeof drainPhase>>["result"] | null = null;
    let pacedWorker: RunningProcess;
    if (opts.scaling && profile === opts.profiles[0]) {
      const g2 = await startGateway(server.url, `gateway2-${profile}`);
      started.push(g2);
      const warm2 = freshTargets(Math.min(500, opts.requests));
      await register(g2.url, warm2);
      await drive(g2.url, buildMix(warm2, opts.updates, opts.badEvery), { connections: opts.connections });
      // one round of its own: ceiling, 1 gateway, 2 gateways (load split over the two ports), same sizes
      const half = Math.max(50, Math.round(opts.requests / opts.rounds));
      const p1 = await prepare([g1], half);
      const p2 = await prepare([g1, g2], half);
      const c2 = await measureCeiling(bare, probeMix);
      const one = await maxPhase(redis, [g1], p1);
      max2 = await maxPhase(redis, [g1, g2], p2);
      scaling = {
        ceiling: c2.requestsPerSecond,
        oneGateway: one.acceptedPerSecond,
        twoGateways: max2.acceptedPerSecond,
        ratioOne: round(one.acceptedPerSecond / c2.requestsPerSecond, 3),
        ratioTwo: round(max2.acceptedPerSecond / c2.requestsPerSecond, 3),
        speedup: round(max2.acceptedPerSecond / Math.max(1, one.acceptedPerSecond), 3),
      };
      log(
        `scaling round: ceiling ${c2.requestsPerSecond}/s, 1 gateway ${one.acceptedPerSecond}/s, 2 gateways ${max2.acceptedPerSecond}/s`,
      );
      await g2.stop();
      const dd = await drainPhase(redis, server.url, [...warm2, ...p1.targets, ...p2.targets], 2);
      d2 = dd.result;
      log(`2 workers: ${d2.appliedPerSecond} applied/s`);
      await dd.workers[1]!.kill();
      pacedWorker = dd.workers[0]!;
    } else {
      pacedWorker = await startWorker(server.url);
    }
    await stopChild(bare.child);
    started.push(pacedWorker);

    const maxRate = max1.result.allPerSecond;
    const p50 = await pacedPhase(redis, g1, maxRate * 0.5, "50%");
    log(`50%: p99 ${p50.latencyMs.p99} ms, lag p99 ${p50.lagMs.p99} ms`);
    const p90 = await pacedPhase(redis, g1, maxRate * 0.9, "90%");
    log(`90%: p99 ${p90.latencyMs.p99} ms, lag p99 ${p90.lagMs.p99} ms`);

    return {
      profile,
      redis: profile === "A" ? "appendonly no" : "appendonly yes, appendfsync everysec",
      ceiling: {
        requestsPerSecond: ceiling,
        rounds: spread(rounds.map((x) => x.ceiling.requestsPerSecond)),
        cpuMicrosPerRequest: spread(rounds.map((x) => x.ceiling.cpuMicrosPerRequest)),
        loadGeneratorCpuMicrosPerRequest: spread(rounds.map((x) => x.ceiling.loadGeneratorCpuMicrosPerRequest)),
        rssMiB: bareRss,
      },
      ratio,
      acceptedPerSecond: spread(rounds.map((x) => x.gateway.acceptedPerSecond)),
      gatewayCpuMicrosPerCallback: spread(rounds.map((x) => x.gateway.gatewayCpuMicrosPerCallback)),
      max1: max1.result,
      rounds,
      variants,
      drain1: d1.result,
      max2,
      // 1 vs 2 gateways in a round of their own, against that round's ceiling
      scaling,
      drain2: d2,
      paced50: p50,
      paced90: p90,
      memoryPerTerminalRequest: memory,
      gatewayRssMiB: rssMiB(g1.child.pid),
      workerRssMiB: rssMiB(pacedWorker.child.pid),
    };
  } finally {
    // gateways stop gracefully (a --cpu-prof profile is written on exit); workers are killed
    for (const p of started.reverse()) await (p.port ? p.stop() : p.kill()).catch(() => {});
    if (bareChild) await stopChild(bareChild);
    redis.disconnect();
    await server.stop();
  }
}

type ProfileResult = Awaited<ReturnType<typeof runProfile>>;

function table(results: ProfileResult[]): string {
  const rows: [string, (r: ProfileResult) => string][] = [
    [
      `bare Hono ceiling, req/s: median (min-max of ${opts.rounds} rounds)`,
      (r) => `${r.ceiling.requestsPerSecond} (${r.ceiling.rounds.min}-${r.ceiling.rounds.max})`,
    ],
    [
      "bare Hono CPU / load generator CPU per request (µs, median)",
      (r) => `${r.ceiling.cpuMicrosPerRequest.median} / ${r.ceiling.loadGeneratorCpuMicrosPerRequest.median}`,
    ],
    [
      "gateway accepted callbacks/s, 1 gateway: median (min-max)",
      (r) => `${r.acceptedPerSecond.median} (${r.acceptedPerSecond.min}-${r.acceptedPerSecond.max})`,
    ],
    [
      "**ratio accepted / ceiling, same round: median (min-max)**",
      (r) => `**${r.ratio.median}** (${r.ratio.min}-${r.ratio.max})`,
    ],
    [
      "gateway CPU per accepted callback (µs): median (min-max)",
      (r) =>
        `${r.gatewayCpuMicrosPerCallback.median} (${r.gatewayCpuMicrosPerCallback.min}-${r.gatewayCpuMicrosPerCallback.max})`,
    ],
    ["gateway CPU utilisation in the median round (cores)", (r) => `${r.max1.gatewayCpuUtilisation}`],
    ...VARIANTS.map(
      (v, i) =>
        [
          `variant ${v.name}: accepted/s · ratio · vs default (same round) · gateway CPU µs/callback (medians)`,
          (r: ProfileResult) => {
            const x = r.variants[i];
            return x
              ? `${x.acceptedPerSecond.median} · ${x.ratio.median} · ${x.relative.median} (${x.relative.min}-${x.relative.max}) · ${x.gatewayCpuMicrosPerCallback.median}`
              : "-";
          },
        ] as [string, (r: ProfileResult) => string],
    ),
    [
      "scaling round: ceiling · 1 gateway · 2 gateways accepted/s (ratios) · speed-up",
      (r) =>
        r.scaling
          ? `${r.scaling.ceiling} · ${r.scaling.oneGateway} (${r.scaling.ratioOne}) · ${r.scaling.twoGateways} (${r.scaling.ratioTwo}) · ${r.scaling.speedup}×`
          : "-",
    ],
    [
      "accept latency p50/p99/p99.9 at 50% (ms)",
      (r) => `${r.paced50.latencyMs.p50} / ${r.paced50.latencyMs.p99} / ${r.paced50.latencyMs.p99_9}`,
    ],
    [
      "accept latency p50/p99/p99.9 at 90% (ms)",
      (r) => `${r.paced90.latencyMs.p50} / ${r.paced90.latencyMs.p99} / ${r.paced90.latencyMs.p99_9}`,
    ],
    ["offered rate 50% / 90% (calls/s)", (r) => `${r.paced50.offeredPerSecond} / ${r.paced90.offeredPerSecond}`],
    ["lag accepted→applied p50/p99 at 50% (ms)", (r) => `${r.paced50.lagMs.p50} / ${r.paced50.lagMs.p99}`],
    ["lag accepted→applied p50/p99 at 90% (ms)", (r) => `${r.paced90.lagMs.p50} / ${r.paced90.lagMs.p99}`],
    ["max backlog at 50% / 90% (jobs)", (r) => `${r.paced50.maxBacklog} / ${r.paced90.maxBacklog}`],
    ["applied transitions/s, 1 worker (drain)", (r) => `${r.drain1.appliedPerSecond}`],
    ["applied transitions/s, 2 workers (drain)", (r) => (r.drain2 ? `${r.drain2.appliedPerSecond}` : "-")],
    ["Redis round trips (script calls) per accepted callback", (r) => `${r.max1.redis.scriptCallsPerCallback}`],
    ["Redis commands run per accepted callback (incl. inside scripts)", (r) => `${r.max1.redis.commandsPerCallback}`],
    ["Redis CPU per accepted callback (gateway side, µs)", (r) => `${r.max1.redis.cpuMicrosPerCallback}`],
    [
      "worker: Redis round trips / Redis CPU µs / worker CPU µs per applied callback",
      (r) =>
        `${r.drain1.redis.scriptCallsPerCallback} / ${r.drain1.redis.cpuMicrosPerCallback} / ${r.drain1.workerCpuMicrosPerCallback}`,
    ],
    [
      "Redis memory per terminal request (bench / full history)",
      (r) =>
        `${r.memoryPerTerminalRequest.typical.bytes} B / ${r.memoryPerTerminalRequest.fullHistory.bytes} B (${r.memoryPerTerminalRequest.fullHistory.historyEntries} entries)`,
    ],
    ["gateway RSS / worker RSS (MiB)", (r) => `${r.gatewayRssMiB} / ${r.workerRssMiB}`],
    ["unexpected answers (max phase)", (r) => unexpected(r.max1.statusCounts, r.max1.expectedCounts)],
  ];
  const head = `| metric | ${results.map((r) => `profile ${r.profile} (${r.redis})`).join(" | ")} |`;
  const sep = `|---|${results.map(() => "---").join("|")}|`;
  return [head, sep, ...rows.map(([name, f]) => `| ${name} | ${results.map(f).join(" | ")} |`)].join("\n");
}

function unexpected(got: Record<string, number>, want: Record<string, number>): string {
  const diffs = Object.keys({ ...got, ...want })
    .filter((k) => (got[k] ?? 0) !== (want[k] ?? 0))
    .map((k) => `${k}: ${got[k] ?? 0} (expected ${want[k] ?? 0})`);
  return diffs.length ? diffs.join(", ") : "none";
}

async function main(): Promise<void> {
  const bin = findRedisServer();
  if (!bin) throw new Error("redis-server is not on PATH (sudo apt-get install -y redis-server)");
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "?",
    loadavgAtStart: loadavg(),
    node: process.version,
  };
  log(`options ${JSON.stringify(opts)}`);
  const results: ProfileResult[] = [];
  for (const p of opts.profiles) results.push(await runProfile(p as "A" | "B", bin));
  const report = {
    startedAt: new Date(started).toISOString(),
    seconds: round((Date.now() - started) / 1000, 1),
    machine,
    options: opts,
    results,
  };
  mkdirSync(opts.out, { recursive: true });
  const file = `${opts.out}/bench-${new Date(started).toISOString().replace(/[:.]/g, "-")}.json`;
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(table(results));
  console.log(
    `\nratio gateway/ceiling: ${results.map((r) => `${r.profile} ${r.ratio.median}`).join(", ")} · ${report.seconds} s · ${file}`,
  );
}

await main();
