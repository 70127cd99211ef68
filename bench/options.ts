// The bench's options (npm run bench -- --help) and the constants every part of it shares.
import { parseArgs } from "node:util";
import { Keys } from "@ess/store";

export const HELP = `npm run bench -- [options]

  --quick              small run (about 25-40 s here): profile A, 1500 requests, one round, short phases
  --profiles A,B       Redis profiles: A = AOF off, B = appendonly yes + appendfsync everysec (default A,B)
  --requests N         requests registered for the max-rate phase, split over the rounds (default 24000; quick 1500):
                       each round of the gateway lasts longer than the ceiling's, so that its start and
                       its last answers weigh no more in its rate than they do in the ceiling's
  --updates K          UPDATE callbacks per request before its final status (default 4)
  --bad-every M        one 4xx call (403/404/400 in turn) every M calls; 0 = none (default 20)
  --connections C      keep-alive connections of the load generator (default 100)
  --ceiling-seconds S  length of each round's bare-Hono ceiling measurement (default 2; quick 1.5)
  --rounds R           interleaved rounds of ceiling / gateway / variants at max rate (default 3; quick 1)
  --paced-seconds S    length of the 50 % and 90 % paced phases (default 4; quick 1.5)
  --paced-driver D     the paced phases' load generator: raw (prebuilt requests on raw keep-alive sockets,
                       default) or http (node's http client, as runs before 2026-11-30 19:00 UTC)
  --sustained          run the sustained search (in the full run by default; quick skips it unless given)
  --no-sustained       skip the sustained search
  --sustained-seconds S  length of each step of the sustained search (default 6)
  --sustained-steps N  steps of the sustained search (default 6)
  --no-scaling         skip the 2-gateway and 2-worker phases (first profile only; quick skips them)
  --no-compare         skip the gateway variants (ENQUEUE_MODE=queue, REDIS_AUTO_PIPELINING=true, ACCESS_LOG=false),
                       measured at max rate on the first profile (quick skips them)
  --variants I,J       only these gateway variants (0-based, in the order above and in BENCHMARKS.md; default all:
                       0 ENQUEUE_MODE=queue, 1 REDIS_AUTO_PIPELINING, 2 ACCESS_LOG=false, 3 tracing on
                       but sampling nothing, 4 tracing on, every callback exported, 5 ADMIT_BATCH_MAX=1)
  --no-unbatched       skip the sustained search (and its 50 % phase) of a gateway with ADMIT_BATCH_MAX=1, run
                       after the default one with the same worker (in the full run by default, with the search)
  --baseline DIR,...   also measure the default gateway of other checkouts (npm ci done there), as variants:
                       e.g. the commit before a change, to show the change's cost in the same rounds, and a
                       copy of this one (an A/A pair shows what the order within a round alone does)
  --env-variant K=V[,K=V...]  one more variant (repeatable): the default gateway, and its drain's worker, with
                       these variables, e.g. --env-variant NODE_OPTIONS=--max-semi-space-size=4
  --out DIR            where the JSON goes (default bench-results/)
  --cpu-prof           run gateways and workers with node --cpu-prof (profiles in <out>/profiles/)
  --source             run gateways and workers from source through tsx; by default the bench builds
                       (npm run build, here and in every --baseline checkout) and runs the compiled
                       apps with plain node, as npm start does
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
    "paced-driver": { type: "string", default: "raw" },
    "no-scaling": { type: "boolean", default: false },
    "no-compare": { type: "boolean", default: false },
    sustained: { type: "boolean", default: false },
    "no-sustained": { type: "boolean", default: false },
    "no-unbatched": { type: "boolean", default: false },
    "sustained-seconds": { type: "string", default: "6" },
    "sustained-steps": { type: "string", default: "6" },
    rounds: { type: "string" },
    out: { type: "string", default: "bench-results" },
    "cpu-prof": { type: "boolean", default: false },
    source: { type: "boolean", default: false },
    variants: { type: "string" },
    baseline: { type: "string" },
    "env-variant": { type: "string", multiple: true },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(HELP);
  process.exit(0);
}

export const quick = args.quick;
export const opts = {
  profiles: (args.profiles ?? (quick ? "A" : "A,B")).split(",").map((s) => s.trim().toUpperCase()),
  requests: Number(args.requests ?? (quick ? 1500 : 24000)),
  updates: Number(args.updates),
  badEvery: Number(args["bad-every"]),
  connections: Number(args.connections),
  ceilingSeconds: Number(args["ceiling-seconds"] ?? (quick ? 1.5 : 2)),
  pacedSeconds: Number(args["paced-seconds"] ?? (quick ? 1.5 : 4)),
  pacedDriver: args["paced-driver"],
  scaling: !args["no-scaling"] && !quick,
  compare: !args["no-compare"] && !quick,
  sustained: !args["no-sustained"] && (args.sustained || !quick),
  unbatched: !args["no-unbatched"],
  sustainedSeconds: Number(args["sustained-seconds"]),
  sustainedSteps: Math.max(1, Number(args["sustained-steps"])),
  rounds: Math.max(1, Number(args.rounds ?? (quick ? 1 : 3))),
  out: args.out,
  cpuProf: args["cpu-prof"],
  compiled: !args.source,
  variants: args.variants?.split(",").map((x) => Number(x.trim())),
  baseline: args.baseline?.split(",").map((x) => x.trim()),
  envVariants: (args["env-variant"] ?? []).map(
    (spec) =>
      Object.fromEntries(
        spec.split(",").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
      ) as Record<string, string>,
  ),
};
for (const [k, v] of Object.entries(opts)) {
  if (typeof v === "number" && !(Number.isFinite(v) && v >= 0)) throw new Error(`bad --${k}: ${v}`);
}
if (opts.pacedDriver !== "raw" && opts.pacedDriver !== "http") throw new Error("--paced-driver takes raw or http");
if (opts.profiles.some((p) => p !== "A" && p !== "B")) throw new Error("--profiles takes A and/or B");

export const PARTITIONS = 16;
export const KEY_PREFIX = "bench";
/** The bench's keys, built by the project's key builder (never a copy of the layout). */
export const keys = new Keys(KEY_PREFIX, PARTITIONS);
export const started = Date.now();
export const log = (msg: string) => console.error(`[bench +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
