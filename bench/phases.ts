// The phases of a bench run (ceiling, max rate, drain, paced) and a profile's run through them.
import { type ChildProcess, fork } from "node:child_process";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { decodeHistory, HISTORY_HEAD_FIELD, Keys } from "@ess/store";
import type { RunningProcess } from "@ess/testing";
import { RedisServer } from "@ess/testing";
import { Redis } from "ioredis";
import {
  buildMix,
  type Call,
  drive,
  expectedCounts,
  makeTargets,
  registrationCalls,
  statusCounts,
  type Target,
} from "./load.js";
import {
  backlog as backlogOf,
  cpuSeconds,
  histories,
  jobsAdded,
  latency,
  median,
  memoryPerRequest,
  pct,
  redisDelta,
  redisSample,
  redisStalls,
  redisStallsReset,
  regression,
  round,
  rssMiB,
  runtimeDelta,
  scrapeRuntime,
  spread,
  waitDrained as waitDrainedOf,
} from "./measure.js";
import { keys, log, opts, PARTITIONS, quick, sleep } from "./options.js";
import type { PacedAnswer, PacedRequest } from "./paced-driver.js";
import {
  children,
  servers,
  startBare,
  startGateway,
  startWorker,
  stopChild,
  UNBATCHED,
  VARIANTS,
  variantEnv,
} from "./processes.js";

const backlog = (redis: Redis) => backlogOf(redis, keys);
const waitDrained = (redis: Redis, timeoutMs: number) => waitDrainedOf(redis, keys, timeoutMs);
let driver: ChildProcess | undefined;
/**
 * One paced phase, driven by the load generator's own process (bench/paced-driver.ts, forked on first
 * use and kept; --paced-driver picks its client). Its IPC channel holds the bench open only while a phase runs.
 */
function paced(url: string, calls: Call[], rate: number, connections: number): Promise<PacedAnswer> {
  if (!driver) {
    driver = fork(new URL("./paced-driver.ts", import.meta.url).pathname, { serialization: "advanced" });
    children.add(driver);
    driver.unref();
  }
  const child = driver;
  child.channel?.ref();
  return new Promise((resolve, reject) => {
    const exited = (code: number | null) => reject(new Error(`the paced driver exited (${code})`));
    child.once("exit", exited);
    child.once("message", (answer) => {
      child.off("exit", exited);
      child.channel?.unref();
      resolve(answer as PacedAnswer);
    });
    const req: PacedRequest = { driver: opts.pacedDriver as PacedRequest["driver"], url, calls, rate, connections };
    child.send(req);
  });
}

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

/**
 * Latency of the bare server under the open-loop driver at `rate` for one step: what the driver, node's
 * HTTP and the machine alone add to an accept latency measured the same way (the floor of that figure).
 */
async function pacedBare(url: string, mix: Call[], rate: number) {
  const n = Math.max(1, Math.round(rate * opts.sustainedSeconds));
  const calls = Array.from({ length: n }, (_, i) => mix[i % mix.length] as Call);
  const l = (await paced(url, calls, rate, opts.connections)).result.latencies;
  return { p50: round(pct(l, 50), 2), p99: round(pct(l, 99), 2), p99_9: round(pct(l, 99.9), 2) };
}

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

type Ceiling = Awaited<ReturnType<typeof measureCeiling>>;

/**
 * The higher of two ceilings, measured before and after a search. A ceiling measured while the machine
 * was briefly busier reads low and would flatter the ratio; the higher one is the conservative choice.
 */
function higher(a: Ceiling, b: Ceiling): Ceiling {
  return b.requestsPerSecond > a.requestsPerSecond ? b : a;
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
async function maxPhase(redis: Redis, gateways: RunningProcess[], prepared: Prepared, layout: Keys = keys) {
  const { mixes } = prepared;
  const expected = expectedCounts(mixes.flat());
  const before = await redisSample(redis);
  const jobs0 = await jobsAdded(redis, layout);
  const cpu0 = gateways.map((g) => cpuSeconds(g.child.pid));
  const results = await Promise.all(
    gateways.map((g, i) =>
      drive(g.url, mixes[i]!, { connections: Math.max(1, Math.round(opts.connections / gateways.length)) }),
    ),
  );
  // first send to last answer (of the slowest load generator when there are two)
  const elapsed = Math.max(...results.map((r) => r.seconds));
  const after = await redisSample(redis);
  const jobs = (await jobsAdded(redis, layout)) - jobs0;
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
    // accepted callbacks per job added (ADMIT_BATCH_MAX batches; 1 without batching)
    callbacksPerJob: round(accepted / Math.max(1, jobs), 2),
    errors: results.reduce((s, r) => s + r.errors + r.timeouts, 0),
    latencyMs: latency(results[0]!),
    redis: redisDelta(before, after, Math.max(1, accepted)),
    gatewayCpuMicrosPerCallback: round((gatewayCpu.reduce((a, b) => a + b, 0) * 1e6) / Math.max(1, accepted), 1),
    gatewayCpuUtilisation: gatewayCpu.map((c) => round(c / elapsed, 2)),
    gatewayRssMiB: gateways.map((g) => rssMiB(g.child.pid)),
    gatewayPeakRssMiB: gateways.map((g) => rssMiB(g.child.pid, true)),
  };
}
export type MaxResult = Awaited<ReturnType<typeof maxPhase>>;

/** A variant's worker: its environment and checkout, and the key layout of its prefix. */
interface WorkerVariant {
  env: Record<string, string>;
  root?: string | undefined;
  keys: Keys;
}

async function drainPhase(redis: Redis, url: string, targets: Target[], workerCount: number, variant?: WorkerVariant) {
  const k = variant?.keys ?? keys;
  const before = await redisSample(redis);
  const pending = await backlogOf(redis, k);
  const workers = await Promise.all(
    Array.from({ length: workerCount }, () => startWorker(url, variant?.env, variant?.root)),
  );
  const cpu0 = workers.map((w) => cpuSeconds(w.child.pid));
  const drained = await waitDrainedOf(redis, k, 120000);
  const after = await redisSample(redis);
  const workerCpu = workers.reduce((s, w, i) => s + cpuSeconds(w.child.pid) - cpu0[i]!, 0);
  const h = await histories(redis, k, targets);
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
    workerPeakRssMiB: workers.map((w) => rssMiB(w.child.pid, true)),
  };
  return { workers, result };
}

/**
 * Paced phase: gateway and worker together at a fixed offered rate (open loop) for `seconds`; accept
 * latency, lag accepted→applied, the backlog sampled every 100 ms, and the CPU of every process
 * (gateway, worker, Redis, load generator) per accepted callback.
 */
async function pacedPhase(
  redis: Redis,
  gateway: RunningProcess,
  worker: RunningProcess,
  offered: number,
  label: string,
  seconds = opts.pacedSeconds,
) {
  const perRequest = opts.updates + 1;
  const n = Math.max(10, Math.ceil((offered * seconds) / perRequest));
  const targets = freshTargets(n);
  await register(gateway.url, targets);
  const calls = buildMix(targets, opts.updates, opts.badEvery);
  // the bench's own garbage from the phases before (registration, histories, the last phase's calls)
  // is collected now, not by a full collection competing for a core mid-phase (the load generator's
  // process collects its own before it starts: bench/paced-driver.ts)
  collectGarbage();
  // the stall readouts start here (the processes' event-loop delay and GC pauses, Redis's latency
  // monitor and slow log, the load generator's own loop); the phase starts after the scrapes settle
  const [gatewayRt0, workerRt0] = await Promise.all([
    scrapeRuntime(gateway.adminUrl),
    scrapeRuntime(worker.metricsUrl),
  ]);
  await sleep(250);
  const samples: { t: number; n: number }[] = [];
  let sampling = true;
  const t0 = Date.now();
  const sampler = (async () => {
    while (sampling) {
      samples.push({ t: (Date.now() - t0) / 1000, n: await backlog(redis) });
      await sleep(100);
    }
  })();
  await redisStallsReset(redis);
  const before = await redisSample(redis);
  const jobs0 = await jobsAdded(redis, keys);
  const gatewayCpu0 = cpuSeconds(gateway.child.pid);
  const workerCpu0 = cpuSeconds(worker.child.pid);
  const benchCpu0 = process.cpuUsage();
  const driven = await paced(gateway.url, calls, offered, opts.connections);
  const res = driven.result;
  const loadGenerator = driven.stalls;
  sampling = false;
  await sampler;
  const backlogAtEnd = await backlog(redis);
  const jobs = (await jobsAdded(redis, keys)) - jobs0;
  const benchCpu = process.cpuUsage(benchCpu0);
  const gatewayCpu = cpuSeconds(gateway.child.pid) - gatewayCpu0;
  await waitDrained(redis, 60000);
  // the worker's CPU and Redis's up to the drain: every accepted callback of the phase applied
  const workerCpu = cpuSeconds(worker.child.pid) - workerCpu0;
  const after = await redisSample(redis);
  const redisStall = await redisStalls(redis);
  const [gatewayRt, workerRt] = await Promise.all([scrapeRuntime(gateway.adminUrl), scrapeRuntime(worker.metricsUrl)]);
  const h = await histories(redis, keys, targets);
  const accepted = res.statusCounts["200"] ?? 0;
  const per = Math.max(1, accepted);
  const l = res.latencies;
  const redisCost = redisDelta(before, after, per);
  const cpu = {
    gateway: round((gatewayCpu * 1e6) / per, 1),
    worker: round((workerCpu * 1e6) / per, 1),
    redis: redisCost.cpuMicrosPerCallback,
    loadGenerator: round(driven.cpuMicros / per, 1),
    total: 0,
    // the bench's own process meanwhile (backlog sampling, scrapes), not in the total
    bench: round((benchCpu.user + benchCpu.system) / per, 1),
  };
  cpu.total = round(cpu.gateway + cpu.worker + cpu.redis + cpu.loadGenerator, 1);
  // growth of the backlog over the phase, from the least-squares line through its samples
  const line =
    samples.length > 1
      ? regression(
          samples.map((x) => x.t),
          samples.map((x) => x.n),
        )
      : { a: 0, b: 0 };
  return {
    label,
    seconds: round(res.seconds, 2),
    offeredPerSecond: Math.round(offered),
    achievedPerSecond: round(calls.length / res.seconds, 0),
    acceptedPerSecond: round(accepted / res.seconds, 0),
    // accepted callbacks per job added (gap checks included, a few)
    callbacksPerJob: round(accepted / Math.max(1, jobs), 2),
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
    maxBacklog: Math.max(0, ...samples.map((x) => x.n)),
    backlogAtEnd,
    backlogGrowth: round(line.b * res.seconds, 0),
    cpuMicrosPerCallback: cpu,
    redis: redisCost,
    stalls: {
      slowCalls: slowEpisodes(res.slow),
      gateway: runtimeDelta(gatewayRt0, gatewayRt),
      worker: runtimeDelta(workerRt0, workerRt),
      loadGenerator,
      redis: redisStall,
    },
  };
}

/**
 * The calls over SLOW_CALL_MS grouped into episodes (a call scheduled within 20 ms of the previous slow
 * one joins its episode): a few long stalls or many short ones. The five with the most calls are listed.
 */
function slowEpisodes(slow: { at: number; ms: number }[]) {
  const episodes: { atMs: number; spanMs: number; calls: number; maxMs: number }[] = [];
  let last = Number.NEGATIVE_INFINITY;
  for (const c of slow) {
    const e = episodes.at(-1);
    if (e && c.at - last <= 20) {
      e.calls++;
      e.maxMs = Math.max(e.maxMs, c.ms);
      e.spanMs = c.at - e.atMs;
    } else episodes.push({ atMs: c.at, spanMs: 0, calls: 1, maxMs: c.ms });
    last = c.at;
  }
  return {
    calls: slow.length,
    episodes: episodes.length,
    worst: episodes
      .sort((a, b) => b.calls - a.calls)
      .slice(0, 5)
      .map((e) => ({ atMs: round(e.atMs, 0), spanMs: round(e.spanMs, 0), calls: e.calls, maxMs: round(e.maxMs, 1) })),
  };
}

/** A full garbage collection of the bench's process (V8's gc(), exposed at run time). */
const collectGarbage: () => void = (() => {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

type PacedResult = Awaited<ReturnType<typeof pacedPhase>>;

/** One line of a paced phase's stall readouts (the log and the report). */
export function stallLine(p: Pick<PacedResult, "stalls">): string {
  const s = p.stalls;
  const worst = s.slowCalls.worst[0];
  const gc = (r: { gc: Record<string, { count: number; ms: number; over10ms: number }> } | null) =>
    r
      ? Object.entries(r.gc)
          .map(([k, v]) => `${k} ${v.count}/${v.ms} ms${v.over10ms ? ` (${v.over10ms} >10 ms)` : ""}`)
          .join(", ") || "none"
      : "-";
  const loop = (r: { loopDelayMaxMs: number } | null) => (r ? r.loopDelayMaxMs : "-");
  const events = Object.entries(s.redis.latencyMaxMs)
    .map(([k, v]) => `${k} ${v} ms`)
    .join(", ");
  return (
    `slow calls (>10 ms) ${s.slowCalls.calls} in ${s.slowCalls.episodes} episodes` +
    (worst ? ` (largest ${worst.calls} calls over ${worst.spanMs} ms, max ${worst.maxMs} ms)` : "") +
    ` · loop delay max gateway/worker/load ${loop(s.gateway)}/${loop(s.worker)}/${loop(s.loadGenerator)} ms` +
    ` · GC gateway: ${gc(s.gateway)}; worker: ${gc(s.worker)}; load: ${gc(s.loadGenerator)} (heap ${s.loadGenerator.heapUsedMiB} MiB)` +
    ` · Redis: slow log ${s.redis.slowlog.count} (max ${round(s.redis.slowlog.maxMicros / 1000, 1)} ms)${events ? `, latency ${events}` : ""}`
  );
}

/**
 * CPU the gateway, the worker and Redis use without traffic (cores, over 2 s): timers, the worker's
 * blocking reads and stalled checks. At a low rate this floor is a large part of the CPU per callback.
 */
async function idleCores(redis: Redis, gateway: RunningProcess, worker: RunningProcess) {
  const before = await redisSample(redis);
  const g0 = cpuSeconds(gateway.child.pid);
  const w0 = cpuSeconds(worker.child.pid);
  const t0 = Date.now();
  await sleep(2000);
  const after = await redisSample(redis);
  const s = (Date.now() - t0) / 1000;
  return {
    gateway: round((cpuSeconds(gateway.child.pid) - g0) / s, 3),
    worker: round((cpuSeconds(worker.child.pid) - w0) / s, 3),
    redis: round((after.cpu - before.cpu) / s, 3),
  };
}

/** What a paired step (batched / unbatched at the same offered rate) reports of a paced phase. */
type PairSide = ReturnType<typeof pairSide>;
function pairSide(p: PacedResult) {
  const v = holds(p);
  return {
    acceptedPerSecond: p.acceptedPerSecond,
    holds: v.ok,
    why: v.why,
    lagMs: p.lagMs,
    latencyMs: p.latencyMs,
    maxBacklog: p.maxBacklog,
    callbacksPerJob: p.callbacksPerJob,
    cpuMicrosPerCallback: p.cpuMicrosPerCallback,
  };
}

/** Lag p99 a sustained rate must keep (accepted → applied). */
export const SUSTAINED_LAG_P99_MS = 100;
/** Share of the offered rate a sustained step must achieve. */
export const SUSTAINED_MIN_ACHIEVED = 0.95;

/**
 * A step of the sustained search holds when the calls went out at the offered rate (achieved at least
 * SUSTAINED_MIN_ACHIEVED of it: a step whose calls queued in the load generator, because the gateway
 * answered too slowly or the generator had no CPU, did not run at its rate), the lag p99 is within
 * SUSTAINED_LAG_P99_MS, every call got its expected answer (no 503 from backpressure, no connection
 * error), and the backlog stayed bounded:
 * neither its growth over the step (least-squares line) nor what is left at the end exceeds what the
 * offered rate brings in SUSTAINED_LAG_P99_MS (at least 50 jobs, so a handful in flight is not growth).
 */
function holds(p: PacedResult): { ok: boolean; why: string } {
  const bound = Math.max(50, (p.offeredPerSecond * SUSTAINED_LAG_P99_MS) / 1000);
  const why: string[] = [];
  if (!(p.achievedPerSecond >= SUSTAINED_MIN_ACHIEVED * p.offeredPerSecond))
    why.push(`${p.achievedPerSecond} calls/s achieved`);
  if (!(p.lagMs.p99 <= SUSTAINED_LAG_P99_MS)) why.push(`lag p99 ${p.lagMs.p99} ms`);
  if (p.backlogGrowth > bound) why.push(`backlog grew by ${p.backlogGrowth}`);
  if (p.backlogAtEnd > bound) why.push(`backlog ${p.backlogAtEnd} at the end`);
  if (p.errors > 0) why.push(`${p.errors} connection errors`);
  if (unexpectedAnswers(p.statusCounts, p.expectedCounts)) why.push("unexpected answers");
  return { ok: why.length === 0, why: why.join(", ") || "ok" };
}

function unexpectedAnswers(got: Record<string, number>, want: Record<string, number>): boolean {
  return Object.keys({ ...got, ...want }).some((k) => (got[k] ?? 0) !== (want[k] ?? 0));
}

/**
 * The sustained rate: the highest paced (open-loop) rate at which gateway, one worker, Redis and the
 * load generator together keep the backlog bounded and lag p99 ≤ SUSTAINED_LAG_P99_MS. Starts at half
 * the gateway's own max rate (after a warm-up step there, not counted), steps up ×1.5 while steps hold
 * (down ×0.6 while they fail), then bisects
 * between the highest rate that held and the lowest that failed; `opts.sustainedSteps` steps of
 * `opts.sustainedSeconds` each. Rates are offered calls/s (4xx included); the headline is the accepted
 * callbacks/s of the best step that held.
 */
async function sustainedSearch(
  redis: Redis,
  gateway: RunningProcess,
  worker: RunningProcess,
  maxRate: number,
  label = "sustained",
  start = maxRate * 0.5,
) {
  const steps: (PacedResult & { holds: boolean; why: string })[] = [];
  let good: PacedResult | undefined;
  let bad: number | undefined;
  let rate = start;
  // a warm-up step at the start rate, not counted: the paced worker may be a fresh process (without
  // --scaling it is started for these phases), and a cold worker's first seconds at thousands of
  // callbacks/s (code not yet optimised, heap growing) failed the first step in every run while every
  // lower step held
  const warm = await pacedPhase(redis, gateway, worker, start, `${label} warm-up`, Math.min(3, opts.sustainedSeconds));
  log(`${label} warm-up (not counted): ${warm.offeredPerSecond} calls/s offered, lag p99 ${warm.lagMs.p99} ms`);
  for (let i = 0; i < opts.sustainedSteps; i++) {
    const p = await pacedPhase(redis, gateway, worker, rate, `${label} step ${i + 1}`, opts.sustainedSeconds);
    const v = holds(p);
    steps.push({ ...p, holds: v.ok, why: v.why });
    log(
      `${label} step ${i + 1}: ${p.offeredPerSecond} calls/s offered, ${p.acceptedPerSecond} accepted/s, ` +
        `lag p99 ${p.lagMs.p99} ms, backlog max ${p.maxBacklog} / end ${p.backlogAtEnd} / growth ${p.backlogGrowth}, ` +
        `${p.callbacksPerJob} callbacks/job: ` +
        (v.ok ? "holds" : `fails (${v.why})`) +
        `; ${stallLine(p)}`,
    );
    if (v.ok && (!good || p.offeredPerSecond > good.offeredPerSecond)) good = p;
    if (!v.ok) bad = Math.min(bad ?? Number.POSITIVE_INFINITY, p.offeredPerSecond);
    if (good && bad !== undefined) rate = (good.offeredPerSecond + bad) / 2;
    else rate = good ? rate * 1.5 : rate * 0.6;
    // the bisection has closed in to 5 %
    if (good && bad !== undefined && bad - good.offeredPerSecond <= 0.05 * good.offeredPerSecond) break;
  }
  return { best: good ?? null, lowestFailing: bad ?? null, steps };
}

/** A few requests driven past the history cap, to measure a retained terminal request at its largest. */
async function fullHistoryMemory(redis: Redis, gateway: RunningProcess) {
  const targets = freshTargets(20);
  await register(gateway.url, targets);
  const calls: Call[] = buildMix(targets, 55, 0);
  await drive(gateway.url, calls, { connections: 20 });
  await waitDrained(redis, 60000);
  const first = targets[0]!.id;
  const p = keys.partition(first);
  const hist = decodeHistory(
    await redis.lrange(keys.history(p, first), 0, -1),
    await redis.hget(keys.request(p, first), HISTORY_HEAD_FIELD),
  ).length;
  return { ...(await memoryPerRequest(redis, keys, targets)), historyEntries: hist };
}

export async function runProfile(profile: "A" | "B", bin: string) {
  const server = new RedisServer(bin, profile === "A" ? {} : { appendonly: true, fsync: "everysec" });
  servers.add(server);
  await server.start();
  const redis = new Redis(server.url, { maxRetriesPerRequest: 2 });
  const started: RunningProcess[] = [];
  let bareChild: ChildProcess | undefined;
  try {
    log(`profile ${profile}: redis on ${server.url} (${profile === "A" ? "AOF off" : "appendfsync everysec"})`);

    // the ceiling: same calls, bare Hono, as fast as it goes; measured in every max-rate round, right
    // before the gateways of that round, and around the sustained searches (the machine is noisy)
    const bare = await startBare();
    bareChild = bare.child;
    const probeMix = buildMix(makeTargets(500_000_000, 2000), opts.updates, opts.badEvery);
    await drive(bare.url, probeMix, { connections: opts.connections, duration: quick ? 0.5 : 1 });

    // RSS of a gateway and a worker that have served nothing yet (nothing is queued before the warm-up),
    // 10 s after they are ready: at 1 s a process on a loaded machine may still be loading its modules.
    // Processes of their own: a default gateway that had idled those 10 s before its warm-up read 2-15 %
    // slower in the max-rate rounds than an identical gateway started later (BENCHMARKS.md, "The default
    // gateway's 10 s of idling")
    const [idleGateway, idleWorker] = await Promise.all([
      startGateway(server.url, `gateway-idle-${profile}`),
      startWorker(server.url),
    ]);
    await sleep(10_000);
    const idleRss = { gateway: rssMiB(idleGateway.child.pid), worker: rssMiB(idleWorker.child.pid) };
    await Promise.all([idleGateway.kill(), idleWorker.kill()]);
    const g1 = await startGateway(server.url, `gateway-${profile}`);
    started.push(g1);
    // warm-up: JIT and connections, not measured (its backlog is drained by the first drain phase)
    const warm = freshTargets(Math.min(quick ? 300 : 1000, opts.requests));
    await register(g1.url, warm);
    await drive(g1.url, buildMix(warm, opts.updates, opts.badEvery), { connections: opts.connections });

    // gateway variants, each on its own key prefix (no worker serves it, so its backlog needs no drain)
    const variantGateways: RunningProcess[] = [];
    // each variant's requests (its backlog is drained by a worker of the variant after the rounds)
    const variantTargets: Target[][] = [];
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
      variantTargets.push([...vw]);
      await register(gv.url, vw);
      await drive(gv.url, buildMix(vw, opts.updates, opts.badEvery), { connections: opts.connections });
    }

    // interleaved rounds: ceiling, gateway, variants, ceiling, gateway, ... so that the machine's noise
    // hits all of them alike; each ratio compares with the ceiling measured in the same round
    const perRound = Math.max(50, Math.round(opts.requests / opts.rounds));
    const rounds: { ceiling: Ceiling; gateway: MaxResult; variants: MaxResult[] }[] = [];
    const max1Targets: Target[] = [];
    for (let r = 0; r < opts.rounds; r++) {
      const prepared = await prepare([g1], perRound);
      max1Targets.push(...prepared.targets);
      const variantPrepared = [];
      for (const [i, gv] of variantGateways.entries()) {
        variantPrepared.push(await prepare([gv], perRound));
        variantTargets[i]!.push(...variantPrepared[i]!.targets);
      }
      const ceilingRound = await measureCeiling(bare, probeMix);
      const gateway = await maxPhase(redis, [g1], prepared);
      const variantResults: MaxResult[] = [];
      for (const [i, gv] of variantGateways.entries())
        variantResults.push(await maxPhase(redis, [gv], variantPrepared[i]!, new Keys(`benchv${i}`, PARTITIONS)));
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
    // each variant's backlog, drained by one worker with the variant's environment (its checkout's
    // worker for a --baseline): the worker's CPU per applied callback next to the default's
    const variantDrains: Awaited<ReturnType<typeof drainPhase>>["result"][] = [];
    for (const [i, v] of VARIANTS.slice(0, variantGateways.length).entries()) {
      const env = { ...(await variantEnv(v.env)), KEY_PREFIX: `benchv${i}` };
      const dv = await drainPhase(redis, server.url, variantTargets[i]!, 1, {
        env,
        root: v.root,
        keys: new Keys(`benchv${i}`, PARTITIONS),
      });
      for (const w of dv.workers) await (opts.cpuProf ? w.stop() : w.kill());
      variantDrains.push(dv.result);
      log(
        `variant ${i}, 1 worker: ${dv.result.appliedPerSecond} applied/s, ${dv.result.workerCpuMicrosPerCallback} µs/callback`,
      );
    }

    // memory of retained terminal requests (the drained max-rate phase's requests)
    const memSample = max1.targets.slice(0, 200);
    const memory = {
      typical: await memoryPerRequest(redis, keys, memSample),
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
    started.push(pacedWorker);

    const maxRate = max1.result.allPerSecond;
    let sustained: {
      ceiling: Ceiling;
      idleCores: Awaited<ReturnType<typeof idleCores>>;
      search: Awaited<ReturnType<typeof sustainedSearch>>;
      acceptedPerSecond: number | null;
      ratioToCeiling: number | null;
      ratioToMedianCeiling: number | null;
      paced50: PacedResult | null;
      bareAt50: { p50: number; p99: number; p99_9: number } | null;
    } | null = null;
    let unbatched: {
      ceiling: Ceiling;
      search: Awaited<ReturnType<typeof sustainedSearch>>;
      acceptedPerSecond: number | null;
      ratioToCeiling: number | null;
      paced50: PacedResult | null;
      pairs: { offered: number; on: PairSide; off: PairSide }[];
    } | null = null;
    if (opts.sustained) {
      // a ceiling of its own right before the search (the worker idles) and right after it: the same
      // moment's machine
      const before = await measureCeiling(bare, probeMix);
      const idle = await idleCores(redis, g1, pacedWorker);
      const search = await sustainedSearch(redis, g1, pacedWorker, maxRate);
      const c = higher(before, await measureCeiling(bare, probeMix));
      const rate = search.best?.acceptedPerSecond ?? null;
      // accept latency at half the sustained rate (offered calls/s of the best step that held), as long
      // as a step: a p99 needs thousands of calls (a 1.5 s phase at 1 000/s makes it the 15th slowest)
      const half = search.best
        ? await pacedPhase(
            redis,
            g1,
            pacedWorker,
            search.best.offeredPerSecond * 0.5,
            "50% of sustained",
            opts.sustainedSeconds,
          )
        : null;
      // the floor of that figure: the bare server under the same driver at the same rate, as long
      const bareHalf = search.best ? await pacedBare(bare.url, probeMix, search.best.offeredPerSecond * 0.5) : null;
      sustained = {
        ceiling: c,
        idleCores: idle,
        search,
        acceptedPerSecond: rate,
        ratioToCeiling: rate === null ? null : round(rate / c.requestsPerSecond, 3),
        ratioToMedianCeiling: rate === null ? null : round(rate / ceiling, 3),
        paced50: half,
        bareAt50: bareHalf,
      };
      log(
        `sustained: ${rate ?? "none"} accepted/s (ceiling ${c.requestsPerSecond}/s, ratio ${sustained.ratioToCeiling})` +
          (half
            ? `; at 50 %: accept p99 ${half.latencyMs.p99} ms (bare server: ${bareHalf?.p99} ms); ${stallLine(half)}`
            : ""),
      );
      if (opts.unbatched) {
        // the same search with a gateway that does not batch (same worker, Redis and key prefix): no
        // batch jobs, so no batch apply either; started from below the batched result
        const gu = await startGateway(server.url, `gateway-unbatched-${profile}`, UNBATCHED);
        started.push(gu);
        const warmU = freshTargets(Math.min(quick ? 300 : 1000, opts.requests));
        await register(gu.url, warmU);
        await drive(gu.url, buildMix(warmU, opts.updates, opts.badEvery), { connections: opts.connections });
        await waitDrained(redis, 60000);
        const beforeU = await measureCeiling(bare, probeMix);
        const startU = (search.best?.offeredPerSecond ?? maxRate * 0.5) * 0.6;
        const searchU = await sustainedSearch(redis, gu, pacedWorker, maxRate, "unbatched", startU);
        const cu = higher(beforeU, await measureCeiling(bare, probeMix));
        const rateU = searchU.best?.acceptedPerSecond ?? null;
        const halfU = searchU.best
          ? await pacedPhase(
              redis,
              gu,
              pacedWorker,
              searchU.best.offeredPerSecond * 0.5,
              "unbatched 50% of sustained",
              opts.sustainedSeconds,
            )
          : null;
        // the same offered rates with and without batching, alternating, so that the machine's swings hit
        // both alike: lag, accept latency and CPU per callback by process, side by side
        const base = search.best?.offeredPerSecond ?? maxRate * 0.25;
        const pairs: { offered: number; on: PairSide; off: PairSide }[] = [];
        for (const f of [0.5, 1, 2, 4]) {
          const on = await pacedPhase(redis, g1, pacedWorker, base * f, `pair batched ×${f}`, opts.sustainedSeconds);
          const off = await pacedPhase(redis, gu, pacedWorker, base * f, `pair unbatched ×${f}`, opts.sustainedSeconds);
          pairs.push({ offered: Math.round(base * f), on: pairSide(on), off: pairSide(off) });
          const c = (x: PacedResult) => x.cpuMicrosPerCallback;
          log(
            `pair ${Math.round(base * f)} calls/s: batched lag p99 ${on.lagMs.p99} ms, accept p99 ${on.latencyMs.p99} ms, ` +
              `CPU µs gw/wk/redis ${c(on).gateway}/${c(on).worker}/${c(on).redis}, ${on.callbacksPerJob}/job · unbatched lag p99 ` +
              `${off.lagMs.p99} ms, accept p99 ${off.latencyMs.p99} ms, CPU µs ${c(off).gateway}/${c(off).worker}/${c(off).redis}`,
          );
        }
        unbatched = {
          ceiling: cu,
          search: searchU,
          acceptedPerSecond: rateU,
          ratioToCeiling: rateU === null ? null : round(rateU / cu.requestsPerSecond, 3),
          paced50: halfU,
          pairs,
        };
        log(
          `unbatched sustained: ${rateU ?? "none"} accepted/s (ceiling ${cu.requestsPerSecond}/s, ratio ${unbatched.ratioToCeiling})` +
            (halfU ? `; at 50 %: accept p99 ${halfU.latencyMs.p99} ms` : ""),
        );
        await gu.stop();
      }
      await stopChild(bare.child);
    } else {
      await stopChild(bare.child);
    }

    const p50 = await pacedPhase(redis, g1, pacedWorker, maxRate * 0.5, "50%");
    log(`50%: p99 ${p50.latencyMs.p99} ms, lag p99 ${p50.lagMs.p99} ms`);
    const p90 = await pacedPhase(redis, g1, pacedWorker, maxRate * 0.9, "90%");
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
      variantDrains,
      max2,
      // 1 vs 2 gateways in a round of their own, against that round's ceiling
      scaling,
      drain2: d2,
      paced50: p50,
      paced90: p90,
      sustained,
      unbatched,
      memoryPerTerminalRequest: memory,
      gatewayRssMiB: rssMiB(g1.child.pid),
      workerRssMiB: rssMiB(pacedWorker.child.pid),
      // idle: right after start; peak: the high-water mark of the processes that ran every phase
      rssMiB: {
        idle: idleRss,
        peak: { gateway: rssMiB(g1.child.pid, true), worker: rssMiB(pacedWorker.child.pid, true) },
      },
    };
  } finally {
    // gateways stop gracefully (a --cpu-prof profile is written on exit); workers are killed
    for (const p of started.reverse()) await (p.port ? p.stop() : p.kill()).catch(() => {});
    if (bareChild) await stopChild(bareChild);
    redis.disconnect();
    await server.stop();
  }
}

export type ProfileResult = Awaited<ReturnType<typeof runProfile>>;
