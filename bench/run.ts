// `npm run bench`: the reproducible benchmark (see BENCHMARKS.md for the method and every option).
// Starts its own redis-server, the bare-Hono ceiling, gateways and workers as real processes, drives
// them with autocannon on 127.0.0.1, prints a markdown table and writes JSON under bench-results/.
// The parts: options.ts (flags), processes.ts, measure.ts, phases.ts (a profile's run), report.ts.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { findRedisServer } from "@ess/testing";
import { round } from "./measure.js";
import { log, opts, started } from "./options.js";
import { type ProfileResult, runProfile } from "./phases.js";
import { buildAll } from "./processes.js";
import { table } from "./report.js";

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
  buildAll();
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
    `\nratio gateway/ceiling: ${results.map((r) => `${r.profile} ${r.ratio.median}`).join(", ")}` +
      results
        .filter((r) => r.sustained)
        .map(
          (r) =>
            ` · sustained ${r.profile} ${r.sustained?.acceptedPerSecond ?? "none"}/s (${r.sustained?.ratioToCeiling ?? "-"})`,
        )
        .join("") +
      ` · ${report.seconds} s · ${file}`,
  );
}

await main();
