// The worker's drain alone, A/B: batch jobs written straight into the queues (admitAndEnqueueBatch, as
// the gateway writes them), then drained by the compiled worker of each checkout in turn, interleaved
// rounds. Every checkout drains jobs of the same size (--per-job), which the full bench's drain cannot
// promise (its jobs are what each gateway's max-rate rounds batched). Prints worker CPU µs, Redis CPU µs
// and applied/s per callback for every round; the CPU is counted from the worker's "worker started" line
// until the backlog is empty. Each checkout must be built (npm run build).
// Usage: NODE_OPTIONS=--conditions=ess-source tsx bench/drain-probe.ts --roots /a,/b [--requests 4000]
//   [--per-job 20] [--rounds 3] [--cpu-prof DIR] [--slowlog] [--rate N]
// --rate N: the jobs are written while the worker runs, N callbacks a second (paced, as a gateway at
// that rate with --per-job callbacks a batch), not before it starts; the worker then waits for work
// between jobs as at the bench's sustained rates. Redis's CPU then includes the writes' admit script.
// --warm N: the worker's first N applied callbacks are not counted (CPU, Redis and rate are measured
// from the moment its metrics count N): a fresh worker spends about a second of CPU warming up (the JIT
// compiling the hot code, the heap growing), which the figures otherwise spread over the callbacks.
// --slowlog: Redis's time per command of the drain, each script by name (SLOWLOG with every command
// logged: its durations exclude the logging itself, and the absolute CPU figures then include its cost)
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { CallbackQueues, Keys, RequestStore, SCRIPTS, type ScriptName, scriptSource } from "@ess/store";
import { findRedisServer, nodeFlags, RedisServer } from "@ess/testing";
import { Redis } from "ioredis";
import { backlog, cpuSeconds, redisSample } from "./measure.js";

const { values } = parseArgs({
  options: {
    roots: { type: "string" },
    requests: { type: "string", default: "4000" },
    "per-job": { type: "string", default: "20" },
    rounds: { type: "string", default: "3" },
    "cpu-prof": { type: "string" },
    slowlog: { type: "boolean", default: false },
    rate: { type: "string" },
    warm: { type: "string", default: "0" },
  },
});
const roots = (values.roots ?? process.cwd()).split(",");
const requests = Number(values.requests);
const perJob = Number(values["per-job"]);
const rounds = Number(values.rounds);
const rate = values.rate === undefined ? undefined : Number(values.rate);
const warm = Number(values.warm);
const PARTITIONS = 16;
const UPDATES = 4;

const server = new RedisServer(findRedisServer() ?? "redis-server");
await server.start();
const redis = new Redis(server.url, { maxRetriesPerRequest: 2 });

async function fill(prefix: string, base: number) {
  const keys = new Keys(prefix, PARTITIONS);
  const store = new RequestStore(redis, keys);
  const queues = new CallbackQueues(redis, keys, { attempts: 3, backoffMs: 1000 });
  const ids = Array.from({ length: requests }, (_, i) => String(base + i + 1));
  for (let i = 0; i < ids.length; i += 200)
    await Promise.all(ids.slice(i, i + 200).map((id) => store.register(id, `h-${id}`, {})));
  const cbs: {
    cb: { requestId: string; handle: string; status: "UPDATE" | "SUCCESS"; message?: string; acceptedAt: number };
  }[] = [];
  for (let round = 0; round <= UPDATES; round++)
    for (const id of ids) {
      const final = round === UPDATES;
      cbs.push({
        cb: {
          requestId: id,
          handle: `h-${id}`,
          status: final ? "SUCCESS" : "UPDATE",
          ...(final ? {} : { message: `step ${round + 1} of ${UPDATES}` }),
          acceptedAt: Date.now(),
        },
      });
    }
  const enqueue = async (from: number, to: number) => {
    const sends: Promise<unknown>[] = [];
    for (let i = from; i < to; i += perJob) {
      sends.push(store.admitAndEnqueueBatch(queues, cbs.slice(i, Math.min(i + perJob, to))));
      if (sends.length >= 16) await Promise.all(sends.splice(0));
    }
    await Promise.all(sends);
  };
  if (rate === undefined) {
    await enqueue(0, cbs.length);
    await queues.close();
    return { keys, callbacks: cbs.length };
  }
  /** Writes the jobs at `rate` callbacks a second, in jobs of perJob (a tick's remainder waits for the next). */
  const paced = async () => {
    const t0 = Date.now();
    let sent = 0;
    while (sent < cbs.length) {
      const due = Math.min(cbs.length, Math.floor(((Date.now() - t0) / 1000) * rate));
      const to = due === cbs.length ? due : sent + Math.floor((due - sent) / perJob) * perJob;
      if (to > sent) await enqueue(sent, to);
      sent = Math.max(sent, to);
      await new Promise((r) => setTimeout(r, 10));
    }
    await queues.close();
  };
  return { keys, callbacks: cbs.length, paced };
}

/** stime of a process in seconds (Linux /proc): its time in system calls. */
function sysSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[12]) / 100;
}

/** SHA-1 → name of every script the worker runs: the project's and BullMQ's. */
function scriptNames(): Map<string, string> {
  const names = new Map<string, string>();
  const sha = (lua: string) => createHash("sha1").update(lua).digest("hex");
  for (const name of Object.keys(SCRIPTS)) names.set(sha(scriptSource(name as ScriptName)), name);
  const req = createRequire(join(process.cwd(), "apps/worker/package.json"));
  const dir = join(dirname(req.resolve("bullmq")), "scripts");
  for (const f of readdirSync(dir).filter((f) => /^[a-zA-Z]+-\d+\.js$/.test(f))) {
    const mod = req(join(dir, f)) as Record<string, { content?: string }>;
    for (const v of Object.values(mod)) if (v?.content) names.set(sha(v.content), `bullmq ${f.replace(/\.js$/, "")}`);
  }
  return names;
}

/** Redis's µs per callback by command (scripts by name) from the slow log, largest first. */
async function slowlogBreakdown(callbacks: number): Promise<string> {
  const names = scriptNames();
  const entries = (await redis.call("SLOWLOG", "GET", "-1")) as [number, number, number, string[]][];
  const by = new Map<string, { us: number; calls: number }>();
  for (const [, , us, args] of entries) {
    const cmd = String(args[0]).toLowerCase();
    const key = cmd === "evalsha" ? (names.get(String(args[1])) ?? `evalsha ${String(args[1]).slice(0, 8)}`) : cmd;
    const row = by.get(key) ?? { us: 0, calls: 0 };
    row.us += us;
    row.calls += 1;
    by.set(key, row);
  }
  const total = [...by.values()].reduce((a, r) => a + r.us, 0);
  const rows = [...by.entries()].sort((a, b) => b[1].us - a[1].us);
  return [
    `  slowlog: ${(total / callbacks).toFixed(1)} µs per callback in commands (${entries.length} entries)`,
    ...rows.map(
      ([k, r]) =>
        `    ${k.padEnd(32)} ${(r.us / callbacks).toFixed(2).padStart(7)} µs/cb  ${(r.calls / callbacks).toFixed(3)} calls/cb  ${(r.us / r.calls).toFixed(1)} µs/call`,
    ),
  ].join("\n");
}

async function drain(
  root: string,
  prefix: string,
  keys: Keys,
  callbacks: number,
  prof?: string,
  paced?: () => Promise<void>,
) {
  const env: Record<string, string | undefined> = {
    ...process.env,
    REDIS_URL: server.url,
    KEY_PREFIX: prefix,
    PARTITIONS: String(PARTITIONS),
    LOG_LEVEL: "info",
    WORKER_METRICS_PORT: "0",
    HOST: "127.0.0.1",
  };
  delete env.NODE_OPTIONS;
  const args = [...nodeFlags("worker", root), ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [])];
  if (values.slowlog) {
    await redis.call("CONFIG", "SET", "slowlog-log-slower-than", "0");
    await redis.call("CONFIG", "SET", "slowlog-max-len", "1000000");
    await redis.call("SLOWLOG", "RESET");
  }
  let before = await redisSample(redis);
  const child = spawn(process.execPath, [...args, "apps/worker/dist/main.js"], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let started = false;
  let buf = "";
  child.stdout.on("data", (d: Buffer) => {
    if (started) return;
    buf += d.toString();
    if (buf.includes('"worker started"')) started = true;
  });
  child.stderr.on("data", () => {});
  while (!started) await new Promise((r) => setTimeout(r, 10));
  const port = Number(/"port":(\d+)[^\n]*"metrics listening"/.exec(buf)?.[1]);
  /** Callbacks the worker has applied so far (each callback's apply counts one result). */
  const appliedSoFar = async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    let n = 0;
    for (const m of text.matchAll(/^ess_worker_callbacks_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
    return n;
  };
  let cpu0 = cpuSeconds(child.pid);
  let sys0 = sysSeconds(child.pid);
  let t0 = Date.now();
  let skipped = 0;
  const pacing = paced?.();
  if (warm > 0) {
    while ((await appliedSoFar()) < warm) await new Promise((r) => setTimeout(r, 20));
    cpu0 = cpuSeconds(child.pid);
    sys0 = sysSeconds(child.pid);
    before = await redisSample(redis);
    t0 = Date.now();
    skipped = await appliedSoFar();
  }
  await pacing;
  while ((await backlog(redis, keys)) > 0) await new Promise((r) => setTimeout(r, 50));
  callbacks -= skipped;
  const seconds = (Date.now() - t0) / 1000;
  const cpu = cpuSeconds(child.pid) - cpu0;
  const sys = sysSeconds(child.pid) - sys0;
  const after = await redisSample(redis);
  const slowlog = values.slowlog ? await slowlogBreakdown(callbacks) : undefined;
  if (values.slowlog) await redis.call("CONFIG", "SET", "slowlog-log-slower-than", "10000");
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
  return {
    workerUs: (cpu * 1e6) / callbacks,
    workerSysUs: (sys * 1e6) / callbacks,
    redisUs: ((after.cpu - before.cpu) * 1e6) / callbacks,
    perSecond: callbacks / seconds,
    counted: callbacks,
    slowlog,
  };
}

const rows: string[] = [];
let base = 100_000_000;
for (let r = 0; r < rounds; r++) {
  for (const [i, root] of roots.entries()) {
    const prefix = `p${r}x${i}`;
    const { keys, callbacks, paced } = await fill(prefix, base);
    base += requests;
    const res = await drain(root, prefix, keys, callbacks, values["cpu-prof"] && `${values["cpu-prof"]}/${i}`, paced);
    const line = `round ${r + 1} ${root}: worker ${res.workerUs.toFixed(1)} µs (${res.workerSysUs.toFixed(1)} in the kernel), redis ${res.redisUs.toFixed(1)} µs per callback, ${res.perSecond.toFixed(0)}/s (${res.counted} of ${callbacks} callbacks counted)`;
    console.log(line);
    if (res.slowlog) console.log(res.slowlog);
    rows.push(line);
  }
}
await redis.quit();
await server.kill();
