// Measurements of the bench (bench/run.ts) and the soak (scripts/soak.ts): process CPU and RSS from
// Linux /proc, the backlog of the partition queues, Redis command and CPU counters, request
// histories and memory, and the statistics over them.
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { CALLBACK_QUEUE, decodeHistory, fanOut, HISTORY_HEAD_FIELD, type Keys, type RequestStore } from "@ess/store";
import type { Result } from "autocannon";
import type { Redis } from "ioredis";
import type { Target } from "./load.js";

/** utime + stime of a process in seconds (Linux /proc). */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** VmRSS of a process in MiB; `peak`: its high-water mark (VmHWM) since it started. */
export function rssMiB(pid: number | undefined, peak = false): number {
  if (!pid) return 0;
  try {
    const m = (peak ? /VmHWM:\s+(\d+) kB/ : /VmRSS:\s+(\d+) kB/).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : 0;
  } catch {
    return 0;
  }
}

/**
 * Jobs ever added to the partition queues of a key layout (BullMQ counts every add in `<queue>:id`,
 * custom job ids included): accepted callbacks ÷ jobs added over a phase = callbacks per job.
 */
export async function jobsAdded(redis: Redis, keys: Keys): Promise<number> {
  const all = Array.from({ length: keys.partitions }, (_, p) => p);
  const res = await fanOut(all, (p) => redis.get(`${keys.jobPrefix(p)}id`));
  return res.reduce((sum, [, n]) => sum + Number(n ?? 0), 0);
}

/** Jobs waiting or active over all partition queues of a key layout. */
export async function backlog(redis: Redis, keys: Keys): Promise<number> {
  const all = Array.from({ length: keys.partitions }, (_, p) => p);
  // delayed jobs are gap checks due GAP_TIMEOUT_MS later: not backlog; per partition (a Cluster refuses
  // a pipeline across slots)
  // callbacks queued inside batch jobs: their in-flight markers (a batch job counts once more)
  const res = await fanOut(all, (p) => {
    const q = `${keys.tag(p)}:${CALLBACK_QUEUE}`;
    return Promise.all([redis.llen(`${q}:wait`), redis.llen(`${q}:active`), redis.hlen(keys.inflight(p))]);
  });
  return res.reduce((sum, [, n]) => sum + (n ? n[0] + n[1] + n[2] : 0), 0);
}

/** Waits until the backlog is empty; false after timeoutMs. */
export async function waitDrained(redis: Redis, keys: Keys, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await backlog(redis, keys)) === 0) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** Redis server CPU seconds so far (user + sys, INFO cpu). */
export async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info("cpu");
  const get = (k: string) => Number(new RegExp(`^${k}:([0-9.]+)`, "m").exec(info)?.[1] ?? 0);
  return get("used_cpu_user") + get("used_cpu_sys");
}

/** Calls and µs of every command so far (INFO commandstats). */
export async function commandStats(redis: Redis): Promise<Record<string, { calls: number; usec: number }>> {
  const info = await redis.info("commandstats");
  const out: Record<string, { calls: number; usec: number }> = {};
  for (const x of info.matchAll(/^cmdstat_([a-z|_]+):calls=(\d+),usec=(\d+)/gm)) {
    out[x[1] as string] = { calls: Number(x[2]), usec: Number(x[3]) };
  }
  return out;
}

export interface RedisSample {
  calls: number;
  byCommand: Record<string, number>;
  cpu: number;
}

export async function redisSample(redis: Redis): Promise<RedisSample> {
  const stats = await redis.info("commandstats");
  const cpu = await redis.info("cpu");
  const byCommand: Record<string, number> = {};
  let calls = 0;
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    // the bench's own probes are not the system's work
    if (
      m[1] === "info" ||
      m[1] === "llen" ||
      m[1] === "hlen" ||
      m[1] === "zcard" ||
      m[1] === "lrange" ||
      m[1] === "memory"
    )
      continue;
    byCommand[m[1]!] = Number(m[2]);
    calls += Number(m[2]);
  }
  const num = (k: string) => Number(new RegExp(`^${k}:([0-9.]+)`, "m").exec(cpu)?.[1] ?? 0);
  return { calls, byCommand, cpu: num("used_cpu_sys") + num("used_cpu_user") };
}

export function redisDelta(a: RedisSample, b: RedisSample, per: number) {
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

/** Least-squares line y = a + b·x. */
export function regression(xs: number[], ys: number[]): { a: number; b: number } {
  const n = xs.length;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  const b = sxx === 0 ? 0 : sxy / sxx;
  return { a: my - b * mx, b };
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export interface HistoryStats {
  entries: number;
  applied: number;
  ignored: number;
  firstApplied: number;
  lastApplied: number;
  lags: number[];
  terminal: number;
}

/** Reads the histories of the targets (acceptedAt/appliedAt of every callback applied or ignored). */
export async function histories(redis: Redis, keys: Keys, targets: Target[]): Promise<HistoryStats> {
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
    for (const t of targets.slice(i, i + 500)) {
      const p = keys.partition(t.id);
      pipe.lrange(keys.history(p, t.id), 0, -1).hmget(keys.request(p, t.id), "state", HISTORY_HEAD_FIELD);
    }
    const res = (await pipe.exec()) ?? [];
    for (let j = 0; j < res.length; j += 2) {
      const list = (res[j]?.[1] as string[]) ?? [];
      const [state, head] = (res[j + 1]?.[1] as (string | null)[] | undefined) ?? [];
      if (state && state !== "RUNNING" && state !== "CANCELLING") out.terminal++;
      for (const entry of decodeHistory(list, head)) {
        const e = entry as { outcome?: string; acceptedAt?: number; appliedAt?: number };
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

export function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Average MEMORY USAGE of a request's keys (hash, history, buffer, skip set). */
export async function memoryPerRequest(
  redis: Redis,
  keys: Keys,
  targets: Target[],
): Promise<{ bytes: number; sample: number }> {
  let total = 0;
  for (const t of targets) {
    const p = keys.partition(t.id);
    for (const k of [keys.request(p, t.id), keys.history(p, t.id), keys.buffer(p, t.id), keys.skipped(p, t.id)]) {
      total += Number((await redis.call("MEMORY", "USAGE", k, "SAMPLES", "0")) ?? 0);
    }
  }
  return { bytes: Math.round(total / Math.max(1, targets.length)), sample: targets.length };
}

export function latency(result: Result) {
  return { p50: result.latency.p50, p99: result.latency.p99, p99_9: result.latency.p99_9, max: result.latency.max };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Per-round numbers of one contender, summarised: median, min, max. */
export function spread(xs: number[]) {
  return { median: round(median(xs), 3), min: round(Math.min(...xs), 3), max: round(Math.max(...xs), 3), all: xs };
}

/**
 * What a process's own runtime did over a phase, from its Prometheus metrics (prom-client's default
 * metrics): the event-loop delay since the previous scrape (prom-client resets its histogram at every
 * scrape, so a scrape right before the phase starts the window) and the garbage collector's pauses
 * (cumulative counters: the phase's are the difference of two scrapes).
 */
export interface RuntimeScrape {
  /** event-loop delay since the previous scrape, ms: how late prom-client's 10 ms timer ran (its 10 ms taken off) */
  loopDelayMaxMs: number;
  loopDelayP99Ms: number;
  /** per GC kind (minor = scavenge, major = mark-compact, incremental, weakcb): pauses, total ms, pauses over 10 ms */
  gc: Record<string, { count: number; ms: number; over10ms: number }>;
}

/** The timer interval of monitorEventLoopDelay (prom-client's default precision); its histogram records whole intervals. */
export const LOOP_TIMER_MS = 10;

/** Scrapes a process's /metrics (the gateway's admin listener, the worker's metrics port); undefined if it does not answer. */
export async function scrapeRuntime(metricsUrl: string): Promise<RuntimeScrape | undefined> {
  let text: string;
  try {
    const res = await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return undefined;
    text = await res.text();
  } catch {
    return undefined;
  }
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? Number.NaN);
  const gc: RuntimeScrape["gc"] = {};
  for (const m of text.matchAll(/^\w+_nodejs_gc_duration_seconds_(sum|count)\{kind="(\w+)"\} ([0-9.e+-]+)$/gm)) {
    gc[m[2]!] ??= { count: 0, ms: 0, over10ms: 0 };
    const k = gc[m[2]!]!;
    if (m[1] === "sum") k.ms = Number(m[3]) * 1000;
    else k.count = Number(m[3]);
  }
  for (const m of text.matchAll(/^\w+_nodejs_gc_duration_seconds_bucket\{le="0\.01",kind="(\w+)"\} ([0-9.e+-]+)$/gm)) {
    const k = gc[m[1]!];
    // pauses over 10 ms: all of them minus those in the le="0.01" bucket
    if (k) k.over10ms = k.count - Number(m[2]);
  }
  return {
    loopDelayMaxMs: Math.max(0, value(/^\w+_nodejs_eventloop_lag_max_seconds ([0-9.e+-]+)$/m) * 1000 - LOOP_TIMER_MS),
    loopDelayP99Ms: Math.max(0, value(/^\w+_nodejs_eventloop_lag_p99_seconds ([0-9.e+-]+)$/m) * 1000 - LOOP_TIMER_MS),
    gc,
  };
}

/** The runtime figures of a phase: the delay of the second scrape, the GC pauses between the two. */
export function runtimeDelta(a: RuntimeScrape | undefined, b: RuntimeScrape | undefined) {
  if (!a || !b) return null;
  const gc: RuntimeScrape["gc"] = {};
  for (const [kind, v] of Object.entries(b.gc)) {
    const w = a.gc[kind] ?? { count: 0, ms: 0, over10ms: 0 };
    if (v.count - w.count > 0)
      gc[kind] = { count: v.count - w.count, ms: round(v.ms - w.ms, 1), over10ms: v.over10ms - w.over10ms };
  }
  return { loopDelayMaxMs: round(b.loopDelayMaxMs, 1), loopDelayP99Ms: round(b.loopDelayP99Ms, 1), gc };
}

/**
 * Redis's own stalls over a phase: its latency monitor (events of at least `thresholdMs`, by kind,
 * with the worst) and its slow log (commands and scripts that ran at least `slowMicros`).
 */
export async function redisStallsReset(redis: Redis, thresholdMs = 5, slowMicros = 2000): Promise<void> {
  await redis.config("SET", "latency-monitor-threshold", String(thresholdMs));
  await redis.config("SET", "slowlog-log-slower-than", String(slowMicros));
  await redis.config("SET", "slowlog-max-len", "1024");
  await redis.call("LATENCY", "RESET");
  await redis.call("SLOWLOG", "RESET");
}

export async function redisStalls(redis: Redis) {
  const latest = (await redis.call("LATENCY", "LATEST")) as [string, number, number, number][];
  const slow = (await redis.call("SLOWLOG", "GET", "1024")) as [number, number, number, string[]][];
  const byCommand: Record<string, { count: number; maxMicros: number }> = {};
  for (const [, , micros, argv] of slow) {
    // a script by its first key without prefix, partition and ids (BullMQ's moveToActive: `callbacks:wait`,
    // the admit and apply scripts: `req:*`), a command by name
    const cmd = (argv[0] ?? "?").toLowerCase();
    const key = (argv[3] ?? "").replace(/^.*\}:/, "").replace(/[0-9]+/g, "*");
    const name = cmd === "evalsha" || cmd === "eval" ? `script ${key}` : cmd;
    byCommand[name] ??= { count: 0, maxMicros: 0 };
    const e = byCommand[name]!;
    e.count++;
    e.maxMicros = Math.max(e.maxMicros, micros);
  }
  return {
    /** latency monitor: event → worst ms in the phase */
    latencyMaxMs: Object.fromEntries(latest.map(([event, , , max]) => [event, max])),
    slowlog: { count: slow.length, maxMicros: Math.max(0, ...slow.map((s) => s[2])), byCommand },
  };
}

/** Drain phase: start workers on the backlog, measure applied transitions/s from the histories. */

/** Registers `count` fresh requests (ids from `firstId` on) with a job definition, 500 at a time; returns their ids. */
export async function registerFresh(
  store: Pick<RequestStore, "register">,
  firstId: number,
  count: number,
): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => String(firstId + i));
  for (let i = 0; i < ids.length; i += 500) {
    await Promise.all(
      ids
        .slice(i, i + 500)
        .map((id) => store.register(id, "h", { metadata: { jobDefinitionId: "JobDefinition://bench" } })),
    );
  }
  return ids;
}

/**
 * The load generator's own event-loop delay and GC pauses while it drives a phase: its stalls delay
 * calls past their scheduled start, which counts as accept latency.
 */
export function loadGeneratorStalls() {
  const loop = monitorEventLoopDelay({ resolution: LOOP_TIMER_MS });
  loop.enable();
  const gc: Record<string, { count: number; ms: number; over10ms: number }> = {};
  const kinds: Record<number, string> = { 1: "major", 2: "minor", 4: "incremental", 8: "weakcb" };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = kinds[(e as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? "other";
      gc[kind] ??= { count: 0, ms: 0, over10ms: 0 };
      const k = gc[kind]!;
      k.count++;
      k.ms = round(k.ms + e.duration, 1);
      if (e.duration > 10) k.over10ms++;
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  return {
    stop() {
      loop.disable();
      observer.disconnect();
      return {
        heapUsedMiB: round(process.memoryUsage().heapUsed / 1048576, 1),
        loopDelayMaxMs: round(Math.max(0, loop.max / 1e6 - LOOP_TIMER_MS), 1),
        loopDelayP99Ms: round(Math.max(0, loop.percentile(99) / 1e6 - LOOP_TIMER_MS), 1),
        gc,
      };
    },
  };
}
