// `npx tsx bench/index-cost.ts [--requests N] [--rounds R]`: what the request index's writes cost the
// callback path's apply script. Interleaved rounds on one private redis-server: the apply script as
// shipped, the same script with the index calls made no-ops, and a ceiling (EVALSHA of `return 1`,
// the same number of calls). Each round applies UPDATE ×4 then SUCCESS to fresh requests (the bench's
// mix), pipelined 64 calls deep. Prints applied callbacks/s per contender and their ratios.
import { parseArgs } from "node:util";
import { DEFAULT_LIMITS, Keys, RequestStore, scriptSource } from "@ess/store";
import { findRedisServer, RedisServer } from "@ess/testing";
import { Redis } from "ioredis";
import { redisCpuSeconds, registerFresh } from "./measure.js";

const { values } = parseArgs({
  options: { requests: { type: "string", default: "4000" }, rounds: { type: "string", default: "5" } },
});
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);
const UPDATES = 4;
const DEPTH = 64;

/** The index functions as no-ops: the apply script without its index writes. */
const NO_INDEX = [
  "local function indexMove() return false end",
  "local function indexState() end",
  "local function indexJob() end",
  "local function indexPrune() return 0 end",
].join("\n");

const bin = findRedisServer();
if (!bin) throw new Error("redis-server not found");
const server = await new RedisServer(bin).start();
const redis = new Redis(server.url);
const keys = new Keys("ix", 16);
const store = new RequestStore(redis, keys);
const shipped = scriptSource("apply");
const variants = {
  index: (await redis.script("LOAD", shipped)) as string,
  "no-index": (await redis.script("LOAD", scriptSource("apply", { index: NO_INDEX }))) as string,
};
const ceiling = (await redis.script("LOAD", "return 1")) as string;

let nextId = 1_000_000;
/** One round: callbacks/s, and Redis CPU µs per callback. */
async function round(sha: string | null): Promise<[number, number]> {
  const ids = await registerFresh(store, nextId, REQUESTS);
  nextId += REQUESTS;
  const calls: (string | number)[][] = [];
  for (let seq = 1; seq <= UPDATES + 1; seq++) {
    for (const id of ids) {
      const p = keys.partition(id);
      const job = {
        v: 1,
        requestId: id,
        seq,
        execution: 1,
        status: seq > UPDATES ? "SUCCESS" : "UPDATE",
        acceptedAt: Date.now(),
      };
      calls.push([
        8,
        ...keys.applyKeys(p, id),
        "cb",
        JSON.stringify(job),
        Date.now(),
        DEFAULT_LIMITS.historyLimit,
        DEFAULT_LIMITS.eventsMaxLen,
        DEFAULT_LIMITS.retentionSeconds,
        DEFAULT_LIMITS.gapTimeoutMs,
        0, // no gap: no job keys
        id,
      ]);
    }
  }
  const cpu0 = await redisCpuSeconds(redis);
  const started = process.hrtime.bigint();
  for (let i = 0; i < calls.length; i += DEPTH) {
    const pipe = redis.pipeline();
    for (const c of calls.slice(i, i + DEPTH)) {
      if (sha) pipe.evalsha(sha, ...(c as [number, ...string[]]));
      else pipe.evalsha(ceiling, 0);
    }
    const res = (await pipe.exec()) ?? [];
    const failed = res.find(([err]) => err);
    if (failed) throw failed[0];
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = (await redisCpuSeconds(redis)) - cpu0;
  return [calls.length / seconds, (cpu * 1e6) / calls.length];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const rates: Record<string, number[]> = { ceiling: [], index: [], "no-index": [] };
const cpuPer: Record<string, number[]> = { ceiling: [], index: [], "no-index": [] };
const ratio: number[] = [];
await round(variants.index); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  // alternate the order so that drift on the shared machine hits both alike
  const order = r % 2 === 0 ? (["index", "no-index"] as const) : (["no-index", "index"] as const);
  const [c, cc] = await round(null);
  cpuPer.ceiling?.push(cc);
  const got: Record<string, number> = {};
  for (const v of order) {
    const [rate, cpu] = await round(variants[v]);
    got[v] = rate;
    cpuPer[v]?.push(cpu);
  }
  rates.ceiling?.push(c);
  rates.index?.push(got.index as number);
  rates["no-index"]?.push(got["no-index"] as number);
  ratio.push((got.index as number) / (got["no-index"] as number));
  console.log(
    `round ${r + 1}: ceiling ${c.toFixed(0)}/s · index ${got.index?.toFixed(0)}/s · no-index ${got["no-index"]?.toFixed(0)}/s`,
  );
}
const m = (k: string) => median(rates[k] ?? []);
console.log(
  JSON.stringify(
    {
      requests: REQUESTS,
      callsPerRound: REQUESTS * (UPDATES + 1),
      rounds: ROUNDS,
      medianPerSecond: {
        ceiling: Math.round(m("ceiling")),
        index: Math.round(m("index")),
        noIndex: Math.round(m("no-index")),
      },
      ratioToCeiling: {
        index: +(m("index") / m("ceiling")).toFixed(3),
        noIndex: +(m("no-index") / m("ceiling")).toFixed(3),
      },
      redisCpuMicrosPerCallback: {
        ceiling: +median(cpuPer.ceiling ?? []).toFixed(1),
        index: +median(cpuPer.index ?? []).toFixed(1),
        noIndex: +median(cpuPer["no-index"] ?? []).toFixed(1),
      },
      indexOverNoIndexSameRound: {
        median: +median(ratio).toFixed(3),
        min: +Math.min(...ratio).toFixed(3),
        max: +Math.max(...ratio).toFixed(3),
      },
    },
    null,
    2,
  ),
);
await redis.quit();
await server.stop();
