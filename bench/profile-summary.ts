// Summarises a .cpuprofile (from `npm run bench -- --cpu-prof`): self time by function and by package,
// as shares of the busy time (idle samples left out), and by package again with the time of native
// code and node's library (socket and file writes, hashing, ...) charged to the package that called
// it, which shows what a write is for (pino's log line, ioredis's command, the HTTP response).
// Usage: tsx bench/profile-summary.ts bench-results/profiles/<file>.cpuprofile [top] [--busy F]
//   [--without TEXT]
// --busy F keeps only the 100 ms slices of the profile that were busy at least F of the time (0-1):
// the phases at full load, without start-up and the idle gaps between phases. --without TEXT also
// leaves out every slice with a sample whose stack holds a script whose URL contains TEXT (for the
// gateway's max-rate phases alone, `--without routes/requests` leaves out the registrations).
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
const args = process.argv.slice(2);
const option = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args.splice(at, 2)[1] : undefined;
};
const busyShare = Number(option("--busy") ?? 0);
const without = option("--without");
const file = args[0];
if (!file || !(busyShare >= 0 && busyShare <= 1))
  throw new Error("usage: tsx bench/profile-summary.ts <file.cpuprofile> [top] [--busy F] [--without TEXT]");
const top = Number(args[1] ?? 30);
const prof = JSON.parse(readFileSync(file, "utf8")) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const idleIds = new Set(prof.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id));
/** whether a node's stack holds a script whose URL contains `without` (memoised per node) */
const excluded = new Map<number, boolean>();
const isExcluded = (id: number): boolean => {
  let hit = excluded.get(id);
  if (hit === undefined) {
    const p = parent.get(id);
    hit =
      (without !== undefined && byId.get(id)!.callFrame.url.includes(without)) || (p !== undefined && isExcluded(p));
    excluded.set(id, hit);
  }
  return hit;
};
// each sample's 100 ms slice; the slices kept are busy at least busyShare of their sampled time and
// hold no excluded sample
const slices: { all: number; idle: number; excluded: boolean }[] = [];
const sliceOf: number[] = [];
let clock = 0;
prof.samples.forEach((id, i) => {
  const dt = prof.timeDeltas[i] ?? 0;
  clock += dt;
  const k = Math.floor(clock / 100_000);
  slices[k] ??= { all: 0, idle: 0, excluded: false };
  const sl = slices[k];
  sl.all += dt;
  if (idleIds.has(id)) sl.idle += dt;
  if (isExcluded(id)) sl.excluded = true;
  sliceOf.push(k);
});
const keep = (k: number) => {
  const sl = slices[k]!;
  return sl.all > 0 && !sl.excluded && (sl.all - sl.idle) / sl.all >= busyShare;
};
const self = new Map<number, number>();
prof.samples.forEach((id, i) => {
  if (keep(sliceOf[i]!)) self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
});
const where = (url: string) => {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith("node:")) return "node:internal";
  if (url.includes("/packages/") || url.includes("/apps/")) return url.replace(/^.*\/(packages|apps)\//, "$1/");
  return url || "(native/gc)";
};
const isIdle = (id: number) => idleIds.has(id);
let idle = 0;
for (const [id, t] of self) if (isIdle(id)) idle += t;
const all = [...self.values()].reduce((a, b) => a + b, 0);
const busy = all - idle;
/**
 * The nearest frame at or above a node that is neither native nor node's own library: the package
 * whose call led there (node's HTTP machinery when nothing outside node is on the stack).
 */
function jsOwner(id: number): string {
  let nodeLib = false;
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const url = byId.get(cur)?.callFrame.url;
    if (url?.startsWith("node:")) nodeLib = true;
    else if (url) return where(url).split(":")[0]!;
  }
  if (nodeLib) return "node:internal (no caller outside node)";
  const name = byId.get(id)?.callFrame.functionName ?? "";
  return name.startsWith("(") ? name : "(native, no JS caller)";
}
const fn = new Map<string, number>();
const pkg = new Map<string, number>();
const owner = new Map<string, number>();
const add = (m: Map<string, number>, k: string, t: number) => m.set(k, (m.get(k) ?? 0) + t);
for (const [id, t] of self) {
  if (isIdle(id)) continue;
  const n = byId.get(id)!;
  add(fn, `${n.callFrame.functionName || "(anonymous)"} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`, t);
  add(pkg, where(n.callFrame.url).split(":")[0]!, t);
  add(owner, jsOwner(id), t);
}
const show = (m: Map<string, number>, n: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, t]) => `${((100 * t) / busy).toFixed(1).padStart(5)}%  ${k}`)
    .join("\n");
const kept = slices.filter((_, k) => keep(k)).length;
const filter =
  busyShare > 0 || without !== undefined
    ? `${kept} of ${slices.length} slices of 100 ms kept (busy ≥ ${busyShare}${without === undefined ? "" : `, none in ${without}`}): `
    : "";
console.log(
  `${filter}total ${(all / 1e6).toFixed(2)} s sampled, busy ${(busy / 1e6).toFixed(2)} s (${((100 * busy) / all).toFixed(0)} %); shares of the busy time\n\n` +
    `by package/file (self):\n${show(pkg, 15)}\n\n` +
    `by package/file, time of native code and of node's library charged to the package that called it:\n${show(owner, 25)}\n\n` +
    `by function (self):\n${show(fn, top)}`,
);
