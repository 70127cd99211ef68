// The bench's report: the markdown table printed at the end of a run.
import { round } from "./measure.js";
import { opts } from "./options.js";
import { type ProfileResult, stallLine } from "./phases.js";
import { VARIANTS } from "./processes.js";

/**
 * A step's CPU per callback as the target counts it: gateway + worker + Redis, and that sum ÷ the bare
 * server's CPU per request (the load generator is not in it, as the bare side counts the bare server only).
 */
function systemCpu(c: { gateway: number; worker: number; redis: number }, bareMicros: number): string {
  const sum = round(c.gateway + c.worker + c.redis, 1);
  return `${c.gateway} + ${c.worker} + ${c.redis} = ${sum} (${round(sum / bareMicros, 1)}×)`;
}

export function table(results: ProfileResult[]): string {
  const rows: [string, (r: ProfileResult) => string][] = [
    [
      "**sustained rate: accepted callbacks/s (lag p99 ≤ 100 ms, backlog bounded) · ÷ ceiling of the same moment · ÷ median ceiling**",
      (r) =>
        r.sustained
          ? r.sustained.acceptedPerSecond === null
            ? `none held (lowest tried ${Math.min(...r.sustained.search.steps.map((s) => s.offeredPerSecond))} calls/s)`
            : `**${r.sustained.acceptedPerSecond}** · **${r.sustained.ratioToCeiling}** (ceiling ${r.sustained.ceiling.requestsPerSecond}/s) · ${r.sustained.ratioToMedianCeiling}`
          : "-",
    ],
    [
      "sustained: lag p50/p99 (ms) · max backlog · steps (offered calls/s: holds or not)",
      (r) => {
        const s = r.sustained;
        if (!s) return "-";
        const steps = s.search.steps.map((x) => `${x.offeredPerSecond}${x.holds ? "✓" : "✗"}`).join(", ");
        return s.search.best
          ? `${s.search.best.lagMs.p50} / ${s.search.best.lagMs.p99} · ${s.search.best.maxBacklog} · ${steps}`
          : steps;
      },
    ],
    [
      "sustained: CPU µs per accepted callback: gateway + worker + Redis = system (÷ bare CPU per request) · + load generator = total",
      (r) => {
        const s = r.sustained?.search;
        // with no step holding, the figures of the busiest step tried (the first), said so
        const b = s?.best ?? s?.steps[0];
        if (!b) return "-";
        const c = b.cpuMicrosPerCallback;
        const at = s?.best ? "" : ` (no step held: at ${b.offeredPerSecond} calls/s offered)`;
        return `${systemCpu(c, r.ceiling.cpuMicrosPerRequest.median)} · + ${c.loadGenerator} = ${c.total}${at}`;
      },
    ],
    [
      "CPU µs per callback read apart: gateway + Redis at max rate (admit), worker + Redis in the drain (apply) = total (÷ bare CPU per request)",
      (r) => {
        const parts = [
          r.gatewayCpuMicrosPerCallback.median,
          r.max1.redis.cpuMicrosPerCallback,
          r.drain1.workerCpuMicrosPerCallback,
          r.drain1.redis.cpuMicrosPerCallback,
        ];
        const total = round(
          parts.reduce((a, b) => a + b, 0),
          1,
        );
        return `${parts.join(" + ")} = ${total} (${round(total / r.ceiling.cpuMicrosPerRequest.median, 1)}×)`;
      },
    ],
    [
      "idle CPU without traffic: gateway / worker / Redis (cores)",
      (r) => {
        const i = r.sustained?.idleCores;
        return i ? `${i.gateway} / ${i.worker} / ${i.redis}` : "-";
      },
    ],
    [
      "accept latency p50/p99/p99.9 at 50 % of the sustained rate (ms) · lag p99 · the bare server under the same driver and rate",
      (r) => {
        const h = r.sustained?.paced50;
        const b = r.sustained?.bareAt50;
        return h
          ? `${h.latencyMs.p50} / ${h.latencyMs.p99} / ${h.latencyMs.p99_9} · ${h.lagMs.p99}` +
              (b ? ` · bare ${b.p50} / ${b.p99} / ${b.p99_9}` : "")
          : "-";
      },
    ],
    [
      "stalls at 50 % of the sustained rate: slow calls, event-loop delay, GC pauses (count/total), Redis slow log",
      (r) => (r.sustained?.paced50 ? stallLine(r.sustained.paced50) : "-"),
    ],
    [
      "callbacks per job (ADMIT_BATCH_MAX batches): max-rate phase · sustained best step · 50 % of sustained",
      (r) =>
        `${r.max1.callbacksPerJob} · ${r.sustained?.search.best?.callbacksPerJob ?? "-"} · ${r.sustained?.paced50?.callbacksPerJob ?? "-"}`,
    ],
    [
      "without batching (ADMIT_BATCH_MAX=1), same worker, its own ceiling: sustained accepted/s · ÷ ceiling · CPU µs per callback gateway + worker + Redis (÷ bare) · accept p99 at 50 % (ms)",
      (r) => {
        const u = r.unbatched;
        if (!u) return "-";
        const b = u.search.best;
        if (!b) return `none held (${u.search.steps.map((x) => `${x.offeredPerSecond}✗`).join(", ")})`;
        return (
          `${u.acceptedPerSecond} · ${u.ratioToCeiling} (ceiling ${u.ceiling.requestsPerSecond}/s) · ` +
          `${systemCpu(b.cpuMicrosPerCallback, u.ceiling.cpuMicrosPerRequest)} · ${u.paced50?.latencyMs.p99 ?? "-"}`
        );
      },
    ],
    [
      "paired steps, batched vs unbatched at the same offered calls/s: lag p99 (ms) · accept p99 (ms) · CPU µs per callback gateway/worker/Redis · callbacks per job",
      (r) =>
        (r.unbatched?.pairs ?? [])
          .map((x) => {
            const side = (s: (typeof x)["on"]) =>
              `${s.lagMs.p99} · ${s.latencyMs.p99} · ${s.cpuMicrosPerCallback.gateway}/${s.cpuMicrosPerCallback.worker}/${s.cpuMicrosPerCallback.redis} · ${s.callbacksPerJob}`;
            return `${x.offered}/s: on ${side(x.on)} ‖ off ${side(x.off)}`;
          })
          .join("<br>") || "-",
    ],
    [
      `bare Hono ceiling, req/s: median (min-max of ${opts.rounds} rounds)`,
      (r) => `${r.ceiling.requestsPerSecond} (${r.ceiling.rounds.min}-${r.ceiling.rounds.max})`,
    ],
    [
      "bare Hono CPU / load generator CPU per request (µs, median)",
      (r) => `${r.ceiling.cpuMicrosPerRequest.median} / ${r.ceiling.loadGeneratorCpuMicrosPerRequest.median}`,
    ],
    [
      "gateway accepted callbacks/s, 1 gateway: median (min-max)",
      (r) => `${r.acceptedPerSecond.median} (${r.acceptedPerSecond.min}-${r.acceptedPerSecond.max})`,
    ],
    [
      "**ratio accepted / ceiling, same round: median (min-max)**",
      (r) => `**${r.ratio.median}** (${r.ratio.min}-${r.ratio.max})`,
    ],
    [
      "gateway CPU per accepted callback (µs): median (min-max)",
      (r) =>
        `${r.gatewayCpuMicrosPerCallback.median} (${r.gatewayCpuMicrosPerCallback.min}-${r.gatewayCpuMicrosPerCallback.max})`,
    ],
    ["gateway CPU utilisation in the median round (cores)", (r) => `${r.max1.gatewayCpuUtilisation}`],
    ...VARIANTS.map(
      (v, i) =>
        [
          `variant ${v.name}: accepted/s · ratio · vs default (same round) · gateway CPU µs/callback (medians) · its worker's CPU µs per applied callback (drain) · peak RSS MiB gateway / worker`,
          (r: ProfileResult) => {
            const x = r.variants[i];
            const d = r.variantDrains[i];
            return x
              ? `${x.acceptedPerSecond.median} · ${x.ratio.median} · ${x.relative.median} (${x.relative.min}-${x.relative.max}) · ${x.gatewayCpuMicrosPerCallback.median} · ${d ? d.workerCpuMicrosPerCallback : "-"} · ${Math.max(...r.rounds.map((x) => x.variants[i]?.gatewayPeakRssMiB[0] ?? 0))} / ${d?.workerPeakRssMiB[0] ?? "-"}`
              : "-";
          },
        ] as [string, (r: ProfileResult) => string],
    ),
    [
      "scaling round: ceiling · 1 gateway · 2 gateways accepted/s (ratios) · speed-up",
      (r) =>
        r.scaling
          ? `${r.scaling.ceiling} · ${r.scaling.oneGateway} (${r.scaling.ratioOne}) · ${r.scaling.twoGateways} (${r.scaling.ratioTwo}) · ${r.scaling.speedup}×`
          : "-",
    ],
    [
      "accept latency p50/p99/p99.9 at 50% (ms)",
      (r) => `${r.paced50.latencyMs.p50} / ${r.paced50.latencyMs.p99} / ${r.paced50.latencyMs.p99_9}`,
    ],
    [
      "accept latency p50/p99/p99.9 at 90% (ms)",
      (r) => `${r.paced90.latencyMs.p50} / ${r.paced90.latencyMs.p99} / ${r.paced90.latencyMs.p99_9}`,
    ],
    ["offered rate 50% / 90% (calls/s)", (r) => `${r.paced50.offeredPerSecond} / ${r.paced90.offeredPerSecond}`],
    ["lag accepted→applied p50/p99 at 50% (ms)", (r) => `${r.paced50.lagMs.p50} / ${r.paced50.lagMs.p99}`],
    ["lag accepted→applied p50/p99 at 90% (ms)", (r) => `${r.paced90.lagMs.p50} / ${r.paced90.lagMs.p99}`],
    ["max backlog at 50% / 90% (jobs)", (r) => `${r.paced50.maxBacklog} / ${r.paced90.maxBacklog}`],
    ["applied transitions/s, 1 worker (drain)", (r) => `${r.drain1.appliedPerSecond}`],
    ["applied transitions/s, 2 workers (drain)", (r) => (r.drain2 ? `${r.drain2.appliedPerSecond}` : "-")],
    ["Redis round trips (script calls) per accepted callback", (r) => `${r.max1.redis.scriptCallsPerCallback}`],
    ["Redis commands run per accepted callback (incl. inside scripts)", (r) => `${r.max1.redis.commandsPerCallback}`],
    ["Redis CPU per accepted callback (gateway side, µs)", (r) => `${r.max1.redis.cpuMicrosPerCallback}`],
    [
      "worker: Redis round trips / Redis CPU µs / worker CPU µs per applied callback",
      (r) =>
        `${r.drain1.redis.scriptCallsPerCallback} / ${r.drain1.redis.cpuMicrosPerCallback} / ${r.drain1.workerCpuMicrosPerCallback}`,
    ],
    [
      "Redis memory per terminal request (bench / full history)",
      (r) =>
        `${r.memoryPerTerminalRequest.typical.bytes} B / ${r.memoryPerTerminalRequest.fullHistory.bytes} B (${r.memoryPerTerminalRequest.fullHistory.historyEntries} entries)`,
    ],
    [
      "RSS (MiB): gateway / worker at the end · idle after start · peak",
      (r) =>
        `${r.gatewayRssMiB} / ${r.workerRssMiB} · ${r.rssMiB.idle.gateway} / ${r.rssMiB.idle.worker} · ${r.rssMiB.peak.gateway} / ${r.rssMiB.peak.worker}`,
    ],
    ["unexpected answers (max phase)", (r) => unexpected(r.max1.statusCounts, r.max1.expectedCounts)],
  ];
  const head = `| metric | ${results.map((r) => `profile ${r.profile} (${r.redis})`).join(" | ")} |`;
  const sep = `|---|${results.map(() => "---").join("|")}|`;
  return [head, sep, ...rows.map(([name, f]) => `| ${name} | ${results.map(f).join(" | ")} |`)].join("\n");
}

function unexpected(got: Record<string, number>, want: Record<string, number>): string {
  const diffs = Object.keys({ ...got, ...want })
    .filter((k) => (got[k] ?? 0) !== (want[k] ?? 0))
    .map((k) => `${k}: ${got[k] ?? 0} (expected ${want[k] ?? 0})`);
  return diffs.length ? diffs.join(", ") : "none";
}
