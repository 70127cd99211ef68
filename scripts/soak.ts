// `npm run soak`: a long run at a steady rate, with every kind of bad traffic mixed in, that shows the
// memory of the gateway, the worker and Redis stays flat. Not part of CI or `npm test`.
// Starts its own redis-server, gateway and worker (the bench's process starters and load driver),
// samples every --sample-seconds, draws an SVG chart and exits non-zero when a series still grows
// after the warm-up (the first half of the run).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { Keys } from "@ess/store";
import { findRedisServer, RedisServer, type RunningProcess, startApp } from "@ess/testing";
import { Redis } from "ioredis";
import {
  buildMix,
  type Call,
  callbackPath,
  drive,
  drivePaced,
  makeTargets,
  registrationCalls,
  statusCounts,
  type Target,
} from "../bench/load.js";
import { backlog, regression, rssMiB, waitDrained } from "../bench/measure.js";

const HELP = `npm run soak -- [options]

  --minutes M          length of the soak (default 10); the first half is warm-up, the second is checked
  --rate R             calls per second (all calls, bad ones included); default: --fraction of the
                       sustained rate measured first
  --fraction F         share of the measured sustained rate to run at (default 0.5)
  --sample-seconds S   sampling interval (default 10)
  --max-growth P       largest growth allowed over the checked half, in % of the series' mean, taken
                       from the least-squares line (default 5)
  --svg FILE           where the chart goes (default bench-results/soak-<time>.svg)
  --out DIR            where the JSON goes (default bench-results/)
  --help               this text`;

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    rate: { type: "string" },
    fraction: { type: "string", default: "0.5" },
    "sample-seconds": { type: "string", default: "10" },
    "max-growth": { type: "string", default: "5" },
    svg: { type: "string" },
    out: { type: "string", default: "bench-results" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(HELP);
  process.exit(0);
}
const opts = {
  minutes: Number(args.minutes),
  rate: args.rate === undefined ? undefined : Number(args.rate),
  fraction: Number(args.fraction),
  sampleSeconds: Number(args["sample-seconds"]),
  maxGrowth: Number(args["max-growth"]),
};
for (const [k, v] of Object.entries(opts)) {
  if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new Error(`bad --${k}: ${v}`);
}
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const svgPath = args.svg ?? `${args.out}/soak-${stamp}.svg`;
const jsonPath = `${args.out}/soak-${stamp}.json`;

const PARTITIONS = 16;
const KEY_PREFIX = "soak";
const keys = new Keys(KEY_PREFIX, PARTITIONS);
const TOKEN = "soak-token-0123456789abcdef";
const AUTH = { authorization: `Bearer ${TOKEN}` };
/** Calls per segment = rate × this; a segment registers the next batch and calls back the current one. */
const SEGMENT_SECONDS = 10;
const UPDATES = 4;
const CONNECTIONS = 100;
const MAX_BODY_BYTES = 16384;
/** Longer than the retention windows below (60 s), with a margin for Redis's active expiry. */
const COOL_DOWN_SECONDS = 100;
/** Keys a partition keeps without traffic: queue keys (meta, id, events, marker, ...) and the event stream. */
const KEYS_PER_PARTITION = 12;

const started = Date.now();
const log = (msg: string) => console.error(`[soak +${((Date.now() - started) / 1000).toFixed(0)}s] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- processes

const processes: RunningProcess[] = [];
let server: RedisServer | undefined;
async function stopAll(): Promise<void> {
  await Promise.all(processes.map((p) => p.stop()));
  await server?.stop();
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    for (const p of processes) void p.kill();
    void (server?.kill() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

/**
 * Short retention windows, so that the steady state (terminal requests expiring as fast as new ones
 * finish, idempotency records as fast as new ones are written, event streams at their cap) is
 * reached within the warm-up: what the soak checks is that nothing grows past those bounds.
 */
function appEnv(url: string): Record<string, string> {
  return {
    REDIS_URL: url,
    KEY_PREFIX,
    PARTITIONS: String(PARTITIONS),
    // startApp waits for the info line "gateway listening" / "worker started"
    LOG_LEVEL: "info",
    // the soak keeps the children's output in memory: no line per request
    ACCESS_LOG: "false",
    ALLOW_ANONYMOUS: "false",
    AUTH_TOKENS: `soak:job+scheduler+admin:${TOKEN}`,
    RETENTION_SECONDS: "60",
    IDEMPOTENCY_TTL_SECONDS: "60",
    EVENTS_MAXLEN: "1000",
    MAX_BODY_BYTES: String(MAX_BODY_BYTES),
  };
}

// ---------------------------------------------------------------- traffic

let idBase = 1_000_000;
function freshTargets(n: number): Target[] {
  const t = makeTargets(idBase, n);
  idBase += n + 1000;
  return t;
}

let badCount = 0;
/** One call of each kind of bad traffic in turn, aimed at a target of the current batch. */
function badCall(t: Target): Call {
  const cb = callbackPath(t.id);
  const good = JSON.stringify({ requestHandle: t.handle, status: "UPDATE", statusMessage: "soak" });
  switch (badCount++ % 10) {
    case 0:
      return { path: cb, body: `{"requestHandle": "${t.handle}", "status": `, expect: 400 };
    case 1:
      return { path: cb, body: good, expect: 415, headers: { "content-type": "text/plain" } };
    case 2:
      return {
        path: cb,
        body: JSON.stringify({ requestHandle: t.handle, pad: "x".repeat(MAX_BODY_BYTES) }),
        expect: 413,
      };
    case 3:
      return { path: callbackPath(String(9_000_000_000_000_000_000n + BigInt(badCount))), body: good, expect: 404 };
    case 4:
      return { path: cb, body: JSON.stringify({ requestHandle: "a-stale-handle", status: "UPDATE" }), expect: 403 };
    case 5:
      return { path: cb, body: good, expect: 401, headers: { authorization: "Bearer not-a-token" } };
    case 6:
      return { path: cb, body: good, expect: 401, headers: { authorization: "Basic bm9ib2R5Ondyb25n" } };
    case 7:
      return { path: `/ess/rest/scheduler/v1/nothing/${badCount}`, body: "", expect: 404, method: "GET" };
    case 8:
      return { path: `/no/such/path/${badCount}`, body: good, expect: 404 };
    default:
      return { path: cb, body: JSON.stringify({ requestHandle: t.handle, status: "DONE-ISH" }), expect: 400 };
  }
}

/**
 * A segment's calls: the registrations of the next batch, the callbacks of this batch (bench/load.ts's
 * mix: UPDATEs then a final status), one bad call in ten, and an idempotent retry (same
 * Idempotency-Key, same body) of one UPDATE in ten, sent twice.
 */
function segmentCalls(current: Target[], next: Target[]): Call[] {
  const mix = buildMix(current, UPDATES, 0);
  const regs = registrationCalls(next);
  const calls: Call[] = [];
  const retries: Call[] = [];
  let r = 0;
  mix.forEach((call, i) => {
    if (i % 10 === 5) {
      const c: Call = { ...call, headers: { "idempotency-key": `soak-${current[i % current.length]!.id}-${i}` } };
      calls.push(c);
      if (call.body.includes('"UPDATE"')) retries.push(c);
    } else calls.push(call);
    // registrations spread over the segment, well ahead of the next segment's callbacks
    if (r < regs.length && i % Math.max(1, Math.floor(mix.length / regs.length)) === 0) calls.push(regs[r++]!);
    if (i % 9 === 8) calls.push(badCall(current[i % current.length]!));
  });
  while (r < regs.length) calls.push(regs[r++]!);
  // retries come at the end: the first call was answered long before (a repeat is answered 200)
  calls.push(...retries);
  return calls;
}

/** Targets per segment so that a segment is `rate × SEGMENT_SECONDS` calls. */
function batchSize(rate: number): number {
  // per target: 1 registration + UPDATES + 1 final, + about 1/9 bad and 1/10 retried calls each
  const perTarget = (UPDATES + 2) * (1 + 1 / 9 + 1 / 10);
  return Math.max(10, Math.round((rate * SEGMENT_SECONDS) / perTarget));
}

// ---------------------------------------------------------------- sustained rate

/**
 * The sustained rate: calls accepted and applied per second with the gateway and the worker running
 * together, from the first send to an empty backlog (bench/load.ts's mix, autocannon at full speed).
 */
async function measureSustained(url: string, redis: Redis): Promise<number> {
  const targets = freshTargets(1500);
  const reg = await drive(url, registrationCalls(targets), { connections: 20, headers: AUTH });
  if (statusCounts(reg)["201"] !== targets.length)
    throw new Error(`registration: ${JSON.stringify(statusCounts(reg))}`);
  const calls = buildMix(targets, UPDATES, 0);
  const t0 = performance.now();
  const res = await drive(url, calls, { connections: CONNECTIONS, headers: AUTH });
  await waitDrained(redis, keys, 120000);
  const seconds = (performance.now() - t0) / 1000;
  const accepted = statusCounts(res)["200"] ?? 0;
  log(`sustained: ${accepted} callbacks accepted and applied in ${seconds.toFixed(2)} s`);
  return accepted / seconds;
}

// ---------------------------------------------------------------- samples and the check

interface Sample {
  t: number;
  gatewayRssMiB: number;
  workerRssMiB: number;
  redisUsedMiB: number;
  redisKeys: number;
  backlog: number;
}

const SERIES = [
  { key: "gatewayRssMiB", title: "gateway RSS", unit: "MiB" },
  { key: "workerRssMiB", title: "worker RSS", unit: "MiB" },
  { key: "redisUsedMiB", title: "Redis used_memory", unit: "MiB" },
  { key: "redisKeys", title: "Redis keys (DBSIZE)", unit: "keys" },
] as const;
type SeriesKey = (typeof SERIES)[number]["key"];

async function sample(redis: Redis, gateway: RunningProcess, worker: RunningProcess): Promise<Sample> {
  const info = await redis.info("memory");
  const used = Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? 0);
  return {
    t: (Date.now() - soakStart) / 1000,
    gatewayRssMiB: rssMiB(gateway.child.pid),
    workerRssMiB: rssMiB(worker.child.pid),
    redisUsedMiB: Math.round((used / 1048576) * 100) / 100,
    redisKeys: await redis.dbsize(),
    backlog: await backlog(redis, keys),
  };
}

interface Verdict {
  key: SeriesKey;
  mean: number;
  min: number;
  max: number;
  slopePerMinute: number;
  /** growth over the checked half from the line, in % of the mean */
  growthPercent: number;
  flat: boolean;
  line: { a: number; b: number };
}

function check(samples: Sample[], from: number): Verdict[] {
  const tail = samples.filter((s) => s.t >= from);
  return SERIES.map(({ key }) => {
    const xs = tail.map((s) => s.t);
    const ys = tail.map((s) => s[key]);
    const line = regression(xs, ys);
    const mean = ys.reduce((s, y) => s + y, 0) / Math.max(1, ys.length);
    const span = (xs[xs.length - 1] ?? 0) - (xs[0] ?? 0);
    const growthPercent = mean === 0 ? 0 : ((line.b * span) / mean) * 100;
    return {
      key,
      mean: round(mean),
      min: round(Math.min(...ys)),
      max: round(Math.max(...ys)),
      slopePerMinute: round(line.b * 60, 3),
      growthPercent: round(growthPercent, 2),
      flat: tail.length >= 3 && growthPercent <= opts.maxGrowth,
      line,
    };
  });
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------- chart

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/** Four panels (one per series, own y axis) over minutes; warm-up shaded, the checked half's line dashed. */
function chart(samples: Sample[], verdicts: Verdict[], from: number, subtitle: string): string {
  const W = 900;
  const PH = 170;
  const top = 58;
  const left = 70;
  const right = 20;
  const gap = 42;
  const H = top + SERIES.length * (PH + gap) + 10;
  const tMax = Math.max(1, ...samples.map((s) => s.t));
  const x = (t: number) => left + ((W - left - right) * t) / tMax;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>Soak: gateway and worker RSS, Redis used_memory and key count over time</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="22" font-size="16" font-weight="bold">Soak: memory over time</text>`,
    `<text x="${left}" y="42" fill="#444">${esc(subtitle)}</text>`,
  ];
  SERIES.forEach((s, i) => {
    const y0 = top + i * (PH + gap) + 16;
    const ys = samples.map((p) => p[s.key]);
    const v = verdicts[i]!;
    let lo = Math.min(...ys, 0);
    let hi = Math.max(...ys);
    if (hi === lo) hi = lo + 1;
    hi *= 1.1;
    lo = 0;
    const y = (val: number) => y0 + PH - (PH * (val - lo)) / (hi - lo);
    out.push(
      `<text x="${left}" y="${y0 - 6}" font-weight="bold">${esc(s.title)} (${s.unit})</text>`,
      `<text x="${W - right}" y="${y0 - 6}" text-anchor="end" fill="${v.flat ? "#1a7f37" : "#cf222e"}">` +
        `${v.flat ? "flat" : "GROWING"}: ${v.slopePerMinute} ${s.unit}/min over the checked half, ` +
        `${v.growthPercent} % of the mean ${v.mean}</text>`,
      `<rect x="${left}" y="${y0}" width="${x(from) - left}" height="${PH}" fill="#f0f0f0"/>`,
      `<rect x="${left}" y="${y0}" width="${W - left - right}" height="${PH}" fill="none" stroke="#999"/>`,
    );
    for (let k = 0; k <= 4; k++) {
      const val = lo + ((hi - lo) * k) / 4;
      const label = val >= 100 ? Math.round(val).toString() : val.toFixed(1);
      out.push(
        `<line x1="${left}" x2="${W - right}" y1="${y(val)}" y2="${y(val)}" stroke="#e4e4e4"/>`,
        `<text x="${left - 6}" y="${y(val) + 4}" text-anchor="end" fill="#555">${label}</text>`,
      );
    }
    for (let m = 0; m <= tMax / 60; m++) {
      out.push(`<text x="${x(m * 60)}" y="${y0 + PH + 14}" text-anchor="middle" fill="#555">${m}</text>`);
    }
    const points = samples.map((p) => `${x(p.t).toFixed(1)},${y(p[s.key]).toFixed(1)}`).join(" ");
    out.push(`<polyline points="${points}" fill="none" stroke="#0969da" stroke-width="1.8"/>`);
    const lineY = (t: number) => y(v.line.a + v.line.b * t);
    out.push(
      `<line x1="${x(from)}" x2="${x(tMax)}" y1="${lineY(from)}" y2="${lineY(tMax)}" stroke="#cf222e" stroke-dasharray="5,4" stroke-width="1.5"/>`,
    );
  });
  out.push(
    `<text x="${W / 2}" y="${H - 4}" text-anchor="middle" fill="#555">minutes (grey: warm-up; dashed: least-squares line of the checked half)</text>`,
    "</svg>",
  );
  return `${out.join("\n")}\n`;
}

// ---------------------------------------------------------------- main

let soakStart = Date.now();

async function main(): Promise<number> {
  const bin = findRedisServer();
  if (!bin) throw new Error("redis-server is not on PATH (Debian: apt-get install redis-server)");
  server = await new RedisServer(bin).start();
  const redis = new Redis(server.url);
  const env = appEnv(server.url);
  const gateway = await startApp("gateway", env);
  const worker = await startApp("worker", env);
  processes.push(gateway, worker);
  log(`redis ${server.url}, gateway ${gateway.url} (pid ${gateway.child.pid}), worker pid ${worker.child.pid}`);

  let sustained: number | undefined;
  if (opts.rate === undefined) sustained = await measureSustained(gateway.url, redis);
  const rate = Math.max(10, Math.round(opts.rate ?? (sustained as number) * opts.fraction));
  const n = batchSize(rate);
  log(`soak: ${opts.minutes} min at ${rate} calls/s (${n} requests per ${SEGMENT_SECONDS} s segment)`);

  const samples: Sample[] = [];
  const counts: Record<string, number> = {};
  const expected: Record<string, number> = {};
  let errors = 0;
  let sent = 0;
  let latencies: number[] = [];
  const latencyP99: number[] = [];
  soakStart = Date.now();
  const end = soakStart + opts.minutes * 60000;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const s = await sample(redis, gateway, worker);
      samples.push(s);
      log(
        `sample: gateway ${s.gatewayRssMiB} MiB, worker ${s.workerRssMiB} MiB, redis ${s.redisUsedMiB} MiB, ` +
          `${s.redisKeys} keys, backlog ${s.backlog}`,
      );
      const due = soakStart + samples.length * opts.sampleSeconds * 1000;
      while (sampling && Date.now() < due) await sleep(Math.min(200, Math.max(0, due - Date.now())));
    }
  })();

  let current = freshTargets(n);
  const first = await drive(gateway.url, registrationCalls(current), { connections: 20, headers: AUTH });
  if (statusCounts(first)["201"] !== current.length) throw new Error("first registrations failed");
  // segments one after the other: a segment's registrations are all answered before the next segment
  // calls those requests back. Overlapping segments kept the rate when the shared machine slowed down,
  // but then a callback could overtake its request's registration (404), leaving requests that never
  // end: load-generator artefacts, not the system's. Within a segment the pacing is open-loop.
  while (Date.now() < end) {
    const next = freshTargets(n);
    const calls = segmentCalls(current, next);
    for (const c of calls) expected[c.expect] = (expected[c.expect] ?? 0) + 1;
    const res = await drivePaced(gateway.url, calls, rate, CONNECTIONS, AUTH);
    for (const [k, v] of Object.entries(res.statusCounts)) counts[k] = (counts[k] ?? 0) + v;
    errors += res.errors;
    sent += calls.length;
    latencyP99.push(res.latencies[Math.floor(res.latencies.length * 0.99)] ?? 0);
    latencies = res.latencies;
    current = next;
  }
  // the last sample at the end of the traffic
  sampling = false;
  await sampler;
  samples.push(await sample(redis, gateway, worker));
  const from = (opts.minutes * 60) / 2;
  const verdicts = check(samples, from);

  // cool-down: no traffic for the retention windows and a margin. Every key a callback, a registration
  // or an idempotent call made must be gone by then; what may stay is the last batch (registered, never
  // called back: hash and history) and a bounded number of keys per partition (queue and stream keys).
  log(`cool-down: ${COOL_DOWN_SECONDS} s without traffic`);
  await waitDrained(redis, keys, 120000);
  const coolDown: Sample[] = [];
  const coolEnd = Date.now() + COOL_DOWN_SECONDS * 1000;
  while (Date.now() < coolEnd) {
    await sleep(Math.min(opts.sampleSeconds * 1000, Math.max(0, coolEnd - Date.now())));
    coolDown.push(await sample(redis, gateway, worker));
  }
  const residualKeys = coolDown[coolDown.length - 1]?.redisKeys ?? Number.NaN;
  const allowedKeys = 2 * current.length + KEYS_PER_PARTITION * PARTITIONS;
  const keysReturned = residualKeys <= allowedKeys;
  log(`after cool-down: ${residualKeys} keys (at most ${allowedKeys} allowed)`);
  const subtitle =
    `${opts.minutes} min at ${rate} calls/s` +
    (sustained ? ` (${opts.fraction} × sustained ${Math.round(sustained)}/s)` : "") +
    `, ${sent} calls, 1 in 10 bad, 1 in 10 retried; sample every ${opts.sampleSeconds} s; checked: ` +
    `growth over the 2nd half ≤ ${opts.maxGrowth} % of the mean`;
  const svg = chart(samples, verdicts, from, subtitle);
  mkdirSync(dirname(svgPath), { recursive: true });
  writeFileSync(svgPath, svg);
  mkdirSync(args.out, { recursive: true });
  const unexpected = Object.keys({ ...counts, ...expected })
    .filter((k) => (counts[k] ?? 0) !== (expected[k] ?? 0))
    .map((k) => `${k}: expected ${expected[k] ?? 0}, got ${counts[k] ?? 0}`);
  const report = {
    coolDown: { seconds: COOL_DOWN_SECONDS, residualKeys, allowedKeys, keysReturned, samples: coolDown },
    minutes: opts.minutes,
    rate,
    sustainedPerSecond: sustained === undefined ? null : round(sustained, 0),
    fraction: opts.rate === undefined ? opts.fraction : null,
    sent,
    statusCounts: counts,
    expectedCounts: expected,
    unexpected,
    connectionErrors: errors,
    segmentP99LatencyMs: latencyP99.map((l) => round(l, 1)),
    lastSegmentP50LatencyMs: round(latencies[Math.floor(latencies.length / 2)] ?? 0, 1),
    maxGrowthPercent: opts.maxGrowth,
    verdicts: verdicts.map(({ line: _, ...v }) => v),
    samples,
    svg: svgPath,
  };
  writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\n| series | mean | min | max | slope over the 2nd half (/min) | growth, % of mean | |`);
  console.log(`|---|---|---|---|---|---|---|`);
  for (const v of verdicts) {
    const s = SERIES.find((x) => x.key === v.key)!;
    console.log(
      `| ${s.title} (${s.unit}) | ${v.mean} | ${v.min} | ${v.max} | ${v.slopePerMinute} | ${v.growthPercent} | ${v.flat ? "flat" : "**growing**"} |`,
    );
  }
  console.log(`\nanswers: ${JSON.stringify(counts)}; expected ${JSON.stringify(expected)}`);
  if (unexpected.length > 0) console.log(`unexpected answers: ${unexpected.join("; ")}`);
  console.log(`connection errors: ${errors}\nchart: ${svgPath}\njson: ${jsonPath}`);
  await redis.quit();
  const fiveHundreds = Object.entries(counts).filter(([k]) => k.startsWith("5") && k !== "503");
  if (fiveHundreds.length > 0) console.log(`5xx answers: ${JSON.stringify(Object.fromEntries(fiveHundreds))}`);
  console.log(`after ${COOL_DOWN_SECONDS} s without traffic: ${residualKeys} keys (at most ${allowedKeys} allowed)`);
  return verdicts.every((v) => v.flat) && keysReturned && fiveHundreds.length === 0 ? 0 : 1;
}

main()
  .then(async (code) => {
    await stopAll();
    process.exit(code);
  })
  .catch(async (err) => {
    console.error(err);
    await stopAll();
    process.exit(2);
  });
