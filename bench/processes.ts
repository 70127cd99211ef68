// The processes a bench run starts (redis-server, the bare-Hono ceiling, gateways, workers, a trace
// sink) and their cleanup on Ctrl-C.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { RedisServer } from "@ess/testing";
import { discardOutput, ROOT, type RunningProcess, startApp } from "@ess/testing";
import { KEY_PREFIX, opts, PARTITIONS, sleep } from "./options.js";

/** Every child the bench started, killed on Ctrl-C so nothing outlives an interrupted run. */
export const children = new Set<ChildProcess>();
export const servers = new Set<RedisServer>();
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    void Promise.all([...servers].map((s) => s.kill())).finally(() => process.exit(130));
  });
}

export function redisEnv(url: string, extra: Record<string, string> = {}): Record<string, string> {
  return { REDIS_URL: url, KEY_PREFIX, PARTITIONS: String(PARTITIONS), LOG_LEVEL: "warn", ...extra };
}

/** The gateway without admit batching (every callback its own script call and job, so no batch apply either). */
export const UNBATCHED = { ADMIT_BATCH_MAX: "1" };

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
  { name: "ADMIT_BATCH_MAX=1 (no batching: one script call and one job per callback)", env: UNBATCHED },
];
/** --variants picks some of them by index (default all); --baseline adds another checkout's gateway. */
export const VARIANTS: { name: string; env: Record<string, string>; root?: string }[] = [
  ...(opts.variants ? opts.variants.map((i) => ALL_VARIANTS[i]).filter((v) => v !== undefined) : ALL_VARIANTS),
  ...opts.envVariants.map((env) => ({
    name: Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join(" "),
    env,
  })),
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

export async function variantEnv(env: Record<string, string>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) out[k] = v === TRACE_SINK ? await traceSink() : v;
  return out;
}

export async function startGateway(
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
  return tracked(await startApp("gateway", env, nodeArgs, root, opts.compiled));
}

let workerCount = 0;
export async function startWorker(
  url: string,
  extraEnv: Record<string, string> = {},
  root?: string,
): Promise<RunningProcess> {
  const nodeArgs = opts.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${opts.out}/profiles/worker-${++workerCount}`] : [];
  const env = redisEnv(url, { LOG_LEVEL: "info", ...extraEnv });
  return tracked(await startApp("worker", env, nodeArgs, root, opts.compiled));
}

/** Builds this checkout and every --baseline one (the compiled apps the bench runs by default). */
export function buildAll(): void {
  if (!opts.compiled) return;
  for (const root of [ROOT, ...(opts.baseline ?? [])]) {
    const r = spawnSync("npm", ["run", "build", "--silent"], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
    if (r.status !== 0) throw new Error(`npm run build failed in ${root}`);
  }
}

/**
 * Tracks a started app and, once it is up, reads its output without keeping it (discardOutput):
 * startApp keeps all of a child's output for tests to search, and a whole run's log lines would
 * otherwise pile up in the load generator's heap and lengthen its garbage collections, which delay
 * the paced calls.
 */
export function tracked(p: RunningProcess): RunningProcess {
  children.add(p.child);
  discardOutput(p);
  return p;
}

export async function startBare(): Promise<{ child: ChildProcess; url: string }> {
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

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}
