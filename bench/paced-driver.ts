// The paced load generator's own process (forked by bench/phases.ts): it drives one paced phase per
// message and answers with the result, its CPU and its stalls. Its heap holds only the phase's calls, so
// its collections stay short, and nothing else of the bench runs on its event loop: a pause of the load
// generator delays calls past their scheduled start, which counts as accept latency.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { type Call, drivePaced, drivePacedRaw, type PacedResult, rawRequests } from "./load.js";
import { loadGeneratorStalls } from "./measure.js";

/** One phase to drive. */
export interface PacedRequest {
  driver: "raw" | "http";
  url: string;
  calls: Call[];
  rate: number;
  connections: number;
  headers?: Record<string, string>;
}

/** What the driver process answers for a phase. */
export interface PacedAnswer {
  result: PacedResult;
  /** the driver process's CPU over the phase, µs (its setup before the first call included) */
  cpuMicros: number;
  stalls: ReturnType<ReturnType<typeof loadGeneratorStalls>["stop"]>;
}

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

process.on("message", async (req: PacedRequest) => {
  const cpu0 = process.cpuUsage();
  let drive: () => Promise<PacedResult>;
  if (req.driver === "http") drive = () => drivePaced(req.url, req.calls, req.rate, req.connections, req.headers);
  else {
    // the raw requests are written out first; the calls they came from are garbage from here on
    const prepared = rawRequests(req.url, req.calls, req.headers);
    req.calls = [];
    drive = () => drivePacedRaw(req.url, [], req.rate, req.connections, {}, prepared);
  }
  // the previous phase's garbage and this one's set-up go now, not mid-phase
  gc();
  const stalls = loadGeneratorStalls();
  const result = await drive();
  const cpu = process.cpuUsage(cpu0);
  const answer: PacedAnswer = { result, cpuMicros: cpu.user + cpu.system, stalls: stalls.stop() };
  process.send!(answer);
});
process.on("disconnect", () => process.exit(0));
