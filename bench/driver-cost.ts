// `npx tsx bench/driver-cost.ts [--rates 2000,4000] [--seconds S] [--rounds R] [--connections C]`: what the
// paced phases' two load generators (--paced-driver raw and http) cost and add to latency, driving the
// bare ceiling server (bench/bare.ts) with the bench's callback mix at fixed rates. Rounds alternate the
// drivers at each rate, so the machine's swings hit both alike: the load generator's CPU µs per call and
// the p50/p99 of the latency it measures (from each call's scheduled start).
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { buildMix, type Call, drivePaced, drivePacedRaw, makeTargets } from "./load.js";
import { pct, round } from "./measure.js";

const { values } = parseArgs({
  options: {
    rates: { type: "string", default: "2000,4000" },
    seconds: { type: "string", default: "4" },
    rounds: { type: "string", default: "3" },
    connections: { type: "string", default: "100" },
  },
});
const rates = values.rates.split(",").map(Number);
const seconds = Number(values.seconds);
const connections = Number(values.connections);

const bare = spawn(process.execPath, ["--import", "tsx", new URL("./bare.ts", import.meta.url).pathname], {
  env: { ...process.env, PORT: "0" },
  stdio: ["ignore", "pipe", "inherit"],
});
const port = await new Promise<number>((resolve) => {
  createInterface({ input: bare.stdout! }).once("line", (line) => resolve(JSON.parse(line).port));
});
const url = `http://127.0.0.1:${port}`;
const mix = buildMix(makeTargets(1_000_000, 2000), 4, 20);
const drivers = { raw: drivePacedRaw, http: drivePaced };
const rows: Record<string, { cpu: number[]; p50: number[]; p99: number[] }> = {};
try {
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const rate of rates) {
      const order = r % 2 === 0 ? (["raw", "http"] as const) : (["http", "raw"] as const);
      for (const name of order) {
        const n = Math.round(rate * seconds);
        const calls = Array.from({ length: n }, (_, i) => mix[i % mix.length] as Call);
        const cpu0 = process.cpuUsage();
        const res = await drivers[name](url, calls, rate, connections);
        const cpu = process.cpuUsage(cpu0);
        const key = `${name} ${rate}/s`;
        rows[key] ??= { cpu: [], p50: [], p99: [] };
        const row = rows[key];
        row.cpu.push(round((cpu.user + cpu.system) / n, 1));
        row.p50.push(round(pct(res.latencies, 50), 2));
        row.p99.push(round(pct(res.latencies, 99), 2));
        if (res.errors > 0 || (res.statusCounts["200"] ?? 0) !== n)
          throw new Error(`${name}: ${res.errors} errors, ${JSON.stringify(res.statusCounts)}`);
      }
    }
  }
} finally {
  bare.kill();
}
console.log(JSON.stringify(rows, null, 1));
